"""Data sets (Kaggle pairs, official Cityscapes, generic folders), the synthetic street-scene
generator, augmentation pipelines and the loader factory."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hybridunet.data.base import DataError, SegmentationDataset
from hybridunet.data.cityscapes import Cityscapes
from hybridunet.data.folder import SegmentationFolder
from hybridunet.data.labels import CLASS_NAMES, IGNORE_INDEX, NUM_CLASSES, ColorMapper, colorize, fit_palette
from hybridunet.data.loader import EpochSampler, make_loader
from hybridunet.data.pairs import CityscapesPairs
from hybridunet.data.synthetic import synthesize
from hybridunet.data.transforms import eval_transform, train_transform


def open_dataset(root: str | Path, split: str = "train", format: str = "auto", **kwargs: Any) -> SegmentationDataset:
    """The data set at `root` in `format` ("pairs" or "cityscapes"); "auto" picks official
    Cityscapes when ROOT/leftImg8bit exists, else Kaggle pairs."""
    if format == "auto":
        format = "cityscapes" if (Path(root) / "leftImg8bit").is_dir() else "pairs"
    if format == "cityscapes":
        return Cityscapes(root, split, **kwargs)
    if format == "pairs":
        return CityscapesPairs(root, split, **kwargs)
    raise ValueError(f"data format {format!r}; expected 'auto', 'pairs' or 'cityscapes'")


__all__ = [
    "CLASS_NAMES",
    "IGNORE_INDEX",
    "NUM_CLASSES",
    "Cityscapes",
    "CityscapesPairs",
    "ColorMapper",
    "DataError",
    "EpochSampler",
    "SegmentationDataset",
    "SegmentationFolder",
    "colorize",
    "eval_transform",
    "fit_palette",
    "make_loader",
    "open_dataset",
    "synthesize",
    "train_transform",
]
