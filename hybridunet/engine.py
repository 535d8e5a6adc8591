"""Training, evaluation and prediction.

`fit(config)` runs one experiment: data -> model -> epochs of training and validation ->
checkpoints. It knows nothing of MLflow: trackers and other observers plug in through the
small `Callback` interface, so training runs and tests stay fast with tracking off.
"""

from __future__ import annotations

import contextlib
import json
import math
import random
import shutil
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
import yaml
from torch import nn
from tqdm import tqdm

from hybridunet import distributed
from hybridunet.allocator import retained_cpu_memory
from hybridunet.checkpoint import atomic_write, read_checkpoint, save_checkpoint
from hybridunet.config import ExperimentConfig, parse_config
from hybridunet.data import CLASS_NAMES, NUM_CLASSES, eval_transform, make_loader, open_dataset, train_transform
from hybridunet.data.base import SegmentationDataset
from hybridunet.losses import LOSSES
from hybridunet.metrics import ConfusionMatrix, SoftDiceStudy
from hybridunet.models import create_model
from hybridunet.state import capture, restore

CHECKPOINT_FILES = ("best.safetensors", "best.json", "last.safetensors", "last.json", "config.yaml", "metrics.json")
# Keys that may change when resuming: they do not change what is computed.
RESUMABLE_CHANGES = ("train.overwrite", "train.progress", "train.out_dir", "data.num_workers", "tracking.",
                     "train.retain_cpu_memory")


class NonFiniteLossError(FloatingPointError):
    """The training loss became NaN or infinite."""


class Callback:
    """Observer of a training run; every hook is optional."""

    def on_fit_start(self, run: "Run") -> None: ...

    def on_epoch_end(self, run: "Run", epoch: int, metrics: dict[str, Any]) -> None: ...

    def on_fit_end(self, run: "Run", result: dict[str, Any]) -> None:
        """Called with the result about to be returned; may add keys to it (e.g. `run_id`)."""

    def on_exception(self, run: "Run", error: BaseException) -> None: ...


@dataclass
class Run:
    """What a training run is made of; callbacks read it."""

    config: ExperimentConfig
    out_dir: Path
    model: nn.Module
    device: torch.device
    class_names: list[str]
    val_data: SegmentationDataset
    start_epoch: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)
    best: dict[str, Any] | None = None
    resumed: bool = False
    val_confusion: ConfusionMatrix | None = None  # of the latest validation
    best_confusion: ConfusionMatrix | None = None  # of the best validation in this process
    keep_val_samples: int = 0  # callbacks ask for this many validation pictures per epoch
    val_samples: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None  # (inputs, targets, predictions)
    info: dict[str, Any] = field(default_factory=dict)  # free slot for callbacks (e.g. an MLflow run id)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def pick_device(name: str) -> torch.device:
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("train.device=cuda but CUDA is not available on this machine")
    return torch.device("cuda" if name in ("auto", "cuda") and torch.cuda.is_available() else "cpu")


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


def build_loss(config: ExperimentConfig) -> nn.Module:
    return LOSSES.build(config.loss.name, **config.loss.kwargs)


def _autocast(device: torch.device, amp: str) -> contextlib.AbstractContextManager:
    if device.type != "cuda" or amp == "none":
        return contextlib.nullcontext()
    return torch.autocast("cuda", dtype=torch.bfloat16 if amp == "bf16" else torch.float16)


def _split_output(output: torch.Tensor | tuple) -> tuple[torch.Tensor, list[torch.Tensor]]:
    return (output[0], list(output[1])) if isinstance(output, tuple) else (output, [])


@torch.no_grad()
def evaluate(
    model: nn.Module,
    loader: Iterable,
    num_classes: int = NUM_CLASSES,
    loss_fn: nn.Module | None = None,
    class_names: Sequence[str] | None = None,
    device: torch.device | str = "cpu",
    amp: str = "none",
    channels_last: bool = False,
    cm: ConfusionMatrix | None = None,
    keep: int = 0,
) -> dict[str, Any]:
    """Metrics over a whole loader: dice, miou, pixel_acc, loss, per_class_dice, soft_dice_study.

    Pass an empty `cm` to keep the confusion matrix the figures come from. With `keep`,
    the result's "samples" holds (inputs, targets, predicted labels) of the first `keep`
    images in loader order, on the CPU: pictures of this pass without a second forward.
    """
    device = torch.device(device)
    model.eval()
    cm = cm if cm is not None else ConfusionMatrix(num_classes, class_names=class_names, device=device)
    study = SoftDiceStudy()
    loss_sum, seen = 0.0, 0
    kept: list[tuple[torch.Tensor, ...]] = []
    wanted = keep
    memory = torch.channels_last if channels_last else torch.contiguous_format
    for x, y in loader:
        x, y = x.to(device, memory_format=memory), y.to(device)
        with _autocast(device, amp):
            logits = model(x)
        logits = logits.float()
        if wanted > 0:
            kept.append((x[:wanted].float().cpu(), y[:wanted].cpu(), logits[:wanted].max(1).indices.to(torch.uint8).cpu()))
            wanted -= len(kept[-1][0])
        cm.update(logits, y)
        study.update(logits, y)
        if loss_fn is not None:
            loss_sum += float(loss_fn(logits, y)) * len(x)
        seen += len(x)
    # Under DDP each rank saw its own share: sum the counts so the figures cover the whole set.
    totals = torch.tensor([loss_sum, seen, study.intersection, study.total], dtype=torch.float64, device=device)
    distributed.all_reduce_sum(totals)
    distributed.all_reduce_sum(cm.matrix)
    loss_sum, seen, study.intersection, study.total = totals.tolist()
    scores = cm.compute()
    result = {
        "dice": scores["dice"],
        "miou": scores["miou"],
        "pixel_acc": scores["pixel_acc"],
        "loss": loss_sum / seen if loss_fn is not None and seen else None,
        "per_class_dice": scores["per_class_dice"],
        "soft_dice_study": study.compute(),
    }
    if keep:
        result["samples"] = tuple(torch.cat(parts) for parts in zip(*kept)) if kept else None
    return result


def _lr_lambda(config: ExperimentConfig, steps_per_epoch: int):
    s = config.sched
    total = config.train.epochs * steps_per_epoch
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


def build_optimizer(config: ExperimentConfig, model: nn.Module) -> torch.optim.Optimizer:
    o = config.optim
    params = [p for p in model.parameters() if p.requires_grad]
    if o.name == "adam":
        return torch.optim.Adam(params, lr=o.lr, weight_decay=o.weight_decay)
    if o.name == "adamw":
        return torch.optim.AdamW(params, lr=o.lr, weight_decay=o.weight_decay)
    return torch.optim.SGD(params, lr=o.lr, momentum=o.momentum, weight_decay=o.weight_decay, nesterov=o.momentum > 0)


def run_name(config: ExperimentConfig) -> str:
    return config.name or f"{config.model.name}-s{config.seed}-{datetime.now():%Y%m%d-%H%M%S}"


def prepare_out_dir(config: ExperimentConfig, resume: bool) -> Path:
    """The run's folder. An existing one is used only to resume, or replaced with overwrite."""
    if config.train.out_dir:
        out = Path(config.train.out_dir)
    elif resume and not config.name:
        raise ValueError("--resume needs the run's folder: set train.out_dir=... (or name=... for outputs/<name>)")
    else:
        out = Path("outputs") / run_name(config)
    if resume:
        if not (out / "last.safetensors").is_file():
            raise FileNotFoundError(f"cannot resume: no complete checkpoint {out / 'last.safetensors'}")
        return out
    if out.exists() and any(out.iterdir()):
        if not config.train.overwrite:
            raise FileExistsError(f"output folder {out} already exists; pass --overwrite to replace it or --resume to continue")
        for name in CHECKPOINT_FILES:
            (out / name).unlink(missing_ok=True)
        shutil.rmtree(out / "predictions", ignore_errors=True)
    out.mkdir(parents=True, exist_ok=True)
    return out


def _shared_out_dir(config: ExperimentConfig, resume: bool, world) -> Path:
    """Rank 0 prepares the run folder and tells the others its name (or its error)."""
    answer: tuple[str, str | None]
    if world.is_main:
        try:
            answer = (str(prepare_out_dir(config, resume)), None)
        except (OSError, ValueError) as err:
            answer = ("", f"{type(err).__name__}: {err}")
            distributed.broadcast(answer)
            raise
    answer = distributed.broadcast(answer if world.is_main else ("", None))
    if answer[1] is not None:
        raise RuntimeError(f"rank 0 could not prepare the run folder: {answer[1]}")
    return Path(answer[0])


def _config_changes(saved: dict[str, Any], config: ExperimentConfig) -> list[str]:
    old, new = parse_config(saved).flat(), config.flat()
    return [
        f"{k}: {old.get(k)!r} -> {new.get(k)!r}"
        for k in sorted(set(old) | set(new))
        if old.get(k) != new.get(k) and not k.startswith(RESUMABLE_CHANGES)
    ]


def json_safe(value: Any) -> Any:
    """NaN and infinities become None, so the result is strict JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


def fit(config: ExperimentConfig, callbacks: Sequence[Callback] = (), resume: bool = False) -> dict[str, Any]:
    """Train and validate as `config` says; returns the best epoch's validation metrics
    plus `checkpoint` (the best checkpoint's path) and whatever callbacks add."""
    owns_group = not distributed.active()
    pick_device(config.train.device)  # a clear error for train.device=cuda without CUDA
    world, device = distributed.init(config.train.device)
    try:
        with retained_cpu_memory(config.train.retain_cpu_memory and device.type == "cpu"):
            return _fit(config, callbacks if world.is_main else (), resume, world, device)
    finally:
        if owns_group:
            distributed.shutdown()


def _fit(config: ExperimentConfig, callbacks: Sequence[Callback], resume: bool, world, device) -> dict[str, Any]:
    seed_everything(config.seed)
    train_data = open_split(config, config.data.train_split, train=True)
    val_data = open_split(config, config.data.val_split, train=False)
    num_classes = config.model.num_classes
    class_names = list(CLASS_NAMES) if num_classes == NUM_CLASSES else [f"class_{i}" for i in range(num_classes)]
    t = config.train
    shard = {"rank": world.rank, "num_replicas": world.size, "num_workers": config.data.num_workers, "seed": config.seed}
    train_loader = make_loader(train_data, t.batch_size, shuffle=True, **shard)
    val_loader = make_loader(val_data, t.val_batch_size or t.batch_size, shuffle=False, **shard)

    raw_model = create_model(config.model.name, **config.model.build_kwargs()).to(device)
    if world.enabled and t.sync_bn:
        raw_model = nn.SyncBatchNorm.convert_sync_batchnorm(raw_model)
    memory = torch.channels_last if t.channels_last else torch.contiguous_format
    raw_model = raw_model.to(memory_format=memory)
    model = raw_model
    if world.enabled:  # gradients averaged over ranks; evaluation uses raw_model (shards may differ in length)
        model = nn.parallel.DistributedDataParallel(raw_model, device_ids=[device.index] if device.type == "cuda" else None)
    model = torch.compile(model) if t.compile else model
    loss_fn = build_loss(config).to(device)
    optimizer = build_optimizer(config, raw_model)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _lr_lambda(config, len(train_loader)))
    scaler = torch.amp.GradScaler("cuda", enabled=device.type == "cuda" and t.amp == "fp16")

    out_dir = _shared_out_dir(config, resume, world)
    run = Run(config, out_dir, raw_model, device, class_names, val_data, resumed=resume)
    if resume:
        tensors, meta = read_checkpoint(out_dir / "last.safetensors")
        changes = _config_changes(meta["config"], config)
        if changes:
            raise ValueError(f"cannot resume {out_dir} with a different config: " + "; ".join(changes))
        raw_model.load_state_dict({k.removeprefix("model."): v for k, v in tensors.items() if k.startswith("model.")})
        restore(tensors, meta["train_state"], optimizer, scheduler, scaler)
        run.start_epoch, run.history, run.best = meta["epoch"] + 1, meta["history"], meta["best"]
        run.info.update(meta.get("info", {}))
    elif world.is_main:
        atomic_write(out_dir / "config.yaml", lambda tmp: tmp.write_text(yaml.safe_dump(config.to_dict(), sort_keys=False)))

    meta_base = {
        "model": {"name": config.model.name, **config.model.build_kwargs()},
        "class_names": class_names,
        "config": config.to_dict(),
    }
    try:
        for cb in callbacks:
            cb.on_fit_start(run)
        stale = 0
        for epoch in range(run.start_epoch, t.epochs):
            train_metrics = _train_epoch(run, model, train_loader, loss_fn, optimizer, scheduler, scaler, epoch)
            distributed.sync_buffers(raw_model)
            run.val_confusion = ConfusionMatrix(num_classes, class_names=class_names, device=device)
            val = evaluate(raw_model, val_loader, num_classes, loss_fn, class_names, device, t.amp, t.channels_last,
                           cm=run.val_confusion, keep=run.keep_val_samples)
            run.val_samples = val.pop("samples", None)
            metrics = {**train_metrics, **{f"val_{k}": v for k, v in val.items()}, "epoch": epoch}
            run.history.append(json_safe(metrics))
            improved = run.best is None or val["dice"] > run.best["dice"]
            if improved:
                run.best = json_safe({**val, "epoch": epoch})
                run.best_confusion = run.val_confusion
                if world.is_main:
                    save_checkpoint(out_dir / "best.safetensors", raw_model, {**meta_base, "epoch": epoch, "metrics": run.best})
                stale = 0
            else:
                stale += 1
            if world.is_main:
                tensors, plain = capture(optimizer, scheduler, scaler)
                save_checkpoint(
                    out_dir / "last.safetensors", raw_model,
                    {**meta_base, "epoch": epoch, "metrics": json_safe(val), "history": run.history,
                     "best": run.best, "train_state": plain, "info": run.info},
                    extra_tensors=tensors,
                )
            for cb in callbacks:
                cb.on_epoch_end(run, epoch, metrics)
            if t.early_stopping and stale >= t.early_stopping:
                break
        result = {**run.best, "checkpoint": str(out_dir / "best.safetensors")}
        result.pop("epoch", None)
        for cb in callbacks:
            cb.on_fit_end(run, result)
        if world.is_main:
            atomic_write(out_dir / "metrics.json", lambda tmp: tmp.write_text(json.dumps(result, indent=2)))
        distributed.barrier()  # the checkpoint exists for every rank that returns its path
        return result
    except BaseException as error:
        for cb in callbacks:
            cb.on_exception(run, error)
        raise


def _train_epoch(run: Run, model, loader, loss_fn, optimizer, scheduler, scaler, epoch: int) -> dict[str, float]:
    t, device = run.config.train, run.device
    model.train()
    loader.sampler.set_epoch(epoch)
    cm = ConfusionMatrix(run.config.model.num_classes, device=device)
    memory = torch.channels_last if t.channels_last else torch.contiguous_format
    loss_sum, seen, start = 0.0, 0, time.perf_counter()
    show = t.progress and not (distributed.active() and torch.distributed.get_rank() != 0)
    bar = tqdm(loader, desc=f"epoch {epoch + 1}/{t.epochs}", disable=not show, file=sys.stderr, leave=False)
    for step, (x, y) in enumerate(bar):
        x, y = x.to(device, non_blocking=True, memory_format=memory), y.to(device, non_blocking=True)
        with _autocast(device, t.amp):
            logits, aux = _split_output(model(x))
            loss = loss_fn(logits, y)
            if aux:
                loss = loss + t.aux_weight * sum(loss_fn(a, y) for a in aux) / len(aux)
        if not torch.isfinite(loss):
            raise NonFiniteLossError(
                f"loss is {float(loss.detach())} at epoch {epoch + 1}, step {step + 1}: lower the learning rate "
                f"(optim.lr={run.config.optim.lr}) or turn off mixed precision (train.amp={t.amp})"
            )
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        if t.grad_clip:
            scaler.unscale_(optimizer)
            nn.utils.clip_grad_norm_(run.model.parameters(), t.grad_clip)
        scaler.step(optimizer)
        scaler.update()
        scheduler.step()
        loss_sum += float(loss.detach()) * len(x)
        seen += len(x)
        cm.update(logits.detach(), y)
        if show:
            bar.set_postfix(loss=f"{loss_sum / seen:.4f}", dice=f"{cm.compute()['dice']:.3f}",
                            img_s=f"{seen / (time.perf_counter() - start):.1f}")
    elapsed = time.perf_counter() - start
    totals = distributed.all_reduce_sum(torch.tensor([loss_sum, seen], dtype=torch.float64, device=device))
    distributed.all_reduce_sum(cm.matrix)
    loss_sum, seen = totals.tolist()
    return {
        "train_loss": loss_sum / seen,
        "train_dice": cm.compute()["dice"],
        "lr": optimizer.param_groups[0]["lr"],
        "images_per_s": seen / elapsed,
    }


@torch.no_grad()
def predict(
    model: nn.Module,
    image: np.ndarray,
    normalize: str = "imagenet",
    size: int | None = None,
    device: torch.device | str = "cpu",
) -> np.ndarray:
    """Class mask (H, W) uint8 for an RGB uint8 image of any size.

    With `size`, the image is resized to size x size for the model and the logits resized
    back (bilinear) to the input's size; otherwise the model sees the image as it is.
    """
    h, w = image.shape[:2]
    x = eval_transform(size, normalize)(image=image)["image"][None].to(device)
    model.eval()
    logits = model(x).float()
    if logits.shape[-2:] != (h, w):
        logits = F.interpolate(logits, size=(h, w), mode="bilinear", align_corners=False)
    return logits.argmax(1)[0].to(torch.uint8).cpu().numpy()
