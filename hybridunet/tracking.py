"""MLflow tracking as an engine callback: one MLflow run per training.

The tracking URI is ``tracking.uri``, else ``MLFLOW_TRACKING_URI``, else
``sqlite:///mlflow.db`` with artifacts in ``./mlruns`` (what ``mlflow ui`` opens by default).
"""

from __future__ import annotations

import contextlib
import math
import os
import queue
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Callable

# Offline by default: MLflow 3 reports usage to a remote endpoint unless told not to.
# A user who wants telemetry sets MLFLOW_DISABLE_TELEMETRY=false.
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

import mlflow  # noqa: E402
import numpy as np
import torch  # noqa: E402
from mlflow.entities import Metric, Param, RunStatus, RunTag  # noqa: E402
from mlflow.tracking import MlflowClient  # noqa: E402

from hybridunet import __version__
from hybridunet.config import TrackingConfig
from hybridunet.data.labels import colorize
from hybridunet.data.transforms import to_picture
from hybridunet.engine import Callback, Run
from hybridunet.viz import confusion_image, curves_image

DEFAULT_URI = "sqlite:///mlflow.db"
EPOCH_METRICS = ("train_loss", "val_loss", "val_dice", "val_miou", "val_pixel_acc", "lr", "images_per_s")


def tracking_uri(config: TrackingConfig | None = None) -> str:
    return (config.uri if config and config.uri else None) or os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_URI


def experiment_id(name: str, uri: str) -> str:
    """The id of experiment `name`, created if missing (artifacts in ./mlruns for the default store)."""
    client = MlflowClient(uri)
    found = client.get_experiment_by_name(name)
    if found is not None:
        if found.lifecycle_stage == "deleted":
            raise ValueError(f"MLflow experiment {name!r} is deleted; restore it or choose another tracking.experiment")
        return found.experiment_id
    location = Path("mlruns").resolve().as_uri() if uri == DEFAULT_URI else None
    return client.create_experiment(name, artifact_location=location)


def git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def epoch_values(metrics: dict[str, Any]) -> dict[str, float]:
    """The MLflow metrics of one epoch (a metrics dict or a history row): the finite
    values of EPOCH_METRICS and ``val_dice/<class>``."""
    values = {k: metrics.get(k) for k in EPOCH_METRICS}
    values.update({f"val_dice/{name}": v for name, v in (metrics.get("val_per_class_dice") or {}).items()})
    return {k: float(v) for k, v in values.items() if v is not None and math.isfinite(v)}


def panel_picture(samples: tuple[torch.Tensor, torch.Tensor, torch.Tensor], normalize: str) -> np.ndarray:
    """One RGB picture, a row per validation image: photo | truth | prediction."""
    rows = [
        np.concatenate([to_picture(x, normalize), colorize(truth.numpy()), colorize(pred.numpy())], axis=1)
        for x, truth, pred in zip(*samples)
    ]
    return np.concatenate(rows, axis=0)


def save_charts(folder: str | Path, matrix: np.ndarray | None, class_names: list[str], history: list[dict]) -> None:
    """The confusion matrix (None when a resumed run found no better epoch) and the
    learning curves as PNGs in `folder`; level 1 takes a third of the default's time."""
    if matrix is not None:
        confusion_image(matrix, class_names).save(Path(folder, "confusion_matrix.png"), compress_level=1)
    curves_image(history).save(Path(folder, "learning_curves.png"), compress_level=1)


def _param_value(value: Any) -> str:
    text = str(value)
    return text if len(text) <= 6000 else text[:5997] + "..."


def _lowest_priority() -> None:
    """Put the calling thread at the lowest CPU priority the OS offers without privileges.

    On Linux that is SCHED_IDLE: the thread runs only on a core nothing else wants, and a
    training thread that wakes up takes the core back at once (at nice 19 it waits for
    the end of the logger's time slice, while its OpenMP team waits for it). Where
    SCHED_IDLE is refused, nice 19. Other systems are left alone: there a priority
    belongs to the whole process, training included.
    """
    if sys.platform != "linux":
        return
    with contextlib.suppress(OSError, AttributeError):
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))  # 0: this thread, not the process
        return
    with contextlib.suppress(OSError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)


class LogWorker:
    """Runs logging calls in order, and turns a failed call into one RuntimeError.

    With `background` the calls run on a worker thread at the lowest CPU priority (on
    Linux, see `_lowest_priority`), so they fill the moments training leaves a core
    idle instead of taking one from training's own threads; a failure is raised by the
    next `submit` or by `close`, and the calls after it are dropped. Without it they run at once, in the caller.
    Only numpy, Pillow and MLflow run on the worker: a torch op there would start a
    second OpenMP thread team that competes with training's (BENCHMARKS.md, tracking).
    `cpu_seconds` is the CPU time the calls took, complete once `close` returns.
    """

    def __init__(self, background: bool = True) -> None:
        self._error: BaseException | None = None
        self.cpu_seconds = 0.0
        self._queue: queue.SimpleQueue | None = None
        if background:
            self._queue = queue.SimpleQueue()
            self._thread = threading.Thread(target=self._work, name="hybridunet-mlflow", daemon=True)
            self._thread.start()

    def _work(self) -> None:
        _lowest_priority()
        while (call := self._queue.get()) is not None:
            if self._error is None:
                try:
                    self._call(*call)
                except BaseException as error:  # raised again by the caller's next submit or close
                    self._error = error

    def _call(self, fn: Callable[..., Any], args: tuple, kwargs: dict) -> None:
        start = time.thread_time()
        try:
            fn(*args, **kwargs)
        finally:
            self.cpu_seconds += time.thread_time() - start

    def _raise(self) -> None:
        if self._error is not None:
            error, self._error = self._error, None
            raise RuntimeError(f"MLflow logging failed: {type(error).__name__}: {error}") from error

    def submit(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        self._raise()
        if self._queue is not None:
            self._queue.put((fn, args, kwargs))
            return
        try:
            self._call(fn, args, kwargs)
        except Exception as error:  # Ctrl-C stays a KeyboardInterrupt
            self._error = error
            self._raise()

    def close(self, timeout: float | None = None) -> None:
        """Wait (at most `timeout` seconds) for every submitted call; raise the first failure."""
        if self._queue is not None and self._thread.is_alive():
            self._queue.put(None)
            self._thread.join(timeout)
        self._raise()


class MLflowCallback(Callback):
    """Logs a training run to MLflow: the flattened config as params, per-epoch metrics
    (and ``val_dice/<class>``), image | truth | prediction panels for fixed validation
    images, the config, best checkpoint, confusion matrix and learning curves.

    The run is created before training starts; everything else is logged by a low-priority
    worker thread while training goes on (see `LogWorker`), and the run ends once that
    work is done. Metrics are sent in one batch every ``tracking.flush_secs`` (like
    TensorBoard's ``flush_secs``): each store write is a transaction. An exception
    ends the run FAILED, Ctrl-C (KeyboardInterrupt) KILLED (see `status_for`). A resumed
    training continues the same MLflow run. With `parent_run_id`, the run is nested under
    that run (a comparison's or a study's).
    """

    def __init__(
        self, config: TrackingConfig, parent_run_id: str | None = None, tags: dict[str, str] | None = None
    ) -> None:
        self.config, self.parent_run_id, self.extra_tags = config, parent_run_id, tags or {}
        self.run_id: str | None = None
        self.client: MlflowClient | None = None
        self._log: LogWorker | None = None
        self._metrics: list[Metric] = []  # not yet sent
        self._flushed_at = 0.0

    @property
    def logging_cpu_s(self) -> float:
        """CPU seconds the MLflow calls of this run took (on the worker, or inline), once the run has ended."""
        return self._log.cpu_seconds if self._log is not None else 0.0

    # -- for subclasses: queued, in order, on the run --------------------------------
    def set_tags(self, tags: dict[str, Any]) -> None:
        self._log.submit(self.client.log_batch, self.run_id, tags=[RunTag(k, str(v)) for k, v in tags.items()])

    def log_params(self, params: dict[str, Any]) -> None:
        items = [Param(k, _param_value(v)) for k, v in params.items()]
        for i in range(0, len(items), 100):  # the store's limit per batch
            self._log.submit(self.client.log_batch, self.run_id, params=items[i : i + 100])

    def log_metrics(self, values: dict[str, float], step: int = 0) -> None:
        """Held until the next flush (every `flush_secs`, and when the run ends)."""
        now = int(time.time() * 1000)
        self._metrics += [Metric(k, float(v), now, step) for k, v in values.items()]

    def flush(self, force: bool = True) -> None:
        """Send the held metrics (unless `force` is False and the last flush is recent)."""
        if not self._metrics or (not force and time.monotonic() - self._flushed_at < self.config.flush_secs):
            return
        metrics, self._metrics, self._flushed_at = self._metrics, [], time.monotonic()
        for i in range(0, len(metrics), 1000):  # the store's limit per batch
            self._log.submit(self.client.log_batch, self.run_id, metrics=metrics[i : i + 1000], synchronous=True)

    # -- hooks ----------------------------------------------------------------------
    def on_fit_start(self, run: Run) -> None:
        uri = tracking_uri(self.config)
        mlflow.set_tracking_uri(uri)
        self.client = MlflowClient(uri)
        self._log = LogWorker(self.config.background)
        previous = run.info.get("mlflow_run_id") if run.resumed else None
        if previous:
            self.client.update_run(previous, status="RUNNING")
            self.run_id = previous
            self._log_missing_epochs(run)
        else:
            cfg = run.config
            tags = {
                "model": cfg.model.name,
                "seed": str(cfg.seed),
                "hybridunet_version": __version__,
                "out_dir": str(run.out_dir),
                **self.extra_tags,
            }
            if self.parent_run_id:
                tags["mlflow.parentRunId"] = self.parent_run_id
            commit = git_commit()
            if commit:
                tags["git_commit"] = tags["mlflow.source.git.commit"] = commit
            created = self.client.create_run(
                experiment_id(self.config.experiment, uri), run_name=self.config.run_name or run.out_dir.name, tags=tags
            )
            self.run_id = created.info.run_id
            self.log_params(cfg.flat())
            self._log.submit(self.client.log_artifact, self.run_id, str(run.out_dir / "config.yaml"))
        run.info["mlflow_run_id"] = self.run_id
        run.keep_val_samples = max(run.keep_val_samples, self.config.log_images)
        self._flushed_at = time.monotonic()

    def _log_missing_epochs(self, run: Run) -> None:
        """After a crash between a checkpoint and its MLflow logging, log what the
        checkpoint's history holds and MLflow lacks, so every epoch is recorded once."""
        logged = {m.step for m in self.client.get_metric_history(self.run_id, "val_dice")}
        for row in run.history:
            if row["epoch"] not in logged:
                self.log_metrics(epoch_values(row), step=row["epoch"])

    def on_epoch_end(self, run: Run, epoch: int, metrics: dict[str, Any]) -> None:
        self.log_metrics(epoch_values(metrics), step=epoch)
        self.flush(force=False)
        if self.config.log_images and run.val_samples is not None:  # predictions of the validation pass
            panel = panel_picture(run.val_samples, run.config.data.normalize)  # torch stays on this thread
            self._log.submit(self.client.log_image, self.run_id, panel, key="val_panels", step=epoch, synchronous=True)

    def on_fit_end(self, run: Run, result: dict[str, Any]) -> None:
        best = run.out_dir / "best.safetensors"
        for path in (best, best.with_suffix(".json")):
            self._log.submit(self.client.log_artifact, self.run_id, str(path), "checkpoint")
        self.log_metrics({"best_val_dice": result["dice"], "best_val_miou": result["miou"]})
        self.flush()
        matrix = run.best_confusion.matrix.cpu().numpy() if run.best_confusion is not None else None
        with tempfile.TemporaryDirectory() as folder:  # drawn here while the worker sends what is queued
            save_charts(folder, matrix, run.class_names, list(run.history))
            self._log.submit(self.client.log_artifacts, self.run_id, folder, "plots")
            self._log.close()
        self.client.set_terminated(self.run_id, "FINISHED")
        result["run_id"] = self.run_id

    def status_for(self, error: BaseException) -> tuple[str, dict[str, str]]:
        """The MLflow status (and extra tags) a run ends with when `error` stops it."""
        status = RunStatus.KILLED if isinstance(error, KeyboardInterrupt) else RunStatus.FAILED
        return RunStatus.to_string(status), {"error": f"{type(error).__name__}: {error}"[:5000]}

    def on_exception(self, run: Run, error: BaseException) -> None:
        if self.run_id is None:  # no run was created: only stop the worker, if it started
            if self._log is not None:
                self._log.close()
            return
        status, tags = self.status_for(error)
        try:
            self.flush()
            self._log.close(timeout=60)  # what was logged before the error still lands
        except RuntimeError as logging_error:
            tags["logging_error"] = str(logging_error)[:5000]
        for key, value in tags.items():
            self.client.set_tag(self.run_id, key, value)
        self.client.set_terminated(self.run_id, status)
