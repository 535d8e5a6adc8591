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
    """Build a registered model by name, as `timm.create_model` does.

    Args:
        name: A name from `list_models()`: a preset (`unet`, `hybrid_unet`, ...), an smp peer
            (`smp_unet`, ...) or one registered with `register_model`.
        **kwargs: The builder's keywords: for a preset, any `UNet` argument (`num_classes`,
            `widths`, a part such as `bottleneck="aspp"`); for a peer, `SmpModel`'s plus the smp architecture's own.

    Returns:
        The model, in training mode, with random weights: nothing is downloaded unless a
            peer's `encoder_weights` asks for it (`weights_path` loads a local file instead).

    Raises:
        hybridunet.errors.UnknownNameError: `name` is not registered (the known names and the
            closest one are listed).
        TypeError: A keyword a preset does not take (the accepted ones are listed). The smp
            peers pass keywords they do not name on to smp, which gives the ones it does not
            know to a timm encoder (`tu-...`) and otherwise ignores them.

    Example:
        ```python
        import hybridunet as hu

        model = hu.create_model("hybrid_unet", num_classes=19, bottleneck="aspp")
        ```
    """
    return MODELS.build(name, **kwargs)


def list_models(pattern: str = "*") -> list[str]:
    """The names of the registered models, sorted, as `timm.list_models` gives them.

    Args:
        pattern: A shell-style glob on the name, such as `"smp_*"`.

    Returns:
        The matching names.

    Example:
        ```python
        import hybridunet as hu

        hu.list_models("hybrid*")   # ['hybrid_unet', 'hybrid_unet_resdec']
        ```
    """
    return MODELS.names(pattern)


def register_model(name: str) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Register a model builder (or a preset of your own) under `name`, as a decorator.

    Args:
        name: The name `create_model`, configs (`model.name`) and the command line use; it
            must not be taken.

    Returns:
        A decorator that registers the builder and returns it unchanged.

    Raises:
        ValueError: `name` is empty or already registered.

    Example:
        ```python
        import hybridunet as hu

        @hu.register_model("my_unet")
        def my_unet(**kwargs):
            return hu.create_model("unet", upsampler="bilinear", **kwargs)
        ```
    """
    return MODELS.register(name)
