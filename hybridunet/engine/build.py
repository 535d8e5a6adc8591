"""What a run is assembled from, as its config says: data splits, class names, model, loss."""

from __future__ import annotations

import torch
from torch import nn

from hybridunet.config import ExperimentConfig
from hybridunet.data import CLASS_NAMES, NUM_CLASSES, eval_transform, open_dataset, train_transform
from hybridunet.data.base import SegmentationDataset
from hybridunet.engine.device import Precision
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
    dataset = open_dataset(
        d.root, split, format=d.format, transform=transform,
        cache_masks=d.cache_masks, skip_bad=d.skip_bad, seed=config.seed,
    )
    limit = d.limit_train if train else d.limit_val
    return dataset.head(limit) if limit else dataset


def class_names(config: ExperimentConfig) -> list[str]:
    n = config.model.num_classes
    return list(CLASS_NAMES) if n == NUM_CLASSES else [f"class_{i}" for i in range(n)]


def build_model(config: ExperimentConfig, device: torch.device, precision: Precision) -> nn.Module:
    model = create_model(config.model.name, **config.model.build_kwargs())
    return model.to(device).to(memory_format=precision.memory_format)


def build_loss(config: ExperimentConfig) -> nn.Module:
    return LOSSES.build(config.loss.name, **config.loss.kwargs)
