"""Training state as (tensors, JSON) so a resumable checkpoint stays a safetensors file.

Optimiser moments and RNG states are tensors; step counters, hyper-parameters and the
scheduler's position are plain JSON. Splitting them this way means resuming never
unpickles anything.
"""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import torch


def capture(optimizer: torch.optim.Optimizer, scheduler: Any, scaler: Any | None) -> tuple[dict[str, torch.Tensor], dict]:
    """Split optimiser, scheduler, grad-scaler and RNG states into tensors and JSON."""
    tensors: dict[str, torch.Tensor] = {}
    opt = optimizer.state_dict()
    opt_state: dict[str, dict[str, Any]] = {}
    for index, values in opt["state"].items():
        plain = {}
        for key, value in values.items():
            if isinstance(value, torch.Tensor):
                tensors[f"optim.{index}.{key}"] = value
            else:
                plain[key] = value
        opt_state[str(index)] = plain
    tensors["rng.torch"] = torch.get_rng_state()
    if torch.cuda.is_available():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"rng.cuda.{i}"] = s
    np_state = np.random.get_state()
    tensors["rng.numpy"] = torch.from_numpy(np_state[1].astype(np.int64))
    plain_state = {
        "optimizer": {"state": opt_state, "param_groups": opt["param_groups"]},
        "scheduler": scheduler.state_dict() if scheduler is not None else None,
        "scaler": scaler.state_dict() if scaler is not None and scaler.is_enabled() else None,
        "rng": {
            "numpy": [np_state[0], int(np_state[2]), int(np_state[3]), float(np_state[4])],
            "python": _listify(random.getstate()),
        },
    }
    return tensors, plain_state


def restore(
    tensors: dict[str, torch.Tensor],
    plain: dict,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    scaler: Any | None,
) -> None:
    """Inverse of `capture`: load everything back in place."""
    opt_state: dict[int, dict[str, Any]] = {int(i): dict(v) for i, v in plain["optimizer"]["state"].items()}
    for key, value in tensors.items():
        if key.startswith("optim."):
            _, index, name = key.split(".", 2)
            opt_state.setdefault(int(index), {})[name] = value
    optimizer.load_state_dict({"state": opt_state, "param_groups": plain["optimizer"]["param_groups"]})
    if scheduler is not None and plain["scheduler"] is not None:
        scheduler.load_state_dict(plain["scheduler"])
    if scaler is not None and plain["scaler"] is not None:
        scaler.load_state_dict(plain["scaler"])
    torch.set_rng_state(tensors["rng.torch"])
    cuda = [tensors[k] for k in sorted(k for k in tensors if k.startswith("rng.cuda."))]
    if cuda and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(cuda)
    name, pos, has_gauss, cached = plain["rng"]["numpy"]
    np.random.set_state((name, tensors["rng.numpy"].numpy().astype(np.uint32), pos, has_gauss, cached))
    random.setstate(_tuplify(plain["rng"]["python"]))


def _listify(value: Any) -> Any:
    return [_listify(v) for v in value] if isinstance(value, (tuple, list)) else value


def _tuplify(value: Any) -> Any:
    return tuple(_tuplify(v) for v in value) if isinstance(value, list) else value
