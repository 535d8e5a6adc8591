"""The optimiser and the learning-rate schedule a config names."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn

from hybridunet.config import ExperimentConfig


def build_optimizer(config: ExperimentConfig, model: nn.Module) -> torch.optim.Optimizer:
    o = config.optim
    params = [p for p in model.parameters() if p.requires_grad]
    if o.name == "adam":
        return torch.optim.Adam(params, lr=o.lr, weight_decay=o.weight_decay)
    if o.name == "adamw":
        return torch.optim.AdamW(params, lr=o.lr, weight_decay=o.weight_decay)
    return torch.optim.SGD(params, lr=o.lr, momentum=o.momentum, weight_decay=o.weight_decay, nesterov=o.momentum > 0)


def lr_factor(config: ExperimentConfig, steps_per_epoch: int) -> Callable[[int], float]:
    """The multiplier of the base learning rate at each optimiser step (warm-up, then the schedule)."""
    s = config.sched
    total = config.train.steps or config.train.epochs * steps_per_epoch
    warmup = int(s.warmup_epochs * steps_per_epoch)

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        t = min(1.0, (step - warmup) / max(1, total - warmup))
        if s.name == "cosine":
            return s.min_lr_ratio + (1 - s.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * t))
        if s.name == "poly":
            return s.min_lr_ratio + (1 - s.min_lr_ratio) * (1 - t) ** s.power
        if s.name == "step":
            return s.gamma ** ((step // steps_per_epoch) // s.step_epochs)
        return 1.0

    return factor


def build_scheduler(config: ExperimentConfig, optimizer: torch.optim.Optimizer,
                    steps_per_epoch: int) -> torch.optim.lr_scheduler.LRScheduler:
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lr_factor(config, steps_per_epoch))
