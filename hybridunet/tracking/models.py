"""Trained models as MLflow 3 LoggedModels, so the Models tab, the Model Registry and
`mlflow.pyfunc.load_model(...).predict(...)` work: ONNX (the default: any batch and size,
loads without unpickling), or the pytorch flavour from a checkpoint.

A logged model is linked to what describes it: MLflow links the metrics of the epoch the
checkpoint is from (`step`); the run's final validation scores (with the validation
dataset) and its cost are logged linked to it by the training callback at the run's end,
or by `link_metrics` for a model logged after its run ended (a comparison's, a study's)."""

from __future__ import annotations

import hashlib
import os
import sys
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

KINDS = ("onnx", "pt2", "pickle")  # tracking.log_model, but none
SERIALIZATIONS = ("pt2", "pickle")
FINAL_PREFIXES = ("best_val_", "cost/", "test_")  # the run's final metrics, linked to its model
PROGRESS_BAR = "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"
EXAMPLE_SIDE = 64  # the input example's side: the ONNX model takes any size, and the example is stored as JSON
CHECKPOINT_TAG = "hybridunet.checkpoint_sha256"  # on a LoggedModel: the checkpoint it was made from


@dataclass(frozen=True)
class LoggedModelRef:
    model_uri: str  # models:/m-...
    model_id: str


def checkpoint_digest(checkpoint: str | Path) -> str:
    """The sha256 of a checkpoint file: which checkpoint a LoggedModel holds (`CHECKPOINT_TAG`)."""
    digest = hashlib.sha256()
    with open(checkpoint, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _new_model(run_id: str, uri: str | None, tags: dict[str, str] | None = None) -> str:
    """A PENDING LoggedModel of run `run_id`, in the run's experiment (MLflow would put one
    logged outside an active run in its current experiment), named by the run's label, with
    the run's params; the flavour's log_model fills and finalises it."""
    import mlflow

    if uri is not None:
        mlflow.set_tracking_uri(uri)
    run = mlflow.MlflowClient(uri).get_run(run_id)
    name = run.data.tags.get("label") or "model"  # the Models tab lists models by name: unet, hybrid_unet_resdec, ...
    return mlflow.initialize_logged_model(name=name, source_run_id=run_id, params=run.data.params, tags=tags,
                                          experiment_id=run.info.experiment_id).model_id


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
                      registered_model_name: str | None = None, uri: str | None = None,
                      step: int = 0, tags: dict[str, str] | None = None) -> LoggedModelRef:
    """Log the checkpoint's fp32 eval model to run `run_id` (pytorch flavour, with an input
    example and signature).

    `pt2` stores torch.export's graph, which loads without unpickling, for one image at the
    training size; `pickle` takes any batch and size, and loading it unpickles (hybridunet
    must be installed where it loads).
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
    info = mlflow.pytorch.log_model(model.float().eval(), name="model", input_example=example, signature=signature,
                                    serialization_format=serialization, pip_requirements=requirements,
                                    registered_model_name=registered_model_name, run_id=run_id, step=step,
                                    model_id=_new_model(run_id, uri, tags))
    return LoggedModelRef(info.model_uri, info.model_id)


def log_onnx_model(run_id: str, onnx_path: str | Path, registered_model_name: str | None = None,
                   uri: str | None = None, step: int = 0, tags: dict[str, str] | None = None) -> LoggedModelRef:
    """Log an exported .onnx file and its sidecar to run `run_id` (ONNX flavour; any batch and size)."""
    import json
    import logging

    import mlflow
    import onnx

    from hybridunet.export import sidecar_path

    sidecar = json.loads(sidecar_path(onnx_path).read_text())
    example, signature = _example_and_signature(min(EXAMPLE_SIDE, sidecar["input_size"][0]), sidecar["num_classes"],
                                                fixed=False)
    model_id = _new_model(run_id, uri, tags)
    quiet = _Without("are unavailable in this onnxruntime build")  # its check of the example runs on this CPU
    logging.getLogger("mlflow.onnx").addFilter(quiet)
    bar = os.environ.get(PROGRESS_BAR)
    os.environ[PROGRESS_BAR] = "false"  # it checks the example on a copy it "downloads" from a local folder
    try:
        info = mlflow.onnx.log_model(onnx.load(str(onnx_path)), name="model", input_example=example,
                                     signature=signature, registered_model_name=registered_model_name,
                                     pip_requirements=["onnxruntime"], extra_files=[str(sidecar_path(onnx_path))],
                                     run_id=run_id, step=step, model_id=model_id)
    finally:
        logging.getLogger("mlflow.onnx").removeFilter(quiet)
        os.environ.pop(PROGRESS_BAR) if bar is None else os.environ.__setitem__(PROGRESS_BAR, bar)
    return LoggedModelRef(info.model_uri, info.model_id)


class _Without:
    """A logging filter that drops records containing `text`."""

    def __init__(self, text: str) -> None:
        self.text = text

    def filter(self, record) -> bool:
        return self.text not in record.getMessage()


def log_checkpoint_model(run_id: str, checkpoint: str | Path, kind: str, registered_model_name: str | None = None,
                         uri: str | None = None, digest: str | None = None) -> LoggedModelRef:
    """Log `checkpoint`'s model to run `run_id` as `kind` (see KINDS) at the step of the
    checkpoint's epoch, the run's params as the LoggedModel's (as MLflow does), and link the run's
    final metrics to it (`link_metrics`). `digest`: the checkpoint's, where the caller has it."""
    from hybridunet.checkpoint import read_meta

    if kind not in KINDS:
        raise ValueError(f"tracking.log_model {kind!r}: expected one of none, {', '.join(KINDS)}")
    step = int(read_meta(checkpoint).get("epoch") or 0)
    tags = {CHECKPOINT_TAG: digest or checkpoint_digest(checkpoint)}
    if kind == "onnx":
        from hybridunet.export import export_onnx

        with tempfile.TemporaryDirectory() as folder:
            path = export_onnx(checkpoint, Path(folder) / "model.onnx")
            ref = log_onnx_model(run_id, path, registered_model_name, uri, step, tags)
    else:
        ref = log_pytorch_model(run_id, checkpoint, kind, registered_model_name, uri, step, tags)
    link_metrics(run_id, ref.model_id, uri)
    return ref


def link_metrics(run_id: str, model_id: str, uri: str | None = None) -> None:
    """Link the run's final metrics (best_val_*, test_*, cost/*) that are not yet linked to
    model `model_id`: the validation ones with the run's validation dataset. For a model
    logged after its run ended; the run's own history keeps one point per metric (the store
    drops a metric logged again with the same key, value, step and time)."""
    from mlflow.entities import Metric
    from mlflow.tracking import MlflowClient

    from hybridunet.tracking.datasets import logged_dataset

    client = MlflowClient(uri)
    linked = {m.key for m in client.get_logged_model(model_id).metrics or []}
    dataset = logged_dataset(client, run_id)
    rows = []
    for key in client.get_run(run_id).data.metrics:
        if not key.startswith(FINAL_PREFIXES) or key in linked:
            continue
        last = max(client.get_metric_history(run_id, key), key=lambda m: (m.step, m.timestamp))
        name, digest = dataset if dataset and key.startswith("best_val_") else (None, None)
        rows.append(Metric(key, last.value, last.timestamp, last.step, model_id=model_id, dataset_name=name,
                           dataset_digest=digest))
    for i in range(0, len(rows), 1000):  # the store's limit per batch
        client.log_batch(run_id, metrics=rows[i : i + 1000])


def try_log_model(run_id: str, checkpoint: str | Path, kind: str, registered_model_name: str | None = None,
                  uri: str | None = None, digest: str | None = None) -> LoggedModelRef | None:
    """`log_checkpoint_model`, but a model that fails to export or log is reported (stderr and
    the run's tag ``log_model.error``) rather than failing a run whose training is done; a
    server that is away (`is_outage`) is raised, so the call is kept and made again."""
    from hybridunet.tracking.outage import is_outage

    try:
        return log_checkpoint_model(run_id, checkpoint, kind, registered_model_name, uri, digest)
    except Exception as error:  # noqa: BLE001  (the checkpoint is logged either way)
        from mlflow.tracking import MlflowClient

        if is_outage(error):  # the server is away: the model is logged when it is back
            raise
        message = f"{type(error).__name__}: {error}"
        print(f"hybridunet: the model of run {run_id} was not logged as {kind} ({message}); its checkpoint is "
              "logged (set tracking.log_model=none to skip this)", file=sys.stderr)
        MlflowClient(uri).set_tag(run_id, "log_model.error", message[:5000])
        return None


def logged_model(run_id: str, uri: str | None = None, digest: str | None = None) -> LoggedModelRef | None:
    """The model run `run_id` logged last, if any; with `digest`, the last one made from the
    checkpoint of that sha256 (`CHECKPOINT_TAG`)."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    outputs = client.get_run(run_id).outputs
    found = [m.model_id for m in (outputs.model_outputs if outputs is not None else [])]
    if digest is not None:
        found = [m for m in found if client.get_logged_model(m).tags.get(CHECKPOINT_TAG) == digest]
    return LoggedModelRef(f"models:/{found[-1]}", found[-1]) if found else None


def best_candidate(candidates: Iterable[tuple[str | None, float, str | Path | None]]
                   ) -> tuple[str | None, str] | None:
    """Of (run_id, validation Dice, checkpoint) candidates (a comparison arm's seeds, a
    trial's), the best one whose checkpoint is on this machine: (run_id, checkpoint); the
    run id is None for a run a server that was away has not created yet."""
    found = [c for c in candidates if c[2] and Path(c[2]).is_file()]
    if not found:
        return None
    run_id, _, checkpoint = max(found, key=lambda c: c[1])
    return run_id, str(checkpoint)


def prepare(kind: str) -> None:
    """Pay ahead, on the logging worker while training runs (it takes only a core training
    leaves idle), what the first model of a process costs: importing MLflow's flavour, onnx
    and onnxruntime (0.14 s; 0.8 s with ml_dtypes 0.7.0, see constraints.txt), and MLflow's
    scan of the installed packages that checks a model's requirements (0.7 s on an AMD EPYC).
    On two busy cores this mostly moves the work into training (BENCHMARKS.md); where cores
    are idle it is hidden."""
    import mlflow.pyfunc  # noqa: F401  (log_model loads the model back to check its input example)

    if kind == "onnx":
        import mlflow.onnx  # noqa: F401
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    try:  # MLflow's own cache, filled once per process; not public, so only where it is found
        from mlflow.utils.requirements_utils import _init_modules_to_packages_map
    except ImportError:
        return
    _init_modules_to_packages_map()
