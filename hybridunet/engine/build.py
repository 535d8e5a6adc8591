"""What a run is assembled from, as its config says: data splits, class names, model, loss."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from hybridunet.config import ExperimentConfig
from hybridunet.data import (
    CLASS_NAMES,
    NUM_CLASSES,
    eval_transform,
    folder_class_names,
    open_dataset,
    resolve_format,
    train_transform,
)
from hybridunet.data.base import SegmentationDataset
from hybridunet.device import Precision
from hybridunet.losses import LOSSES
from hybridunet.models import create_model


def open_split(config: ExperimentConfig, split: str, train: bool) -> SegmentationDataset:
    """The data set of one split with the config's transforms and limits."""
    d = config.data
    transform = (
        train_transform(d.size, d.augment.scale, d.augment.hflip, d.augment.color_jitter, d.normalize)
        if train
        else eval_transform(d.size, d.normalize)
    )
    extra = {"num_classes": config.model.num_classes} if resolve_format(d.root, d.format) == "folder" else {}
    dataset = open_dataset(
        d.root, split, format=d.format, transform=transform,
        cache_masks=d.cache_masks, skip_bad=d.skip_bad, seed=config.seed, **extra,
    )
    limit = d.limit_train if train else d.limit_val
    return dataset.head(limit) if limit else dataset


def class_names(config: ExperimentConfig) -> list[str]:
    """data.class_names; for folder data ROOT/classes.txt or class_0..; Cityscapes' 19 names
    only for Cityscapes-like data (Kaggle pairs, official) with 19 classes."""
    n, d = config.model.num_classes, config.data
    if d.class_names is not None:
        return list(d.class_names)
    if resolve_format(d.root, d.format) == "folder":
        return folder_class_names(d.root, n)
    return list(CLASS_NAMES) if n == NUM_CLASSES else [f"class_{i}" for i in range(n)]


def build_model(config: ExperimentConfig, device: torch.device, precision: Precision) -> nn.Module:
    model = create_model(config.model.name, **config.model.build_kwargs())
    return model.to(device).to(memory_format=precision.memory_format)


def build_loss(config: ExperimentConfig, class_weights: list[float] | None = None) -> nn.Module:
    """The configured loss; `class_weights` are the resolved ones (see `resolve_class_weights`)."""
    weights = class_weights if class_weights is not None else (
        config.loss.class_weights if isinstance(config.loss.class_weights, list) else None)
    extra = {"class_weights": weights} if weights is not None else {}
    return LOSSES.build(config.loss.name, **config.loss.kwargs, **extra)


def resolve_class_weights(config: ExperimentConfig, train_data: SegmentationDataset, names: list[str],
                          folder: Path) -> list[float] | None:
    """None, the configured list, or weights computed from the training split (cached in `folder`)."""
    from hybridunet.data.stats import cached_class_weights

    weights = config.loss.class_weights
    if weights == "none" or isinstance(weights, list):
        return weights if isinstance(weights, list) else None
    return cached_class_weights(train_data, names, weights, config.loss.max_weight, folder)
