"""One pass over a loader: a training epoch, or an evaluation that fills a confusion matrix."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import torch
from torch import nn
from tqdm import tqdm

from hybridunet import distributed
from hybridunet.data import NUM_CLASSES
from hybridunet.device import FP32, Precision
from hybridunet.metrics import ConfusionMatrix, SoftDiceStudy


class NonFiniteLossError(FloatingPointError):
    """The training loss became NaN or infinite."""


def split_output(output: torch.Tensor | tuple) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """(logits, auxiliary logits) of a model that may return deep-supervision heads."""
    return (output[0], list(output[1])) if isinstance(output, tuple) else (output, [])


@torch.no_grad()
def evaluate(
    model: nn.Module,
    loader: Iterable,
    num_classes: int = NUM_CLASSES,
    loss_fn: nn.Module | None = None,
    class_names: Sequence[str] | None = None,
    device: torch.device | str = "cpu",
    precision: Precision = FP32,
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
    for x, y in loader:
        x, y = x.to(device, memory_format=precision.memory_format), y.to(device)
        with precision.autocast(device):
            logits = model(x)
        logits = logits.float()  # metrics and the loss in fp32
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


def train_epoch(run, model: nn.Module, loader, loss_fn: nn.Module, optimizer, scheduler, scaler,
                epoch: int, after_step: Callable[[nn.Module], None] | None = None, steps: int | None = None,
                epochs: int | None = None, batches: Iterable | None = None) -> dict[str, float]:
    """One epoch of optimiser steps (the first `steps` only, where given); returns train_loss,
    train_dice, lr and images_per_s. `after_step(run.model)` follows each step (an EMA of the
    weights); `epochs` is the run's count, for the progress bar; `batches` replaces the loader's
    pass (a stream that continues across rounds)."""
    t, device, precision = run.config.train, run.device, run.precision
    model.train()
    if batches is None:
        loader.sampler.set_epoch(epoch)
        batches = loader
    cm = ConfusionMatrix(run.config.model.num_classes, device=device)
    loss_sum, seen, start = 0.0, 0, time.perf_counter()
    show = t.progress and distributed.is_main()
    bar = tqdm(batches, desc=f"epoch {epoch + 1}/{epochs or t.epochs}", disable=not show, file=sys.stderr, leave=False,
               total=steps if steps is not None else None)
    for step, (x, y) in enumerate(bar):
        if steps is not None and step >= steps:
            break
        x = x.to(device, non_blocking=True, memory_format=precision.memory_format)
        y = y.to(device, non_blocking=True)
        with precision.autocast(device):
            logits, aux = split_output(model(x))
        logits = logits.float()  # the loss in fp32
        loss = loss_fn(logits, y)
        if aux:
            loss = loss + t.aux_weight * sum(loss_fn(a.float(), y) for a in aux) / len(aux)
        if not torch.isfinite(loss):
            raise NonFiniteLossError(
                f"loss is {float(loss.detach())} at epoch {epoch + 1}, step {step + 1}: lower the learning rate "
                f"(optim.lr={run.config.optim.lr}) or turn off mixed precision (train.amp={precision.amp})"
            )
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        if t.grad_clip:
            scaler.unscale_(optimizer)
            nn.utils.clip_grad_norm_(run.model.parameters(), t.grad_clip)
        scaler.step(optimizer)
        scaler.update()
        scheduler.step()
        if after_step is not None:
            after_step(run.model)
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
