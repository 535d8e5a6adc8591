"""From an RGB image to a class mask through any predictor: resize, normalise, tile, resize back.

It knows no model: a predictor gives logits for a normalised batch and says how inputs are
normalised and what their sides must divide by; the PyTorch checkpoint and the ONNX export
go through the same steps, so they give the same masks.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import numpy as np
import torch
import torch.nn.functional as F

from hybridunet.data.transforms import eval_transform
from hybridunet.errors import UsageError


class Logits(Protocol):
    normalize: str
    stride: int

    def logits(self, batch: torch.Tensor) -> torch.Tensor: ...


@torch.no_grad()
def segment(predictor: Logits, image: np.ndarray, size: int | None = None, tile: int | None = None,
            overlap: float = 0.25, blend: str = "gaussian") -> np.ndarray:
    """Class mask (H, W) uint8 for an RGB uint8 image of any size.

    With `size`, the image is resized to size x size for the model and the logits resized
    back (bilinear) to the input's size; otherwise the model sees the image as it is. With
    `tile`, the model sees tile x tile windows overlapping by `overlap`, blended (see
    `tiled_logits`), so memory is bounded by one tile and the running class scores.
    """
    h, w = image.shape[:2]
    x = eval_transform(size, predictor.normalize)(image=image)["image"][None]
    if tile is None:
        logits = predictor.logits(x)
    else:
        logits = tiled_logits(predictor.logits, x, tile, overlap, blend, stride=predictor.stride)
    if logits.shape[-2:] != (h, w):
        logits = F.interpolate(logits, size=(h, w), mode="bilinear", align_corners=False)
    return logits.argmax(1)[0].to(torch.uint8).cpu().numpy()


def blend_window(tile_h: int, tile_w: int, blend: str = "gaussian") -> torch.Tensor:
    """Weights of a tile's pixels when overlapping tiles are blended: a Gaussian (sigma 1/8
    of the tile, as nnU-Net) or a linear ramp, highest in the centre, never zero."""
    def axis(n: int) -> torch.Tensor:
        centre = torch.arange(n, dtype=torch.float32) - (n - 1) / 2
        if blend == "gaussian":
            return torch.exp(-0.5 * (centre / (n / 8)) ** 2)
        if blend == "linear":
            return 1 - centre.abs() / (n / 2 + 1)
        raise UsageError(f"--blend {blend!r}: expected 'gaussian' or 'linear'")

    window = axis(tile_h)[:, None] * axis(tile_w)[None, :]
    return (window / window.max()).clamp_min(1e-3)


def check_tiling(tile: int, overlap: float, blend: str, stride: int = 1) -> None:
    """Fail naming the flag when tiling values cannot work."""
    if tile < stride:
        raise UsageError(f"--tile {tile}: must be at least the model's stride ({stride})")
    if not 0 <= overlap < 1:
        raise UsageError(f"--overlap {overlap}: expected a fraction in [0, 1)")
    blend_window(1, 1, blend)


def tile_starts(length: int, tile: int, step: int) -> list[int]:
    """Window starts covering 0..length: every `step`, the last flush with the end."""
    if length <= tile:
        return [0]
    starts = list(range(0, length - tile, step))
    return starts + [length - tile]


def tiled_logits(run: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, tile: int, overlap: float = 0.25,
                 blend: str = "gaussian", stride: int = 1) -> torch.Tensor:
    """Logits (1, C, H, W) of a (1, 3, H, W) input through `run` in tile x tile windows
    (smaller where the input is), overlapping by `overlap`, summed with `blend_window`
    weights and normalised. A window covering the whole input gives `run(x)` itself."""
    check_tiling(tile, overlap, blend, stride)
    _, _, h, w = x.shape
    th, tw = min(tile, h), min(tile, w)
    step_h, step_w = max(1, int(th * (1 - overlap))), max(1, int(tw * (1 - overlap)))
    window = blend_window(th, tw, blend)
    scores = weight = None
    for top in tile_starts(h, th, step_h):
        for left in tile_starts(w, tw, step_w):
            logits = run(x[..., top:top + th, left:left + tw]).float().cpu()
            if scores is None:
                scores = torch.zeros(1, logits.shape[1], h, w)
                weight = torch.zeros(h, w)
            scores[..., top:top + th, left:left + tw] += logits * window
            weight[top:top + th, left:left + tw] += window
    return scores / weight
