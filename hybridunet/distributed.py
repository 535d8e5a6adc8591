"""torch.distributed glue for `torchrun`: one process per device, env:// rendezvous,
gloo on CPU and NCCL on CUDA. Outside torchrun everything here is a no-op."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init(device: str = "auto") -> tuple[World, torch.device]:
    """Join the process group torchrun describes (WORLD_SIZE > 1) and pick this rank's device."""
    from hybridunet.device import pick_device

    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size <= 1:
        return World(), pick_device(device)
    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    chosen = pick_device(device, local)
    if chosen.type == "cuda":
        torch.cuda.set_device(chosen)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if chosen.type == "cuda" else "gloo", init_method="env://")
    return World(rank, size, local), chosen


def active() -> bool:
    return dist.is_available() and dist.is_initialized()


def is_main() -> bool:
    """Rank 0, or the only process."""
    return not active() or dist.get_rank() == 0


def all_reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
    """Sum `tensor` over all ranks in place (and return it)."""
    if active():
        dist.all_reduce(tensor)
    return tensor


def broadcast(value: Any) -> Any:
    """Rank 0's `value` on every rank (e.g. a run folder name with a timestamp)."""
    if not active():
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def sync_buffers(module: torch.nn.Module) -> None:
    """Give every rank rank 0's buffers (BatchNorm running statistics), which each rank
    updates from its own batches: the ranks then evaluate the model rank 0 checkpoints."""
    if active():
        for buffer in module.buffers():
            dist.broadcast(buffer, src=0)


def barrier() -> None:
    if active():
        dist.barrier()


def shutdown() -> None:
    if active():
        dist.destroy_process_group()
