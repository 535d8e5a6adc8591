"""The record of a training run and the callback interface observers implement."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import torch
from torch import nn

from hybridunet.config import ExperimentConfig
from hybridunet.data.base import SegmentationDataset
from hybridunet.device import Precision
from hybridunet.metrics import ConfusionMatrix


class Callback:
    """Observer of a training run; every hook is optional."""

    def on_fit_start(self, run: Run) -> None: ...

    def on_epoch_end(self, run: Run, epoch: int, metrics: dict[str, Any]) -> None: ...

    def on_fit_end(self, run: Run, result: dict[str, Any]) -> None:
        """Called with the result about to be returned; may add keys to it (e.g. `run_id`)."""

    def on_exception(self, run: Run, error: BaseException) -> None: ...


@dataclass
class Run:
    """What a training run is made of; callbacks read it."""

    config: ExperimentConfig
    out_dir: Path
    model: nn.Module
    device: torch.device
    precision: Precision
    class_names: list[str]
    val_data: SegmentationDataset
    train_data: SegmentationDataset | None = None
    class_weights: list[float] | None = None  # the loss's, resolved (computed ones cached in the run folder)
    start_epoch: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)
    best: dict[str, Any] | None = None
    resumed: bool = False
    val_confusion: ConfusionMatrix | None = None  # of the latest validation
    best_confusion: ConfusionMatrix | None = None  # of the best validation in this process
    keep_val_samples: int = 0  # callbacks ask for this many validation pictures per epoch
    val_samples: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None  # (inputs, targets, predictions)
    info: dict[str, Any] = field(default_factory=dict)  # free slot for callbacks (e.g. an MLflow run id)
    ema: nn.Module | None = None  # the weights' moving average (train.ema.decay), what is validated and saved

    @cached_property
    def data_fingerprint(self) -> str:
        """12 hex digits over the files the run trained and validated on (`data.fingerprint`)."""
        return self.fingerprint_later()()

    def fingerprint_later(self) -> Callable[[], str]:
        """The fingerprint as a call for later, holding the datasets and root only (not the run's
        model): it stats every file, so a result computes it when first wanted."""
        from hybridunet.data.fingerprint import data_fingerprint

        datasets = [d for d in (self.train_data, self.val_data) if d is not None]
        return functools.partial(data_fingerprint, datasets, self.config.data.root)
