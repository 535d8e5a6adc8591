"""`fit(config)`: data -> model -> epochs of training and validation -> checkpoints.

It knows nothing of MLflow: trackers and other observers plug in through `Callback`, so
training runs and tests stay fast with tracking off.
"""

from __future__ import annotations

import json
import random
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import yaml
from torch import nn

from hybridunet import distributed
from hybridunet.allocator import retained_cpu_memory
from hybridunet.checkpoint import atomic_write, read_checkpoint, save_checkpoint
from hybridunet.config import ExperimentConfig
from hybridunet.data import make_loader
from hybridunet.device import hardware_name, resolve_precision
from hybridunet.engine.build import build_loss, build_model, class_names, open_split, resolve_class_weights
from hybridunet.engine.loops import evaluate, train_epoch
from hybridunet.engine.optim import build_optimizer, build_scheduler
from hybridunet.engine.result import FitResult
from hybridunet.engine.run import Callback, Run
from hybridunet.engine.rundir import config_changes, shared_out_dir
from hybridunet.errors import ConfigError
from hybridunet.jsonsafe import json_safe
from hybridunet.metrics import ConfusionMatrix
from hybridunet.state import capture, restore


def fit(config: ExperimentConfig, callbacks: Sequence[Callback] = (), resume: bool = False) -> FitResult:
    """Train and validate as `config` says, writing checkpoints into the run's folder.

    The same call runs under `torchrun` (each process takes its share; rank 0 writes and
    calls the callbacks). `fit` itself logs nothing to MLflow: pass
    `callbacks=[MLflowCallback(config.tracking)]` (`hybridunet.tracking`), as
    `hybridunet train` does when `tracking.enabled` is true.

    Args:
        config: The experiment, from `hybridunet.config.load_config`.
        callbacks: `hybridunet.engine.Callback`s, called at the run's start, each epoch's
            end and the run's end.
        resume: Continue the run in `config.train.out_dir` from its last checkpoint; the
            result is then that of an uninterrupted run.

    Returns:
        The best epoch's validation metrics (`dice`, `miou`, `pixel_acc`, `loss`,
            `per_class_dice`, ...) plus `checkpoint`, the best checkpoint's path, `cost`,
            and what callbacks add (the MLflow callback: `run_id`, `model_uri`); the
            epochs' history, the data fingerprint and the seconds are attributes.

    Raises:
        hybridunet.errors.UserError: Bad input (data, an existing output folder, ...), said
            in one line that names it.

    Example:
        ```python
        from hybridunet.config import load_config
        from hybridunet.engine import fit

        result = fit(load_config("tiny", ["train.epochs=1"]))   # needs data/synthetic
        result["dice"], result["checkpoint"]
        ```
    """
    owns_group = not distributed.active()
    world, device = distributed.init(config.train.device)
    try:
        with retained_cpu_memory(config.train.retain_cpu_memory and device.type == "cpu"):
            return _fit(config, list(callbacks) if world.is_main else [], resume, world, device)
    finally:
        if owns_group:
            distributed.shutdown()


def _fit(config: ExperimentConfig, callbacks: list[Callback], resume: bool, world, device) -> FitResult:
    start = time.perf_counter()
    seed_everything(config.seed)
    precision = resolve_precision(device, config.train.amp, config.train.channels_last)
    t = _Training.assemble(config, world, device, precision)
    run_dir = shared_out_dir(config, resume, world)
    run = Run(config, run_dir.path, t.raw_model, device, precision, class_names(config), t.val_loader.dataset,
              train_data=t.train_loader.dataset, resumed=resume, ema=t.ema.module if t.ema is not None else None)
    if world.is_main:
        print(f"hybridunet: {config.model.label} seed {config.seed} on {device.type} ({hardware_name(device)}), "
              f"{precision}; {len(run.train_data)} training images -> {run.out_dir}", file=sys.stderr, flush=True)
    try:
        run.class_weights = resolve_class_weights(config, run.train_data, run.class_names, run.out_dir)
        t.loss_fn = build_loss(config, run.class_weights).to(device)
        t.restore(run) if resume else t.start(run)
        for cb in callbacks:
            cb.on_fit_start(run)
        stale = 0
        for epoch in range(run.start_epoch, t.epochs):
            metrics = {**t.train(run, epoch), **t.validate(run), "epoch": epoch}
            stale = 0 if t.record(run, epoch, metrics) else stale + 1
            for cb in callbacks:
                cb.on_epoch_end(run, epoch, metrics)
            if config.train.early_stopping and stale >= config.train.early_stopping:
                break
        best = {k: v for k, v in run.best.items() if k != "epoch"}
        result = FitResult({**best, "checkpoint": str(run.out_dir / "best.safetensors")}, config, run.history,
                           run.fingerprint_later(), time.perf_counter() - start)
        if world.is_main:
            result["cost"] = run_cost(run, config.train.val_batch_size or config.train.batch_size)
        for cb in callbacks:
            cb.on_fit_end(run, result)
        if world.is_main:
            atomic_write(run.out_dir / "metrics.json", lambda tmp: tmp.write_text(json.dumps(result, indent=2)))
        distributed.barrier()  # the checkpoint exists for every rank that returns its path
        return result
    except BaseException as error:
        for cb in callbacks:
            cb.on_exception(run, error)
        run_dir.discard_if_empty_of_results()
        raise


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _train_loader(config: ExperimentConfig, world: distributed.World, device: torch.device):
    """The training batches: a DataLoader, or with data.in_memory the decoded split on the device."""
    d, t = config.data, config.train
    data = open_split(config, d.train_split, train=True)
    if d.in_memory:
        from hybridunet.data.in_memory import InMemoryLoader

        return InMemoryLoader(data, t.batch_size, d.size, d.normalize, d.augment.scale, d.augment.hflip,
                              d.augment.color_jitter, device=device, seed=config.seed, rank=world.rank,
                              num_replicas=world.size, progress=t.progress and distributed.is_main())
    return make_loader(data, t.batch_size, shuffle=True, rank=world.rank, num_replicas=world.size,
                       num_workers=d.num_workers, seed=config.seed)


@dataclass
class _Training:
    """The moving parts of one training, and the steps `fit` takes with them."""

    config: ExperimentConfig
    world: distributed.World
    raw_model: nn.Module  # what is checkpointed and evaluated
    model: nn.Module  # what trains: raw_model, maybe wrapped in DDP and compiled
    train_loader: Any
    val_loader: Any
    loss_fn: nn.Module | None
    optimizer: torch.optim.Optimizer
    scheduler: Any
    scaler: torch.amp.GradScaler
    ema: Any = None  # timm's ModelEmaV3 of raw_model, with train.ema.decay

    stream: Any = None  # with train.steps and train.looks: the batches, continuing across looks

    @property
    def epochs(self) -> int:
        """Rounds of training then validation: train.epochs; with train.steps, as many passes as
        its steps begin, or train.looks."""
        t = self.config.train
        if t.steps is None:
            return t.epochs
        return t.looks or -(-t.steps // len(self.train_loader))

    def bounds(self, epoch: int) -> tuple[int, int]:
        """The first and past-the-last optimiser step of round `epoch` (train.steps only)."""
        t = self.config.train
        assert t.steps is not None
        if t.looks is None:
            per = len(self.train_loader)
            return epoch * per, min(t.steps, (epoch + 1) * per)
        return round(epoch * t.steps / t.looks), round((epoch + 1) * t.steps / t.looks)

    def steps_in(self, epoch: int) -> int | None:
        """Optimiser steps in round `epoch` when train.steps sets them, else None (the whole loader)."""
        if self.config.train.steps is None:
            return None
        first, end = self.bounds(epoch)
        return end - first

    def batches(self, epoch: int) -> Any:
        """Round `epoch`'s batches with train.looks: the loader's passes continued where the last
        round stopped (after a resume, from the round's first step, the pass replayed to it)."""
        if self.config.train.looks is None or self.config.train.steps is None:
            return None
        first, end = self.bounds(epoch)
        if self.stream is None or self.stream.position != first:
            self.stream = _Stream(self.train_loader, first)
        return self.stream.take(end - first)

    @property
    def evaluated(self) -> nn.Module:
        """What is validated and saved as the model: the weights' moving average when on."""
        return self.ema.module if self.ema is not None else self.raw_model

    @classmethod
    def assemble(cls, config, world, device, precision) -> _Training:
        t = config.train
        shard = {"rank": world.rank, "num_replicas": world.size, "num_workers": config.data.num_workers,
                 "seed": config.seed}
        train_loader = _train_loader(config, world, device)
        val_loader = make_loader(open_split(config, config.data.val_split, train=False),
                                 t.val_batch_size or t.batch_size, shuffle=False, **shard)
        raw_model = build_model(config, device, precision)
        if world.enabled and t.sync_bn:
            raw_model = nn.SyncBatchNorm.convert_sync_batchnorm(raw_model)
        model = raw_model
        if world.enabled:  # gradients averaged over ranks; evaluation uses raw_model (shards may differ in length)
            model = nn.parallel.DistributedDataParallel(raw_model, device_ids=[device.index] if device.type == "cuda" else None)
        model = torch.compile(model) if t.compile else model
        optimizer = build_optimizer(config, raw_model)
        ema = None
        if t.ema.decay is not None:
            from timm.utils import ModelEmaV3

            # with timm's warm-up: the decay grows with the steps taken, 1 - (1 + step)^(-2/3), up to
            # train.ema.decay, so a short run is not an average dominated by its initial weights
            ema = ModelEmaV3(raw_model, decay=t.ema.decay, use_warmup=True)
        return cls(config, world, raw_model, model, train_loader, val_loader, None,  # the loss: once the run folder is
                   optimizer, build_scheduler(config, optimizer, len(train_loader)),   # there (its class weights)
                   torch.amp.GradScaler("cuda", enabled=precision.amp == "fp16"), ema)

    def meta(self, run: Run) -> dict[str, Any]:
        c = self.config
        return {"model": {"name": c.model.name, **c.model.build_kwargs()}, "class_names": run.class_names,
                "config": c.to_dict(), "precision": run.precision.as_dict(), "class_weights": run.class_weights}

    def start(self, run: Run) -> None:
        if self.world.is_main:
            text = yaml.safe_dump(self.config.to_dict(), sort_keys=False)
            atomic_write(run.out_dir / "config.yaml", lambda tmp: tmp.write_text(text))

    def restore(self, run: Run) -> None:
        tensors, meta = read_checkpoint(run.out_dir / "last.safetensors")
        changes = config_changes(meta["config"], self.config)
        if changes:
            raise ConfigError(f"cannot resume {run.out_dir} with a different config: " + "; ".join(changes))
        self.raw_model.load_state_dict({k.removeprefix("model."): v for k, v in tensors.items() if k.startswith("model.")})
        if self.ema is not None:
            self.ema.module.load_state_dict({k.removeprefix("ema."): v for k, v in tensors.items() if k.startswith("ema.")})
        restore(tensors, meta["train_state"], self.optimizer, self.scheduler, self.scaler)
        run.start_epoch, run.history, run.best = meta["epoch"] + 1, meta["history"], meta["best"]
        run.info.update(meta.get("info", {}))

    def train(self, run: Run, epoch: int) -> dict[str, float]:
        metrics = train_epoch(run, self.model, self.train_loader, self.loss_fn, self.optimizer, self.scheduler,
                              self.scaler, epoch, after_step=self._update_ema if self.ema is not None else None,
                              steps=self.steps_in(epoch), epochs=self.epochs, batches=self.batches(epoch))
        distributed.sync_buffers(self.raw_model)
        if self.ema is not None:  # each rank averaged its own batch statistics
            distributed.sync_buffers(self.ema.module)
        return metrics

    def _update_ema(self, model: nn.Module) -> None:
        self.ema.update(model, step=self.scheduler.last_epoch)  # optimiser steps so far (resumed with the scheduler)

    def validate(self, run: Run) -> dict[str, Any]:
        run.val_confusion = ConfusionMatrix(self.config.model.num_classes, class_names=run.class_names,
                                            device=run.device)
        val = evaluate(self.evaluated, self.val_loader, self.config.model.num_classes, self.loss_fn,
                       run.class_names, run.device, run.precision, cm=run.val_confusion, keep=run.keep_val_samples)
        run.val_samples = val.pop("samples", None)
        return {f"val_{k}": v for k, v in val.items()}

    def record(self, run: Run, epoch: int, metrics: dict[str, Any]) -> bool:
        """Add the epoch to the history and write the checkpoints; True when it is the best yet."""
        val = {k.removeprefix("val_"): v for k, v in metrics.items() if k.startswith("val_")}
        run.history.append(json_safe(metrics))
        improved = run.best is None or val["dice"] > run.best["dice"]
        if improved:
            run.best = json_safe({**val, "epoch": epoch})
            run.best_confusion = run.val_confusion
        if self.world.is_main:
            meta = self.meta(run)
            if improved:
                save_checkpoint(run.out_dir / "best.safetensors", self.evaluated,
                                {**meta, "epoch": epoch, "metrics": run.best})
            tensors, plain = capture(self.optimizer, self.scheduler, self.scaler)
            if self.ema is not None:  # the training weights are the model; the average resumes beside them
                tensors.update({f"ema.{k}": v for k, v in self.ema.module.state_dict().items()})
            save_checkpoint(run.out_dir / "last.safetensors", self.raw_model,
                            {**meta, "epoch": epoch, "metrics": json_safe(val), "history": run.history,
                             "weights": "training; the EMA scored in metrics is ema.*" if self.ema is not None else "training",
                             "best": run.best, "train_state": plain, "info": run.info},
                            extra_tensors=tensors)
        return improved


class _Stream:
    """The training batches as one stream over the loader's passes (each pass reshuffled by
    `set_epoch`), from optimiser step `position`: replaying a pass up to it keeps a resumed run's
    data order exactly."""

    def __init__(self, loader: Any, position: int) -> None:
        self.loader, self.position = loader, position
        per = len(loader)
        self.pass_, skip = divmod(position, per)
        self.iterator = self._open()
        for _ in range(skip):
            next(self.iterator)

    def _open(self) -> Any:
        self.loader.sampler.set_epoch(self.pass_)
        return iter(self.loader)

    def take(self, count: int) -> Any:
        for _ in range(count):
            try:
                batch = next(self.iterator)
            except StopIteration:
                self.pass_ += 1
                self.iterator = self._open()
                batch = next(self.iterator)
            self.position += 1
            yield batch


def run_cost(run: Run, batch: int) -> dict[str, float | None]:
    """What the run's model costs, for Dice-against-cost charts: millions of parameters,
    forward GFLOPs per image at the training size, training images/s (the median epoch) and
    eval-mode inference images/s at the validation batch size on the run's device and
    precision (the best checkpoint has the same architecture, so the same speed)."""
    from hybridunet.models.summary import count_flops, count_params, images_per_second

    shape = (3, run.config.data.size, run.config.data.size)
    speeds = sorted(row["images_per_s"] for row in run.history if row.get("images_per_s"))
    return {"params_m": count_params(run.model) / 1e6, "gflops": count_flops(run.model, shape) / 1e9,
            "train_images_per_s": speeds[len(speeds) // 2] if speeds else None,
            "inference_images_per_s": images_per_second(run.model, shape, batch, run.device, run.precision)}
