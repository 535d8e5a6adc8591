"""hybridunet: UNet and Hybrid UNet as pluggable parts for street-scene segmentation."""

__version__ = "0.1.0"

from hybridunet.models import create_model, list_models, register_model  # noqa: E402

__all__ = ["__version__", "create_model", "list_models", "register_model"]
