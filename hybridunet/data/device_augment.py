"""The training augmentation of `train_transform` as batched torch ops, for data that lives
on the training device: random scale and crop (padding ignored), horizontal flip, colour
jitter, normalisation.

The semantics are albumentations': the same parameter ranges and the same operations
(ColorJitter's torchvision-style brightness, contrast, saturation and hue, each rounded or
truncated to 8 bits as there, in a random order per image, applied with probability 0.8). Pixels
differ only by interpolation rounding; tests hold both paths side by side. Every sample's
parameters come from its own (seed, epoch, sample) generator, as on the albumentations path.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from hybridunet.data.base import seed_for
from hybridunet.data.labels import IGNORE_INDEX
from hybridunet.data.transforms import NORMALIZATIONS

JITTER_P = 0.8  # train_transform's ColorJitter probability
GRAY = (0.299, 0.587, 0.114)  # OpenCV's RGB2GRAY weights, which albumentations' jitter uses


@dataclass
class AugmentParams:
    """Per-sample parameters of one batch, (B,) or (B, 4) arrays."""

    scale: np.ndarray
    crop: np.ndarray  # (B, 2) fractions in [0, 1): where the crop starts in the scaled image
    flip: np.ndarray
    jitter: np.ndarray  # (B, 4) brightness, contrast, saturation, hue
    order: np.ndarray  # (B, 4) the jitter operations' order


def draw_params(keys: list[tuple[int, int, int]], scale: tuple[float, float], hflip: float,
                color_jitter: float) -> AugmentParams:
    """Parameters for the samples named by (seed, epoch, index), each from its own generator."""
    rows = []
    for seed, epoch, index in keys:
        rng = np.random.default_rng(seed_for(seed, epoch, index))
        s = rng.uniform(*scale) if tuple(scale) != (1.0, 1.0) else 1.0
        crop = rng.random(2)
        flip = rng.random() < hflip
        j = color_jitter
        if j and rng.random() < JITTER_P:
            low = max(0.0, 1 - j)
            jitter = [*rng.uniform(low, 1 + j, 3), rng.uniform(-min(0.5, j / 4), min(0.5, j / 4))]
        else:
            jitter = [1.0, 1.0, 1.0, 0.0]
        rows.append((s, crop, flip, jitter, rng.permutation(4)))
    s, crop, flip, jitter, order = zip(*rows)
    return AugmentParams(np.array(s), np.array(crop), np.array(flip), np.array(jitter), np.array(order))


def scale_and_crop(images: torch.Tensor, masks: torch.Tensor, scale: np.ndarray,
                   crop: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """RandomScale then RandomCrop back to the input size, as albumentations does it: the
    scaled size is int(size * s); a smaller image is padded around its centre (image 0,
    mask ignore); the crop starts at int((scaled - size + 1) * fraction).

    `images` float (B, 3, H, W) in 0..255, `masks` (B, H, W) integers. Images are
    bilinear (OpenCV's INTER_LINEAR, edges replicated); masks nearest as OpenCV's
    INTER_NEAREST picks it (source floor(q * size / scaled)), so labels match exactly.
    """
    b, _, h, w = images.shape
    device = images.device
    theta = torch.zeros(b, 2, 3, dtype=torch.float32)
    picks, inside = [], []
    for axis, size in ((1, h), (0, w)):  # rows, then columns (theta: row 0 is x, row 1 is y)
        scaled = (size * scale).astype(int)
        offset = np.where(scaled >= size, ((scaled - size + 1) * crop[:, 1 - axis]).astype(int), -((size - scaled) // 2))
        # output pixel p (centre p + 0.5) reads the scaled image at q = p + offset, i.e. the
        # source at (q + 0.5) * size / scaled - 0.5; in grid_sample's [-1, 1] units:
        theta[:, axis, axis] = torch.from_numpy(size / scaled)
        theta[:, axis, 2] = torch.from_numpy(size / scaled + 2 * offset / scaled - 1)
        q = np.arange(size)[None] + offset[:, None]
        inside.append(torch.from_numpy((q >= 0) & (q < scaled[:, None])).to(device))
        picks.append(torch.from_numpy(np.clip(q * size // scaled[:, None], 0, size - 1)).to(device))
    grid = F.affine_grid(theta.to(device), [b, 1, h, w], align_corners=False)
    valid = inside[0][:, :, None] & inside[1][:, None, :]
    images = F.grid_sample(images, grid, mode="bilinear", padding_mode="border", align_corners=False)
    images = images * valid.unsqueeze(1)
    batch = torch.arange(b, device=device)[:, None, None]
    masks = masks[batch, picks[0][:, :, None], picks[1][:, None, :]]
    return images, masks.masked_fill(~valid, IGNORE_INDEX)


def _gray(x: torch.Tensor) -> torch.Tensor:
    r, g, b = GRAY
    return (r * x[:, 0] + g * x[:, 1] + b * x[:, 2]).round().unsqueeze(1)


def _bytes(x: torch.Tensor, truncate: bool = False) -> torch.Tensor:
    """Clip to 8 bits, rounding as OpenCV does or truncating as albumentations' lookup tables do."""
    return (x.floor() if truncate else x.round()).clamp_(0, 255)


def brightness(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    return _bytes(x * factor.view(-1, 1, 1, 1), truncate=True)


def contrast(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    f = factor.view(-1, 1, 1, 1)
    mean = _gray(x).mean(dim=(1, 2, 3), keepdim=True)
    return _bytes(x * f + mean * (1 - f), truncate=True)


def saturation(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    f = factor.view(-1, 1, 1, 1)
    return _bytes(x * f + _gray(x) * (1 - f))


def hue(x: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """Rotate the hue by `shift` turns (OpenCV's HSV, hue in 2-degree steps as in uint8)."""
    v, _ = x.max(1)
    m, _ = x.min(1)
    c = v - m
    safe = torch.where(c > 0, c, torch.ones_like(c))
    r, g, b = x.unbind(1)
    h = torch.where(v == r, (g - b) / safe % 6, torch.where(v == g, (b - r) / safe + 2, (r - g) / safe + 4))
    h = torch.where(c > 0, h, torch.zeros_like(h)) * 30  # OpenCV's uint8 hue: 0..180
    h = ((h.round() + (180 * shift).view(-1, 1, 1)) % 180).floor()  # albumentations' lookup table
    s = torch.where(v > 0, (c / torch.where(v > 0, v, torch.ones_like(v)) * 255).round(), torch.zeros_like(v))
    # back to RGB from (h in 0..180, s and v in 0..255)
    hh = h / 30
    chroma = v * s / 255
    def channel(n: int) -> torch.Tensor:  # the standard HSV -> RGB formula, f(n) for n = 5, 3, 1
        k = (n + hh) % 6
        return v - chroma * torch.clamp(torch.minimum(k, 4 - k), 0, 1)

    return _bytes(torch.stack([channel(5), channel(3), channel(1)], 1))


JITTER_OPS = (brightness, contrast, saturation, hue)


def color_jitter(x: torch.Tensor, jitter: np.ndarray, order: np.ndarray) -> torch.Tensor:
    """ColorJitter per image: its four factors in its own order (identity factors skip)."""
    factors = torch.as_tensor(jitter, dtype=torch.float32, device=x.device)
    neutral = np.array([1.0, 1.0, 1.0, 0.0])
    for step in range(4):
        for op in range(4):
            rows = np.flatnonzero((order[:, step] == op) & (jitter[:, op] != neutral[op]))
            if len(rows):
                index = torch.as_tensor(rows, device=x.device)
                x[index] = JITTER_OPS[op](x[index], factors[index, op])
    return x


def augment_batch(images: torch.Tensor, masks: torch.Tensor, params: AugmentParams,
                  normalize: str) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 (B, H, W, 3) images and (B, H, W) masks on any device -> the normalised float
    (B, 3, H, W) batch and long masks that `train_transform` would give."""
    x = images.permute(0, 3, 1, 2).float()
    y = masks.long()
    if np.any(params.scale != 1.0):
        x, y = scale_and_crop(x, y, params.scale, params.crop)
        x = _bytes(x)
    flip = torch.as_tensor(params.flip, device=x.device)
    if flip.any():
        x = torch.where(flip.view(-1, 1, 1, 1), x.flip(-1), x)
        y = torch.where(flip.view(-1, 1, 1), y.flip(-1), y)
    x = color_jitter(x, params.jitter, params.order)
    mean, std = (torch.tensor(v, device=x.device).view(1, 3, 1, 1) for v in NORMALIZATIONS[normalize])
    return (x / 255 - mean) / std, y
