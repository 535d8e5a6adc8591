"""Comparisons at matched training cost: the cheaper arm trains longer, so a difference is not
bought by compute alone.

`flops`: each arm's training FLOPs per step (forward and backward of one image, counted by
torch's flop counter, times the batch); `time`: each arm's seconds per step, timed here at
the start on a synthetic batch (a short warm-up, then a few timed steps). The arm that costs
most keeps its recipe's steps; every other arm trains `train.steps` = its cost matched to it
(the schedule stretched over them), within one step.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal, get_args

from hybridunet.config import ExperimentConfig
from hybridunet.errors import UsageError

MatchCost = Literal["none", "flops", "time"]
MATCH_COSTS: tuple[MatchCost, ...] = get_args(MatchCost)
WORDS = {"flops": "at matched FLOPs", "time": "at matched time"}  # what a decision line adds


def check_match_cost(mode: str) -> MatchCost:
    """The mode, or one line naming the value."""
    if mode not in MATCH_COSTS:
        raise UsageError(f"--match-cost {mode!r}: expected one of {', '.join(MATCH_COSTS)}")
    return mode


@dataclass(frozen=True)
class Budget:
    """What one arm trains under a matched cost."""

    mode: str
    base_steps: int  # its own recipe's optimiser steps
    steps: int  # what it trains
    per_step: float  # what the mode measures per step: training FLOPs, or seconds
    flops_per_step: float  # training FLOPs per step, in either mode (the run's total is reported)
    recipe: str = ""  # the arm's config hash when measured: a journal's budget serves that recipe only

    @property
    def multiplier(self) -> float:
        return self.steps / self.base_steps

    def record(self) -> dict[str, Any]:
        """The run's cost entries (RunRecord.cost, so the journal and the table; MLflow); the
        costliest arm's runs are unmatched (mode none, multiplier 1): every mode shares them."""
        mode = self.mode if self.steps != self.base_steps else "none"
        return {"match_cost": mode, "cost_multiplier": self.multiplier, "train_steps": float(self.steps),
                "train_tflops": self.steps * self.flops_per_step / 1e12, f"{self.mode}_per_step": self.per_step}


def steps_per_epoch(config: ExperimentConfig) -> int:
    """Optimiser steps in one epoch of `config` on one process."""
    from hybridunet.engine.build import open_split

    return math.ceil(len(open_split(config, config.data.train_split, train=True)) / config.train.batch_size)


def base_steps(config: ExperimentConfig) -> int:
    return config.train.steps or config.train.epochs * steps_per_epoch(config)


def train_flops_per_step(config: ExperimentConfig) -> float:
    """Training FLOPs of one step: forward and backward of one image, times the batch."""
    import torch

    from hybridunet.models import create_model
    from hybridunet.models.summary import count_train_flops

    torch.manual_seed(0)
    model = create_model(config.model.name, **config.model.build_kwargs())
    return count_train_flops(model, (3, config.data.size, config.data.size)) * config.train.batch_size


def seconds_per_step(config: ExperimentConfig, warmup: int = 2, steps: int = 5) -> float:
    """Seconds of one training step of `config`'s model on this machine, at its batch, size and
    precision (a synthetic batch: the model's cost, not the data loader's). The median step."""
    import torch

    from hybridunet.device import pick_device, resolve_precision
    from hybridunet.engine.build import build_model
    from hybridunet.engine.loops import split_output
    from hybridunet.engine.optim import build_optimizer

    torch.manual_seed(0)
    device = pick_device(config.train.device)
    precision = resolve_precision(device, config.train.amp, config.train.channels_last)
    model = build_model(config, device, precision)
    optimizer = build_optimizer(config, model)
    size, batch = config.data.size, config.train.batch_size
    x = torch.randn(batch, 3, size, size, device=device).to(memory_format=precision.memory_format)
    y = torch.randint(0, config.model.num_classes, (batch, size, size), device=device)
    loss_fn = torch.nn.CrossEntropyLoss()
    times = []
    model.train()
    for i in range(warmup + steps):
        start = time.perf_counter()
        with precision.autocast(device):
            logits, aux = split_output(model(x))
        loss = loss_fn(logits.float(), y) + sum((loss_fn(a.float(), y) for a in aux), torch.zeros((), device=device))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        if i >= warmup:
            times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]


def match(configs: Sequence[tuple[str, ExperimentConfig]], mode: MatchCost,
          recorded: Mapping[str, Mapping[str, Any]] | None = None) -> dict[str, Budget]:
    """Each arm's budget at matched `mode`: the costliest arm's total (its steps x its cost per
    step) is every arm's; `recorded` (a journal's) is reused so a continued comparison trains
    what it began with."""
    if recorded:
        missing = [label for label, _ in configs if label not in recorded]
        if missing:
            raise UsageError(f"the journal's budgets are for {sorted(recorded)}, not for {missing}: "
                             "use another journal for another set of arms")
        budgets = {label: Budget(**dict(recorded[label])) for label, _ in configs}
        for label, config in configs:
            if budgets[label].recipe != config.result_hash():
                raise UsageError(f"the journal's {mode} budget for {label} was measured on recipe "
                                 f"{budgets[label].recipe}; this one is {config.result_hash()}: "
                                 "use another journal for another recipe")
        return budgets
    flops = {label: train_flops_per_step(config) for label, config in configs}
    costs = {label: (base_steps(config), flops[label] if mode == "flops" else seconds_per_step(config))
             for label, config in configs}
    target = max(steps * per_step for steps, per_step in costs.values())
    recipes = {label: config.result_hash() for label, config in configs}
    return {label: Budget(mode, steps, max(steps, round(target / per_step)), per_step, flops[label], recipes[label])
            for label, (steps, per_step) in costs.items()}


def matched_label(label: str, budget: Budget) -> str:
    """A matched arm's label shows its multiplier (`unet@1.15x-flops`); the costliest keeps its own."""
    return label if budget.steps == budget.base_steps else f"{label}@{budget.multiplier:.2f}x-{budget.mode}"


def unmatched_label(label: str) -> str:
    """The arm's own label, without a matched multiplier."""
    return re.sub(r"@[0-9.]+x-(flops|time)$", "", label)


def with_budget(config: ExperimentConfig, budget: Budget) -> ExperimentConfig:
    """`config` training its budget's steps; the costliest arm's config is left as it is, so its
    runs are the unmatched comparison's (shared across modes in one journal)."""
    if budget.steps == budget.base_steps:
        return config
    looks = config.train.looks or (config.train.epochs if config.train.steps is None else None)
    matched: ExperimentConfig = config.model_copy(
        update={"train": config.train.model_copy(update={"steps": budget.steps, "looks": looks})})
    return matched


def as_journal(budgets: Mapping[str, Budget]) -> dict[str, Any]:
    """The journal's match line: a continued comparison reuses these budgets."""
    return {label: asdict(b) for label, b in budgets.items()}
