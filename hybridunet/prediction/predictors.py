"""Predictors: a trained model as logits for a batch, whatever file it comes from.

A `Predictor` says what the tiling module needs (normalisation, stride) and what a caller
may want (the training input size, class names); `TorchPredictor` runs a checkpoint in
PyTorch, `OnnxPredictor` an export in onnxruntime. Both load without running code from
the file (safetensors; ONNX graphs).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from hybridunet.device import FP32, Precision, pick_device, resolve_precision
from hybridunet.errors import CheckpointError, UsageError
from hybridunet.prediction.tiling import segment


class Predictor:
    """Logits (N, C, H, W) float32 for a normalised (N, 3, H, W) float32 batch."""

    normalize: str = "imagenet"  # a hybridunet.data.transforms.NORMALIZATIONS name
    stride: int = 1  # input sides the model pads to (tiles must be at least this)
    input_size: int | None = None  # the side training frames were resized to
    class_names: list[str] = []

    def logits(self, batch: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def predict(self, image: np.ndarray, size: int | None = None, tile: int | None = None, overlap: float = 0.25,
                blend: str = "gaussian") -> np.ndarray:
        """Class mask (H, W) uint8 of an RGB uint8 image (see `tiling.segment`)."""
        return segment(self, image, size, tile, overlap, blend)


class TorchPredictor(Predictor):
    """A PyTorch model on a device, in a precision (autocast and memory format)."""

    def __init__(self, model: nn.Module, normalize: str = "imagenet", device: torch.device | str = "cpu",
                 precision: Precision = FP32, input_size: int | None = None,
                 class_names: list[str] | None = None, meta: dict[str, Any] | None = None) -> None:
        self.device, self.precision = torch.device(device), precision
        self.model = model.to(self.device, memory_format=precision.memory_format).eval()
        self.normalize, self.input_size = normalize, input_size
        self.stride = int(getattr(model, "stride", 1))
        self.class_names = list(class_names or [])
        self.meta = meta or {}

    @classmethod
    def from_checkpoint(cls, path: str | Path, device: str = "auto") -> TorchPredictor:
        """The checkpoint's model on `device`, in the precision and memory format it trained
        with where the device supports them."""
        from hybridunet.checkpoint import load_model

        dev = pick_device(device)
        model, meta = load_model(path, dev)
        data = meta["config"]["data"]
        return cls(model, data["normalize"], dev, stored_precision(meta, dev), int(data["size"]),
                   meta["class_names"], meta)

    @torch.no_grad()
    def logits(self, batch: torch.Tensor) -> torch.Tensor:
        with self.precision.autocast(self.device):
            return self.model(batch.to(self.device, memory_format=self.precision.memory_format)).float()


def stored_precision(meta: dict[str, Any], device: torch.device) -> Precision:
    """The precision a checkpoint was trained in, where `device` supports it; else what
    `auto` picks here (said on stderr)."""
    stored = meta.get("precision") or {"amp": meta["config"]["train"].get("amp", "none"),
                                       "channels_last": meta["config"]["train"].get("channels_last", False)}
    precision = resolve_precision(device, stored["amp"], stored["channels_last"], strict=False)
    if precision.amp != stored["amp"] and stored["amp"] != "auto":
        print(f"hybridunet: trained with amp={stored['amp']}, which {device.type} does not run; using {precision}",
              file=sys.stderr)
    return precision


class OnnxPredictor(Predictor):
    """An exported .onnx model in onnxruntime (CPU), described by its .onnx.json sidecar."""

    def __init__(self, path: str | Path) -> None:
        from hybridunet.export import INPUT, OUTPUT, sidecar_path

        try:
            import onnxruntime as ort
        except ImportError:
            raise UsageError("running .onnx models needs onnxruntime: pip install onnxruntime") from None
        path = Path(path)
        meta_path = sidecar_path(path)
        if not path.is_file():
            raise CheckpointError(f"{path} not found")
        if path.suffix != ".onnx":
            raise CheckpointError(f"--model {path}: expected a .onnx file from `hybridunet export` "
                                  "(a .safetensors checkpoint goes to --checkpoint)")
        if not meta_path.is_file():
            raise CheckpointError(f"{meta_path} not found: the sidecar `hybridunet export` writes beside {path.name}")
        try:
            self.meta: dict[str, Any] = json.loads(meta_path.read_text())
            self.normalize = self.meta["input"]["normalize"]["name"]
            self.class_names = list(self.meta["class_names"])
        except (ValueError, KeyError, TypeError) as err:
            raise CheckpointError(f"{meta_path}: not a sidecar of `hybridunet export` ({type(err).__name__}: {err})") \
                from None
        self.stride = int(self.meta.get("stride", 1))
        self.input_size = int(self.meta["input_size"][0]) if self.meta.get("input_size") else None
        try:
            self.session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        except Exception as err:  # onnxruntime raises its own error types for files it cannot parse
            raise CheckpointError(f"{path} is not a model onnxruntime can load: {err}") from None
        self._names = (INPUT, OUTPUT)

    def logits(self, batch: torch.Tensor) -> torch.Tensor:
        name_in, name_out = self._names
        array = np.ascontiguousarray(batch.detach().cpu().numpy(), dtype=np.float32)
        return torch.from_numpy(self.session.run([name_out], {name_in: array})[0])


def open_predictor(checkpoint: str | Path | None = None, onnx_model: str | Path | None = None,
                   device: str = "auto") -> Predictor:
    """Open a trained model for prediction: a checkpoint in PyTorch, or an ONNX export in
    onnxruntime. Give one of the two.

    Args:
        checkpoint: A `.safetensors` checkpoint written by `fit`.
        onnx_model: A `.onnx` file written by `hybridunet export`, with its sidecar JSON.
        device: `auto` (CUDA where present), `cpu` or `cuda:N`.

    Returns:
        A `Predictor`: `.predict(image, tile=...)` gives the (H, W) uint8 mask of an RGB
            image; `.logits(batch)` the raw scores of a normalised batch.

    Example:
        ```python
        import numpy as np
        from hybridunet.prediction import open_predictor

        predictor = open_predictor(onnx_model="outputs/u1/best.onnx")   # or checkpoint="....safetensors"
        image = np.zeros((96, 160, 3), np.uint8)                         # any (H, W, 3) uint8 RGB image
        mask = predictor.predict(image)                                  # (96, 160) uint8 trainIds
        ```
    """
    if (checkpoint is None) == (onnx_model is None):
        raise UsageError("give either a checkpoint (--checkpoint) or an ONNX model (--model), not both or neither")
    if onnx_model is not None:
        return OnnxPredictor(onnx_model)
    return TorchPredictor.from_checkpoint(checkpoint, device)
