"""The model family: every model is built by name through this registry."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from torch import nn

from hybridunet.registry import Registry

MODELS: Registry[nn.Module] = Registry("model")


@dataclass(frozen=True)
class ModelInfo:
    """What `hybridunet models` prints beside a registered model."""

    description: str
    reference: str = ""


def create_model(name: str, /, **kwargs: Any) -> nn.Module:
    """Build a registered model, e.g. ``create_model("hybrid_unet", num_classes=19, bottleneck="aspp")``."""
    return MODELS.build(name, **kwargs)


def list_models(pattern: str = "*") -> list[str]:
    """Sorted names of registered models matching a glob such as ``"smp_*"``."""
    return MODELS.names(pattern)


def register_model(name: str) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Decorator registering a user's model builder (or preset) under `name`."""
    return MODELS.register(name)
