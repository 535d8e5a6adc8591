"""Trained models as MLflow models, so the Model Registry and `mlflow.pyfunc.load_model(...)
.predict(...)` work: the pytorch flavour from a checkpoint, the ONNX flavour from an export."""

from __future__ import annotations

from pathlib import Path

import numpy as np

SERIALIZATIONS = ("pt2", "pickle")


def _in_run(run_id: str, uri: str | None):
    """Run `run_id` as the active MLflow run (nested if another is active), at `uri`."""
    import mlflow

    if uri is not None:
        mlflow.set_tracking_uri(uri)
    return mlflow.start_run(run_id=run_id, nested=True)


def _example_and_signature(size: int, num_classes: int, fixed: bool):
    from mlflow.models import ModelSignature
    from mlflow.types import Schema, TensorSpec

    example = np.zeros((1, 3, size, size), np.float32)  # a normalised image, as the model takes it
    shape_in = (1, 3, size, size) if fixed else (-1, 3, -1, -1)
    shape_out = (1, num_classes, size, size) if fixed else (-1, num_classes, -1, -1)
    signature = ModelSignature(inputs=Schema([TensorSpec(np.dtype(np.float32), shape_in)]),
                               outputs=Schema([TensorSpec(np.dtype(np.float32), shape_out)]))
    return example, signature


def log_pytorch_model(run_id: str, checkpoint: str | Path, serialization: str = "pt2",
                      registered_model_name: str | None = None, uri: str | None = None) -> str:
    """Log the checkpoint's fp32 eval model to run `run_id` (pytorch flavour, with an input
    example and signature); returns the model's URI.

    `pt2` (default) stores torch.export's graph, which loads without unpickling, for one
    image at the training size; `pickle` takes any batch and size, and loading it unpickles
    (hybridunet must be installed where it loads).
    """
    import mlflow
    import torch

    from hybridunet import __version__
    from hybridunet.checkpoint import load_model

    if serialization not in SERIALIZATIONS:
        raise ValueError(f"serialization {serialization!r}; expected one of {SERIALIZATIONS}")
    model, meta = load_model(checkpoint, "cpu")
    example, signature = _example_and_signature(int(meta["config"]["data"]["size"]), meta["model"]["num_classes"],
                                                fixed=serialization == "pt2")
    requirements = [f"torch=={torch.__version__.split('+')[0]}"] + (
        [f"hybridunet=={__version__}"] if serialization == "pickle" else [])
    with _in_run(run_id, uri):
        info = mlflow.pytorch.log_model(model.float().eval(), name="model", input_example=example,
                                        signature=signature, serialization_format=serialization,
                                        pip_requirements=requirements, registered_model_name=registered_model_name)
    return info.model_uri


def log_onnx_model(run_id: str, onnx_path: str | Path, registered_model_name: str | None = None,
                   uri: str | None = None) -> str:
    """Log an exported .onnx file to run `run_id` (ONNX flavour; any batch and size)."""
    import json

    import mlflow
    import onnx

    from hybridunet.export import sidecar_path

    sidecar = json.loads(sidecar_path(onnx_path).read_text())
    example, signature = _example_and_signature(sidecar["input_size"][0], sidecar["num_classes"], fixed=False)
    with _in_run(run_id, uri):
        info = mlflow.onnx.log_model(onnx.load(str(onnx_path)), name="onnx_model", input_example=example,
                                     signature=signature, registered_model_name=registered_model_name,
                                     pip_requirements=["onnxruntime"], extra_files=[str(sidecar_path(onnx_path))])
    return info.model_uri
