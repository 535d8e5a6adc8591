"""Export a trained model to ONNX: the .onnx file and its sidecar JSON (run them with
`hybridunet.prediction.OnnxPredictor`).

The export traces the fp32 eval model with a dynamic batch, height and width: the padding
to the model's stride happens inside the graph, and the transformer bottleneck's position
encoding follows the input's size. A sidecar JSON beside the .onnx file holds what
prediction needs (class names, normalisation, the training input size and how frames were
resized) and what the export assumed (opset, dynamic axes), so the file runs without this
package's checkpoint.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

from hybridunet.errors import OutputExistsError, UsageError

INPUT, OUTPUT = "image", "logits"
DYNAMIC_AXES = {INPUT: {0: "batch", 2: "height", 3: "width"}, OUTPUT: {0: "batch", 2: "height", 3: "width"}}
DEFAULT_OPSET = 17


def sidecar_path(model_path: str | Path) -> Path:
    """model.onnx -> model.onnx.json (a checkpoint's own sidecar is model.json)."""
    path = Path(model_path)
    return path.with_name(path.name + ".json")


def export_onnx(checkpoint: str | Path, out: str | Path | None = None, opset: int = DEFAULT_OPSET,
                overwrite: bool = False) -> Path:
    """Write a checkpoint's model as ONNX, with the sidecar JSON prediction needs.

    The fp32 eval model is exported with a dynamic batch, height and width; onnxruntime
    matches PyTorch within 1e-4.

    Args:
        checkpoint: A `.safetensors` checkpoint written by `fit`.
        out: The `.onnx` path; default: beside the checkpoint.
        opset: The ONNX opset.
        overwrite: Replace an existing file (else it is refused).

    Returns:
        The `.onnx` path; its sidecar is the same path plus `.json`.

    Raises:
        hybridunet.errors.OutputExistsError: The file or its sidecar exists and `overwrite` is
            False.
        hybridunet.errors.UsageError: `out` is not a `.onnx` name, or `opset` is outside 7-23.

    Example:
        ```python
        from hybridunet.export import export_onnx

        onnx_path = export_onnx("outputs/u1/best.safetensors")
        ```
    """
    import torch

    from hybridunet.checkpoint import load_model
    from hybridunet.data.transforms import NORMALIZATIONS

    checkpoint = Path(checkpoint)
    out = Path(out) if out is not None else checkpoint.with_suffix(".onnx")
    if out.suffix != ".onnx":
        raise UsageError(f"--out {out}: expected a .onnx file name")
    if not 7 <= opset <= 23:
        raise UsageError(f"--opset {opset}: expected an ONNX opset from 7 to 23 (default {DEFAULT_OPSET})")
    for path in (out, sidecar_path(out)):
        if path.exists() and not overwrite:
            raise OutputExistsError(f"{path} exists; pass --overwrite to replace it")
    model, meta = load_model(checkpoint, "cpu")
    model = model.float().eval()
    data = meta["config"]["data"]
    size = int(data["size"])
    example = torch.zeros(1, 3, size, size)
    out.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():  # tracing warns about the shape arithmetic it records
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (example,), str(out), dynamo=False, input_names=[INPUT], output_names=[OUTPUT],
                          dynamic_axes=DYNAMIC_AXES, opset_version=opset)
    mean, std = NORMALIZATIONS[data["normalize"]]
    sidecar = {
        "format": "onnx", "opset": opset, "dynamic_axes": DYNAMIC_AXES,
        "input": {"name": INPUT, "shape": ["batch", 3, "height", "width"], "dtype": "float32",
                  "normalize": {"name": data["normalize"], "mean": list(mean), "std": list(std),
                                "max_pixel_value": 255.0}},
        "output": {"name": OUTPUT, "shape": ["batch", "num_classes", "height", "width"], "dtype": "float32"},
        "class_names": meta["class_names"], "num_classes": meta["model"]["num_classes"],
        "input_size": [size, size],
        "resize": "frames were resized as a whole to input_size (bilinear) for training; predict does the same",
        "model": meta["model"], "stride": int(getattr(model, "stride", 1)), "checkpoint": str(checkpoint),
        "exported_with": {"torch": torch.__version__, "hybridunet": meta.get("hybridunet_version")},
    }
    sidecar_path(out).write_text(json.dumps(sidecar, indent=2) + "\n")
    return out
