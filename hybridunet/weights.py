"""Reading weights from local files without running code, with readable mismatch errors."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import torch
from safetensors.torch import load_file
from torch import nn

from hybridunet.errors import CheckpointError, MissingFileError


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Tensors of a ``.safetensors`` file, or of a torch file loaded with ``weights_only=True``.

    Neither format runs code on load: a pickle that tries is refused by torch.
    """
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"weights file not found: {path}")
    if path.suffix == ".safetensors":
        try:
            return load_file(str(path))
        except Exception as err:  # safetensors raises its own error types for bad headers
            raise CheckpointError(f"{path} is not a readable safetensors file: {err}") from None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises UnpicklingError for anything beyond plain tensors
        raise CheckpointError(f"{path} is not a plain tensor file; refusing to unpickle it: {err}") from None
    if isinstance(state, dict) and isinstance(state.get("state_dict"), Mapping):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise CheckpointError(f"{path} holds a {type(state).__name__}, expected a state dict of tensors")
    return state


def load_weights(module: nn.Module, state: Mapping[str, torch.Tensor], source: str | Path) -> None:
    """Strictly load `state` into `module`; a mismatch names the keys and shapes that differ."""
    try:
        module.load_state_dict(dict(state), strict=True)
    except RuntimeError as err:
        expected = module.state_dict()
        missing = [k for k in expected if k not in state]
        unexpected = [k for k in state if k not in expected]
        reshaped = [
            f"{k} {tuple(state[k].shape)} vs {tuple(v.shape)}"
            for k, v in expected.items()
            if k in state and state[k].shape != v.shape
        ]
        detail = (
            f"missing keys {_few(missing)}; unexpected keys {_few(unexpected)}; "
            f"shape mismatches (file vs model) {_few(reshaped)}"
            if missing or unexpected or reshaped
            else str(err)
        )
        raise CheckpointError(f"weights in {source} do not fit {type(module).__name__}: {detail}") from None


def _few(keys: list[str], n: int = 5) -> str:
    shown = ", ".join(keys[:n]) or "none"
    return f"[{shown}{f', ... {len(keys) - n} more' if len(keys) > n else ''}]"
