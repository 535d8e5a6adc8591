"""A training split decoded once and held on the training device, batched and augmented
there (`data.in_memory`): no decoding, no worker processes and no host-to-device copies
per step. The Kaggle set at 256x256 takes about 0.8 GB."""

from __future__ import annotations

import sys
from typing import Iterator, Sequence

import albumentations as A
import numpy as np
import torch
from tqdm import tqdm

from hybridunet.data.base import SegmentationDataset
from hybridunet.data.device_augment import augment_batch, draw_params
from hybridunet.data.loader import EpochSampler


def decode_split(dataset: SegmentationDataset, size: int, device: torch.device | str = "cpu",
                 progress: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Every sample resized to size x size as `train_transform`'s first step does:
    uint8 images (N, H, W, 3) and masks (N, H, W) on `device`."""
    resize = A.Resize(size, size)
    images = torch.empty(len(dataset), size, size, 3, dtype=torch.uint8)
    masks = torch.empty(len(dataset), size, size, dtype=torch.uint8)
    for i in tqdm(range(len(dataset)), desc="decoding into memory", disable=not progress, file=sys.stderr,
                  leave=False):
        image, mask = dataset._load_or_skip(i)
        out = resize(image=image, mask=mask)
        images[i], masks[i] = torch.from_numpy(out["image"]), torch.from_numpy(out["mask"])
    return images.to(device), masks.to(device)


class InMemoryLoader:
    """Batches of an in-memory split, augmented on its device; a drop-in for the training
    DataLoader (`sampler.set_epoch`, `len`, `dataset`, iteration of (x, y))."""

    def __init__(self, dataset: SegmentationDataset, batch_size: int, size: int, normalize: str,
                 scale: Sequence[float] = (1.0, 1.0), hflip: float = 0.0, color_jitter: float = 0.0,
                 device: torch.device | str = "cpu", seed: int = 0, rank: int = 0, num_replicas: int = 1,
                 progress: bool = True) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        self.dataset, self.batch_size, self.normalize, self.seed = dataset, batch_size, normalize, seed
        self.augment = (tuple(scale), hflip, color_jitter)
        self.sampler = EpochSampler(len(dataset), True, seed, rank, num_replicas, pad=True)
        self.images, self.masks = decode_split(dataset, size, device, progress)

    def __len__(self) -> int:
        return -(-len(self.sampler) // self.batch_size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        keys = list(self.sampler)
        n = len(self.dataset)
        for start in range(0, len(keys), self.batch_size):
            epochs, indices = np.divmod(np.asarray(keys[start:start + self.batch_size]), n)
            params = draw_params([(self.seed, int(e), int(i)) for e, i in zip(epochs, indices)], *self.augment)
            rows = torch.as_tensor(indices, device=self.images.device)
            yield augment_batch(self.images[rows], self.masks[rows], params, self.normalize)
