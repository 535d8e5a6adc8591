"""Presets of the one UNet assembler, as rows of data with metadata (timm's default_cfgs).

A preset's name is immutable: a changed definition gets a new name, recorded in
CHANGELOG.md, so a run tagged with a preset always means one architecture.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any

import yaml

from hybridunet.errors import UsageError
from hybridunet.models.registry import MODELS, ModelInfo
from hybridunet.models.unet import UNet

PART_KEYS = ("encoder_block", "decoder_block", "skip", "bottleneck", "upsampler")


@dataclass(frozen=True, kw_only=True)
class Preset(ModelInfo):
    """A named architecture: which part fills each swap point, and what tools should print.
    (A run's normalisation and input size are its config's, stored with its checkpoint.)"""

    name: str
    parts: Mapping[str, str]


UNET_PARTS = {"encoder_block": "double_conv", "decoder_block": "double_conv", "skip": "concat",
              "bottleneck": "identity", "upsampler": "transpose"}
HYBRID_PARTS = {**UNET_PARTS, "encoder_block": "residual_se", "skip": "attention_gate", "bottleneck": "transformer"}

PRESETS = (
    Preset(name="unet", parts=UNET_PARTS,
           description="the study's baseline: double-conv blocks, transposed-conv up, concatenated skips",
           reference="Ronneberger et al. 2015, arXiv:1505.04597"),
    Preset(name="hybrid_unet", parts=HYBRID_PARTS,
           description="residual-SE encoder, attention-gated skips, transformer bottleneck",
           reference="the study's Hybrid UNet; Oktay et al. 2018 (arXiv:1804.03999); "
                     "Chen et al. 2021 (arXiv:2102.04306)"),
    Preset(name="hybrid_unet_resdec", parts={**HYBRID_PARTS, "decoder_block": "residual_se", "upsampler": "bilinear"},
           description="hybrid_unet with residual-SE decoder blocks and bilinear upsampling",
           reference="BENCHMARKS.md: +0.138 Dice over unet at the study scale, +0.042 under the CPU protocol"),
)

for _preset in PRESETS:
    MODELS.register(_preset.name, partial(UNet, **_preset.parts), info=_preset)


def check_parts(kwargs: Mapping[str, Any]) -> None:
    """Fail naming the known parts when a swap point names an unknown one."""
    from hybridunet.nn import BLOCKS, BOTTLENECKS, SKIPS, UPSAMPLERS

    families = dict(zip(PART_KEYS, (BLOCKS, BLOCKS, SKIPS, BOTTLENECKS, UPSAMPLERS)))
    for key, registry in families.items():
        if isinstance(kwargs.get(key), str):
            registry.get(kwargs[key])
        elif kwargs.get(key) is not None:
            raise ValueError(f"model.{key}: a config names a registered part (got {kwargs[key]!r}); pass a module "
                             "class to create_model(...) or UNet(...) directly, or register it by name")


def preset_of(name: str) -> Preset | None:
    """The preset registered as `name` (None for models that are not UNet presets)."""
    info = MODELS.info(name)
    return info if isinstance(info, Preset) else None


def run_label(name: str, kwargs: Mapping[str, Any]) -> str:
    """A run's label: its model plus the parts it overrides, e.g.
    ``hybrid_unet+decoder_block=residual_se``. Comparisons group runs by it."""
    preset = preset_of(name)
    if preset is None:
        return name
    changed = [f"{k}={kwargs[k]}" for k in PART_KEYS if k in kwargs and kwargs[k] != preset.parts.get(k)]
    return "+".join([name, *changed])


def parse_label(label: str) -> tuple[str, dict[str, Any]]:
    """The inverse of `run_label`: ``hybrid_unet+skip=concat`` -> ("hybrid_unet", {"skip": "concat"})."""
    name, *swaps = label.split("+")
    parts: dict[str, Any] = {}
    for item in swaps:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UsageError(f"arm {label!r}: expected MODEL+key=value[+key=value...], got {item!r} after '+'")
        parts[key] = yaml.safe_load(value)
    MODELS.get(name)
    return name, parts
