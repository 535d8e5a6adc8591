"""Pad inputs to a model's stride so any H, W works; the caller crops the output back."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def pad_to_multiple(x: torch.Tensor, multiple: int) -> torch.Tensor:
    """Zero-pad the bottom and right of an (N, C, H, W) tensor up to multiples of `multiple`.

    Padding only at the far edges keeps the original pixels at the same indices, so
    ``out[..., :H, :W]`` recovers the prediction for the input.
    """
    h, w = x.shape[-2:]
    pad_h, pad_w = -h % multiple, -w % multiple
    # While compiling or exporting, pad always (maybe by zero), so the graph computes the
    # padding from the input's size instead of baking in the example's.
    if pad_h or pad_w or torch.compiler.is_compiling() or torch.jit.is_tracing():
        x = F.pad(x, (0, pad_w, 0, pad_h))
    return x
