"""Size and cost of a model: parameters and FLOPs counted by torch's own flop counter."""

from __future__ import annotations

import time

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from hybridunet.device import FP32, Precision


def count_params(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def count_flops(model: nn.Module, input_size: tuple[int, int, int] = (3, 256, 256)) -> int:
    """Forward FLOPs for one image (a multiply-add counts 2), by torch.utils.flop_counter."""
    was_training = model.training
    device = next(model.parameters()).device
    model.eval()
    try:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            model(torch.zeros(1, *input_size, device=device))
    finally:
        model.train(was_training)
    return counter.get_total_flops()



def images_per_second(model: nn.Module, input_size: tuple[int, int, int], batch: int, device: torch.device,
                      precision: Precision | None = None, repeats: int = 3) -> float:
    """Eval-mode forward throughput at one batch size, under the run's precision: the best of
    `repeats` timed batches after one warm-up (the best: these machines are noisy)."""
    precision = precision or FP32
    was_training = model.training
    model.eval()
    x = torch.zeros(batch, *input_size, device=device).to(memory_format=precision.memory_format)
    best = float("inf")
    try:
        with torch.no_grad(), precision.autocast(device):
            for i in range(repeats + 1):
                _sync(device)
                start = time.perf_counter()
                model(x)
                _sync(device)
                if i:
                    best = min(best, time.perf_counter() - start)
    finally:
        model.train(was_training)
    return batch / best


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def count_train_flops(model: nn.Module, input_size: tuple[int, int, int] = (3, 256, 256)) -> int:
    """Training FLOPs for one image: forward and backward of a training step (torch.utils.flop_counter)."""
    was_training = model.training
    device = next(model.parameters()).device
    model.train()
    try:
        with FlopCounterMode(display=False) as counter:
            out = model(torch.zeros(1, *input_size, device=device))
            heads = [out[0], *out[1]] if isinstance(out, tuple) else [out]  # deep-supervision heads too
            sum(h.float().sum() for h in heads).backward()
    finally:
        model.zero_grad(set_to_none=True)
        model.train(was_training)
    return counter.get_total_flops()
