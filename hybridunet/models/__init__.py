"""Models: the UNet assembler with its presets, and smp peers, all in one registry."""

from hybridunet.models import smp, unet  # noqa: F401  (importing registers the built-ins)
from hybridunet.models.registry import MODELS, create_model, list_models, register_model
from hybridunet.models.smp import SmpModel
from hybridunet.models.unet import UNet

__all__ = ["MODELS", "SmpModel", "UNet", "create_model", "list_models", "register_model"]
