"""Models: the UNet assembler with its presets, and smp peers, all in one registry."""

from hybridunet.models import presets, smp  # noqa: F401  (importing registers the built-ins)
from hybridunet.models.presets import PRESETS, Preset, check_parts, preset_of, run_label
from hybridunet.models.registry import MODELS, create_model, list_models, register_model
from hybridunet.models.smp import SmpModel
from hybridunet.models.unet import UNet

__all__ = ["MODELS", "PRESETS", "Preset", "SmpModel", "UNet", "check_parts", "create_model", "list_models", "preset_of",
           "register_model", "run_label"]
