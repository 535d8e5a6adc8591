"""DataLoader factory: epoch-tagged, seeded sampling so runs repeat with any number of workers."""

from __future__ import annotations

import random
from typing import Iterator

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler


class EpochSampler(Sampler[int]):
    """Yields ``index + epoch * n``: each sample tagged with the epoch, so a data set can
    seed its augmentation by (seed, epoch, sample) (see `SegmentationDataset`).

    With `shuffle`, the order is a permutation seeded by ``seed + epoch``, as
    DistributedSampler does, so an epoch's order never depends on what ran before it.
    Call `set_epoch` before each epoch.

    Under DDP each of `num_replicas` ranks takes every num_replicas-th sample from
    `rank` on, so the ranks' samples are disjoint. With `pad` (training) the order is
    first padded by repeating its start so all ranks get as many batches; without it
    (validation) no sample is seen twice and the last ranks may get one fewer.
    """

    def __init__(
        self, size: int, shuffle: bool = True, seed: int = 0, rank: int = 0, num_replicas: int = 1, pad: bool = True
    ) -> None:
        if size < 1:
            raise ValueError(f"cannot sample from an empty data set (size={size})")
        if not 0 <= rank < num_replicas:
            raise ValueError(f"rank {rank} is not in 0..{num_replicas - 1}")
        self.size, self.shuffle, self.seed, self.epoch = size, shuffle, seed, 0
        self.rank, self.num_replicas, self.pad = rank, num_replicas, pad

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _order(self) -> torch.Tensor:
        if self.shuffle:
            order = torch.randperm(self.size, generator=torch.Generator().manual_seed(self.seed + self.epoch))
        else:
            order = torch.arange(self.size)
        if self.pad and self.size % self.num_replicas:
            extra = self.num_replicas - self.size % self.num_replicas
            order = torch.cat([order, order.repeat(extra // self.size + 1)[:extra]])
        return order[self.rank :: self.num_replicas]

    def __iter__(self) -> Iterator[int]:
        return iter((self._order() + self.epoch * self.size).tolist())

    def __len__(self) -> int:
        if self.pad:
            return -(-self.size // self.num_replicas)
        return len(range(self.rank, self.size, self.num_replicas))


def _seed_worker(worker_id: int) -> None:
    """Seed Python's and NumPy's global RNGs in each worker from torch's per-worker seed."""
    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)
    random.seed(seed)


def make_loader(
    dataset: Dataset,
    batch_size: int,
    shuffle: bool = False,
    num_workers: int = 0,
    seed: int = 0,
    drop_last: bool = False,
    pin_memory: bool | None = None,
    persistent_workers: bool = True,
    rank: int = 0,
    num_replicas: int = 1,
) -> DataLoader:
    """A DataLoader whose order and augmentation repeat for any number of workers.

    Args:
        dataset: A map-style dataset (`CityscapesPairs`, `Cityscapes`, `SegmentationFolder`).
        batch_size: Samples per batch.
        shuffle: Draw a new order each epoch (`loader.sampler.set_epoch(epoch)`).
        num_workers: Loader processes.
        seed: Seeds the order and each sample's augmentation, by (seed, epoch, sample).
        drop_last: Drop a last, smaller batch.
        pin_memory: Default: when CUDA is present.
        persistent_workers: Keep the workers between epochs.
        rank: This process's rank under DDP.
        num_replicas: The number of processes under DDP (padded when shuffling, for
            training; exact otherwise, for validation).

    Returns:
        The loader, with an `EpochSampler`.

    Example:
        ```python
        from hybridunet.data import CityscapesPairs, make_loader, train_transform

        train = CityscapesPairs("data/synthetic", "train", transform=train_transform(64))
        loader = make_loader(train, batch_size=4, shuffle=True, seed=0)
        loader.sampler.set_epoch(1)
        ```
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    if num_workers < 0:
        raise ValueError(f"num_workers must be >= 0, got {num_workers!r}")
    return DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=EpochSampler(len(dataset), shuffle, seed, rank, num_replicas, pad=shuffle),
        num_workers=num_workers,
        drop_last=drop_last,
        pin_memory=torch.cuda.is_available() if pin_memory is None else pin_memory,
        persistent_workers=persistent_workers and num_workers > 0,
        worker_init_fn=_seed_worker,
        generator=torch.Generator().manual_seed(seed),
    )
