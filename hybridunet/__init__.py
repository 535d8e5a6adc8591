"""hybridunet: UNet and Hybrid UNet as pluggable parts for street-scene segmentation."""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

__all__ = ["__version__", "create_model", "list_models", "register_model"]


def __getattr__(name: str) -> Any:
    # The model registry needs torch: loaded on first use, so `hybridunet --help` starts at once.
    if name in ("create_model", "list_models", "register_model"):
        from hybridunet import models

        return getattr(models, name)
    raise AttributeError(f"module 'hybridunet' has no attribute {name!r}")
