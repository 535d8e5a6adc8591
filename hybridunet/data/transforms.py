"""Augmentation and preprocessing pipelines (albumentations): image and mask move together."""

from __future__ import annotations

from typing import Sequence

import albumentations as A
import numpy as np
import torch
from albumentations.pytorch import ToTensorV2

from hybridunet.data.labels import IGNORE_INDEX

# "unit" is the study's scaling factor (pixels / 255); "imagenet" suits pretrained encoders.
NORMALIZATIONS: dict[str, tuple[tuple[float, ...], tuple[float, ...]]] = {
    "unit": ((0.0, 0.0, 0.0), (1.0, 1.0, 1.0)),
    "imagenet": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
}


def _size(size: int | Sequence[int]) -> tuple[int, int]:
    h, w = (size, size) if isinstance(size, int) else tuple(size)
    if h < 1 or w < 1:
        raise ValueError(f"size must be positive, got {size!r}")
    return h, w


def _normalize(normalize: str) -> A.Normalize:
    if normalize not in NORMALIZATIONS:
        raise ValueError(f"normalize={normalize!r}; expected one of {sorted(NORMALIZATIONS)}")
    mean, std = NORMALIZATIONS[normalize]
    return A.Normalize(mean=mean, std=std, max_pixel_value=255.0)


def train_transform(
    size: int | Sequence[int] = 256,
    scale: tuple[float, float] = (0.75, 1.5),
    hflip: float = 0.5,
    color_jitter: float = 0.2,
    normalize: str = "imagenet",
) -> A.Compose:
    """Resize, random scale and crop back to `size`, horizontal flip, colour jitter, normalise.

    Masks are resized with nearest neighbour; area padded in by the crop is ignore (255).
    `scale=(1, 1)`, `hflip=0` and `color_jitter=0` switch each augmentation off.
    """
    h, w = _size(size)
    steps: list[A.BasicTransform] = [A.Resize(h, w)]
    if tuple(scale) != (1.0, 1.0):
        if not 0 < scale[0] <= scale[1]:
            raise ValueError(f"scale must be (low, high) with 0 < low <= high, got {scale!r}")
        steps += [
            A.RandomScale(scale_limit=(scale[0] - 1, scale[1] - 1), p=1.0),
            A.RandomCrop(h, w, pad_if_needed=True, fill=0, fill_mask=IGNORE_INDEX),
        ]
    if hflip:
        steps.append(A.HorizontalFlip(p=hflip))
    if color_jitter:
        j = color_jitter
        steps.append(A.ColorJitter(brightness=j, contrast=j, saturation=j, hue=min(0.5, j / 4), p=0.8))
    return A.Compose(steps + [_normalize(normalize), ToTensorV2()])


def eval_transform(size: int | Sequence[int] | None = 256, normalize: str = "imagenet") -> A.Compose:
    """Resize to `size` (None keeps the input size) and normalise."""
    steps = [] if size is None else [A.Resize(*_size(size))]
    return A.Compose(steps + [_normalize(normalize), ToTensorV2()])


def to_picture(x: torch.Tensor, normalize: str = "imagenet") -> np.ndarray:
    """A normalised CHW image tensor back to the HWC uint8 RGB picture the model saw."""
    mean, std = (torch.tensor(v, dtype=torch.float32).view(3, 1, 1) for v in NORMALIZATIONS[normalize])
    pixels = (x.detach().float().cpu() * std + mean) * 255.0
    return pixels.round().clamp(0, 255).to(torch.uint8).permute(1, 2, 0).numpy()
