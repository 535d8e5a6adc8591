"""Checkpoints: safetensors weights plus a JSON sidecar; nothing is ever unpickled.

``NAME.safetensors`` holds the model tensors (``model.*``) and, for `last`, the training
state tensors (optimiser moments, RNG states); its header metadata carries the same JSON
as the sidecar ``NAME.json`` (model config, class names, epoch, metrics, and for `last`
the non-tensor training state). Each file is written to a temporary name and renamed into
place, so a crash never leaves a half-written checkpoint under the real name.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch import nn

from hybridunet import __version__
from hybridunet.errors import CheckpointError, MissingFileError
from hybridunet.weights import load_weights

META_KEY = "hybridunet"


def atomic_write(path: Path, write: Any) -> None:
    """Call ``write(tmp_path)`` then rename the temporary file to `path` (same folder)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(Path(tmp))
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the file the usual mode
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def save_checkpoint(
    path: str | Path,
    model: nn.Module,
    meta: dict[str, Any],
    extra_tensors: dict[str, torch.Tensor] | None = None,
) -> Path:
    """Write ``path`` (.safetensors) and its ``.json`` sidecar. `meta` must hold
    ``model`` ({'name', 'num_classes', **kwargs}) and ``class_names``."""
    path = Path(path)
    meta = {"hybridunet_version": __version__, **meta}
    tensors = {f"model.{k}": v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    tensors.update({k: v.detach().cpu().contiguous() for k, v in (extra_tensors or {}).items()})
    text = json.dumps(meta, indent=2, default=_json_default)
    atomic_write(path, lambda tmp: save_file(tensors, str(tmp), metadata={META_KEY: text}))
    atomic_write(path.with_suffix(".json"), lambda tmp: tmp.write_text(text))
    return path


def read_checkpoint(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """(all tensors, metadata) of a checkpoint. The metadata comes from the file's own
    header, which is written together with its tensors (the sidecar is for people)."""
    return _read(path, tensors=True)


def read_meta(path: str | Path) -> dict[str, Any]:
    """A checkpoint's metadata (model config, class names, epoch, metrics), its tensors unread."""
    return _read(path, tensors=False)[1]


def _read(path: str | Path, tensors: bool) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"checkpoint {path} not found")
    if path.suffix != ".safetensors":
        raise CheckpointError(f"{path}: checkpoints are .safetensors files; other formats are not loaded (no unpickling)")
    try:
        with safe_open(str(path), framework="pt") as f:
            header = f.metadata() or {}
            found = {k: f.get_tensor(k) for k in f.keys()} if tensors else {}
    except Exception as err:  # safetensors raises its own error types for bad headers
        raise CheckpointError(f"{path} is not a readable safetensors file: {err}") from None
    if META_KEY not in header:
        sidecar = path.with_suffix(".json")
        if not sidecar.is_file():
            raise CheckpointError(f"{path} has no hybridunet metadata and no sidecar {sidecar.name}")
        header[META_KEY] = sidecar.read_text()
    try:
        return found, json.loads(header[META_KEY])
    except ValueError as err:
        raise CheckpointError(f"{path}: its hybridunet metadata is not JSON ({err})") from None


def load_model(path: str | Path, device: str | torch.device = "cpu",
               num_classes: int | None = None) -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild the model a checkpoint describes and load its weights strictly.

    Loading runs no code from the file: the weights are safetensors and the metadata JSON.

    Args:
        path: A `.safetensors` checkpoint written by `fit`.
        device: Where to put the model.
        num_classes: When given, it must match the checkpoint's.

    Returns:
        The model, in eval mode, and the checkpoint's metadata (`config`, `class_names`,
            `metrics`, ...).

    Raises:
        hybridunet.errors.UserError: A missing or unreadable file, or an architecture that
            does not match the weights (the differing keys are named).

    Example:
        ```python
        from hybridunet.checkpoint import load_model

        model, meta = load_model("outputs/u1/best.safetensors")
        meta["class_names"][:3]   # ['road', 'sidewalk', 'building']
        ```
    """
    from hybridunet.models import create_model

    tensors, meta = read_checkpoint(path)
    spec = dict(meta["model"])
    if num_classes is not None and num_classes != spec["num_classes"]:
        raise CheckpointError(f"num_classes={num_classes} does not match checkpoint {path}, "
                              f"trained for {spec['num_classes']} classes")
    model = create_model(spec.pop("name"), **spec)
    state = {k.removeprefix("model."): v for k, v in tensors.items() if k.startswith("model.")}
    load_weights(model, state, path)
    return model.to(device).eval(), meta


def _json_default(value: Any) -> Any:
    if isinstance(value, (Path, torch.device, torch.dtype)):
        return str(value)
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        return value.item()
    raise TypeError(f"cannot store {type(value).__name__} in checkpoint metadata")
