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


def resolve_format(root: str | Path, format: str = "auto") -> str:
    """`auto` -> "cityscapes" when ROOT/leftImg8bit exists, "folder" when ROOT/train/images
    does, else "pairs"."""
    if format != "auto":
        return format
    root = Path(root)
    if (root / "leftImg8bit").is_dir():
        return "cityscapes"
    return "folder" if (root / "train" / "images").is_dir() else "pairs"


def open_dataset(root: str | Path, split: str = "train", format: str = "auto", num_classes: int | None = None,
                 **kwargs: Any) -> SegmentationDataset:
    """The data set at `root` in `format`: "pairs" (Kaggle), "cityscapes" (official) or
    "folder" (ROOT/split/images + ROOT/split/masks, index masks below `num_classes`, 255 ignored)."""
    format = resolve_format(root, format)
    if format == "cityscapes":
        return Cityscapes(root, split, **kwargs)
    if format == "pairs":
        return CityscapesPairs(root, split, **kwargs)
    if format == "folder":
        return SegmentationFolder(Path(root) / split / "images", Path(root) / split / "masks",
                                  num_classes=num_classes, **kwargs)
    raise DataError(f"data format {format!r}; expected 'auto', 'pairs', 'cityscapes' or 'folder'")


def folder_class_names(root: str | Path, num_classes: int | None = None) -> list[str]:
    """Class names of folder data: ROOT/classes.txt (one per line) if there is one, else
    class_0, ...; without a classes.txt the number of classes must be given."""
    listed = Path(root) / "classes.txt"
    if not listed.is_file():
        if num_classes is None:
            raise DataError(f"{root} holds folder data without {listed.name}: give the number of classes "
                            "(model.num_classes, or --num-classes) or write their names to it")
        return [f"class_{i}" for i in range(num_classes)]
    names = [line.strip() for line in listed.read_text().splitlines() if line.strip()]
    if num_classes is not None and len(names) != num_classes:
        raise DataError(f"{listed} names {len(names)} classes; model.num_classes is {num_classes}")
    return names


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
    "folder_class_names",
    "fit_palette",
    "make_loader",
    "open_dataset",
    "resolve_format",
    "synthesize",
    "train_transform",
]
