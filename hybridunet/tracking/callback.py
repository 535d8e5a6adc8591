"""MLflow tracking as an engine callback: one MLflow run per training."""

from __future__ import annotations

import contextlib
import math
import threading
import time
import uuid
from typing import Any

import numpy as np
import torch
from mlflow.entities import RunStatus

from hybridunet.config import TrackingConfig
from hybridunet.data.labels import colorize
from hybridunet.data.transforms import to_picture
from hybridunet.engine import Callback, Run
from hybridunet.errors import ConfigError
from hybridunet.tracking.calls import RUN_REF, Sender, metric_rows
from hybridunet.tracking.datasets import dataset_rows, run_datasets
from hybridunet.tracking.outbox import OUTBOX, Outbox
from hybridunet.tracking.provenance import provenance_tags
from hybridunet.tracking.store import tracking_uri
from hybridunet.tracking.sync import send_leftovers
from hybridunet.tracking.worker import LogWorker, say
from hybridunet.viz import save_run_charts

EPOCH_METRICS = ("train_loss", "val_loss", "val_dice", "val_miou", "val_pixel_acc", "lr", "images_per_s")


def epoch_values(metrics: dict[str, Any]) -> dict[str, float]:
    """The MLflow metrics of one epoch (a metrics dict or a history row): the finite
    values of EPOCH_METRICS and ``val_dice/<class>``."""
    values = {k: metrics.get(k) for k in EPOCH_METRICS}
    values.update({f"val_dice/{name}": v for name, v in (metrics.get("val_per_class_dice") or {}).items()})
    return {k: float(v) for k, v in values.items() if v is not None and math.isfinite(v)}


def panel_picture(samples: tuple[torch.Tensor, torch.Tensor, torch.Tensor], normalize: str) -> np.ndarray:
    """One RGB picture, a row per validation image: photo | truth | prediction."""
    return np.concatenate([np.concatenate(_panels(*sample, normalize), axis=1) for sample in zip(*samples)], axis=0)


def _panels(x: torch.Tensor, truth: torch.Tensor, pred: torch.Tensor, normalize: str) -> list[np.ndarray]:
    """One validation image as RGB pictures: the photo, its true classes, the predicted ones."""
    return [to_picture(x, normalize), colorize(truth.numpy()), colorize(pred.numpy())]


def sample_pictures(samples: tuple[torch.Tensor, torch.Tensor, torch.Tensor], normalize: str,
                    longest: int = 256) -> list[np.ndarray]:
    """Each validation image as its own picture, photo | truth | prediction, at most `longest`
    pixels wide: the size of MLflow's image-grid thumbnails, so nothing larger is encoded and
    stored every epoch (small crops are enlarged without smoothing: the classes stay sharp)."""
    import cv2

    pictures = []
    for sample in zip(*samples):
        panels = _panels(*sample, normalize)
        height, width = panels[0].shape[:2]
        scale = (longest // 3) / max(height, width)
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        interpolation = cv2.INTER_NEAREST if scale >= 1 else cv2.INTER_AREA
        pictures.append(np.concatenate([cv2.resize(panel, size, interpolation=interpolation) for panel in panels],
                                       axis=1))
    return pictures


def require_psutil() -> None:
    try:
        import psutil  # noqa: F401  (MLflow's sampler needs it and only warns without it)
    except ImportError:
        raise ConfigError("tracking.system_metrics: true needs psutil: pip install psutil "
                          "(or hybridunet[system])") from None


def start_system_metrics(run_id: str, uri: str):
    """MLflow's system-metrics sampler (`system/*` metrics) on run `run_id`, started."""
    require_psutil()
    from mlflow.system_metrics.system_metrics_monitor import SystemMetricsMonitor

    monitor = SystemMetricsMonitor(run_id, tracking_uri=uri)
    monitor.start()
    return monitor


def _param_value(value: Any) -> str:
    text = str(value)
    return text if len(text) <= 6000 else text[:5997] + "..."


def _now() -> int:
    return int(time.time() * 1000)


class MLflowCallback(Callback):
    """Logs a training run to MLflow: the flattened config as params, per-epoch metrics
    (and ``val_dice/<class>``), image | truth | prediction panels for fixed validation
    images (each under its own key ``val/sample_NN``, and stacked as ``val_panels``), the
    config, best checkpoint, confusion matrix and learning curves, and (``tracking.log_model``)
    the best checkpoint's model.

    Every call is made by a low-priority worker thread while training goes on (see
    `LogWorker`), the run's creation included; the run ends once that work is done.
    Metrics are sent in one batch every ``tracking.flush_secs`` (like TensorBoard's
    ``flush_secs``): each store write is a transaction. A tracking server that is away
    never stops training: what it could not take waits in the run folder's outbox, is
    sent when it is back, and the run ends when that is done or after
    ``tracking.flush_timeout`` seconds (`flush_timeout` here; then `hybridunet sync
    RUN_DIR` sends the rest); the result's ``tracking`` says ``complete`` or ``partial``.
    An exception ends the run FAILED, Ctrl-C (KeyboardInterrupt) KILLED (see
    `status_for`). A resumed training continues the same MLflow run. With `parent`
    (a run id, or a `ParentRun` of this process), the run is nested under that run (a
    comparison's or a study's).
    """

    def __init__(self, config: TrackingConfig, parent_run_id: Any = None, tags: dict[str, str] | None = None,
                 flush_timeout: float | None = None) -> None:
        self.config, self.parent, self.extra_tags = config, parent_run_id, tags or {}
        self.flush_timeout = config.flush_timeout if flush_timeout is None else flush_timeout
        self._log: LogWorker | None = None
        self._metrics: list[list] = []  # not yet sent
        self._flushed_at = 0.0
        self._system = None  # MLflow's SystemMetricsMonitor, with tracking.system_metrics
        self._datasets: dict[str, Any] = {}  # context -> MLflow dataset (`run_datasets`)
        self._uri = ""
        self._starting = threading.Lock()
        self.tracking = "complete"  # or "partial": calls are left in the run folder's outbox

    @property
    def run_id(self) -> str | None:
        return self._log.run_id if self._log is not None else None

    @property
    def logging_cpu_s(self) -> float:
        """CPU seconds the MLflow calls of this run took (on the worker, or inline), once the run has ended."""
        return self._log.cpu_seconds if self._log is not None else 0.0

    # -- for subclasses: queued, in order, on the run --------------------------------
    def set_tags(self, tags: dict[str, Any]) -> None:
        self._log.submit({"call": "log_batch", "tags": [[k, str(v)] for k, v in tags.items()]})

    def log_params(self, params: dict[str, Any]) -> None:
        self._log.submit({"call": "log_batch", "params": [[k, _param_value(v)] for k, v in params.items()]})

    def log_metrics(self, values: dict[str, float], step: int = 0) -> None:
        """Held until the next flush (every `flush_secs`, and when the run ends)."""
        self._metrics += metric_rows(values, step)

    def flush(self, force: bool = True) -> None:
        """Send the held metrics (unless `force` is False and the last flush is recent)."""
        if not self._metrics or (not force and time.monotonic() - self._flushed_at < self.config.flush_secs):
            return
        metrics, self._metrics, self._flushed_at = self._metrics, [], time.monotonic()
        self._log.submit({"call": "log_batch", "metrics": metrics})

    # -- hooks ----------------------------------------------------------------------
    def on_fit_start(self, run: Run) -> None:
        self._uri = tracking_uri(self.config)
        if self.config.system_metrics:
            require_psutil()
        previous = (run.info.get("mlflow_run_id") or Outbox(run.out_dir).run_id()) if run.resumed else None
        if not run.resumed:
            send_leftovers(run.out_dir)  # an earlier run's unsent calls are never mixed into this one
        self._log = LogWorker(Sender(self._uri), run.out_dir, self.config.background, run_id=previous)
        self._log.on_run = lambda run_id: self._created(run, run_id)
        self._datasets = run_datasets(run)  # logged with a new run; the final scores name the validation one
        if run.resumed and self._log.adopted_run:  # the run exists, or the backlog a killed process kept creates it
            if self._log.run_id is not None:
                self._log.submit({"call": "update_run", "status": "RUNNING"})
                run.info["mlflow_run_id"] = self._log.run_id
            self._log_missing_epochs(run)
        else:
            tags = {**provenance_tags(run), **self.extra_tags, RUN_REF: uuid.uuid4().hex}
            parent = getattr(self.parent, "worker", self.parent)  # a ParentRun of this process: its worker
            self._log.submit({"call": "create_run", "experiment": self.config.experiment, "start_time": _now(),
                              "run_name": self.config.run_name or run.out_dir.name, "tags": tags, "parent": parent})
            self._log.wait_for_run()  # its id in the first checkpoint, as long as the server answers
            resolved = {**run.precision.as_dict(), "class_weights": run.class_weights}
            self.log_params({**run.config.flat(), **{f"resolved.{k}": v for k, v in resolved.items()}})
            self._log.submit({"call": "log_artifact", "path": str(run.out_dir / "config.yaml")})
            self._log.submit({"call": "log_datasets", "datasets": dataset_rows(self._datasets)})
        run.keep_val_samples = max(run.keep_val_samples, self.config.log_images)
        if self.config.log_model != "none":
            self._log.submit({"call": "prepare", "kind": self.config.log_model})  # once-a-process costs, while training runs
        if self.run_id is not None:
            self._created(run, self.run_id)
        self._flushed_at = time.monotonic()

    def _created(self, run: Run, run_id: str) -> None:
        """The run exists in MLflow (on the worker, where it was created)."""
        run.info["mlflow_run_id"] = run_id
        with self._starting:  # called by the worker when it creates the run, and at the start
            if self.config.system_metrics and self._system is None:
                self._system = start_system_metrics(run_id, self._uri)

    def _log_missing_epochs(self, run: Run) -> None:
        """After a crash between a checkpoint and its MLflow logging, log what the
        checkpoint's history holds and MLflow lacks, so every epoch is recorded once."""
        rows = [row for epoch in run.history for row in metric_rows(epoch_values(epoch), epoch["epoch"])]
        if rows:
            self._log.submit({"call": "log_batch", "metrics": rows, "new_steps_only": True})

    def on_epoch_end(self, run: Run, epoch: int, metrics: dict[str, Any]) -> None:
        self.log_metrics(epoch_values(metrics), step=epoch)
        self.flush(force=False)
        if self.config.log_images and run.val_samples is not None:  # predictions of the validation pass
            panel = panel_picture(run.val_samples, run.config.data.normalize)  # torch stays on this thread
            now = _now()
            self._log.submit({"call": "log_image", "image": panel, "key": "val_panels", "step": epoch,
                              "timestamp": now})
            for i, picture in enumerate(sample_pictures(run.val_samples, run.config.data.normalize)):
                # one key per fixed image: MLflow's image grid puts the same image of several runs side by side
                self._log.submit({"call": "log_image", "image": picture, "key": f"val/sample_{i:02d}", "step": epoch,
                                  "timestamp": now})

    def on_fit_end(self, run: Run, result: dict[str, Any]) -> None:
        best = run.out_dir / "best.safetensors"
        for path in (best, best.with_suffix(".json")):
            self._log.submit({"call": "log_artifact", "path": str(path), "artifact_path": "checkpoint"})
        matrix = run.best_confusion.matrix.cpu().numpy() if run.best_confusion is not None else None
        save_run_charts(run.out_dir / "plots", matrix, run.class_names, list(run.history))
        self._log.submit({"call": "log_artifact", "path": str(run.out_dir / "plots"), "artifact_path": "plots"})
        self.flush()
        self._log_final(result)
        if self.config.log_model != "none":  # after the epochs' metrics: the model links its epoch's
            self._log.submit({"call": "log_model", "checkpoint": str(best), "kind": self.config.log_model,
                              "registered_model": self.config.registered_model})
        self._end(run, "FINISHED")
        result["tracking"] = self.tracking
        result["run_id"] = self.run_id
        if self._log.model is not None:
            result.update(model_uri=self._log.model.model_uri, model_id=self._log.model.model_id)

    def _end(self, run: Run, status: str) -> None:
        """End the run with `status` once its calls are sent; say how to send what could not be."""
        if self._system is not None:
            self._log.wait_idle(self.flush_timeout)  # the sampler's last samples cover the sending too
        self._stop_system_metrics()
        self._log.submit({"call": "set_terminated", "status": status, "end_time": _now()})
        self.tracking = "complete" if self._log.close(self.flush_timeout) else "partial"
        if self.tracking == "partial" and self.flush_timeout > 0:
            say(f"MLflow at {self._uri} did not answer for {self.flush_timeout:g} s; {self._log.kept} calls are "
                f"kept in {run.out_dir / OUTBOX}: send them with  hybridunet sync {run.out_dir}")

    def _log_final(self, result: dict[str, Any]) -> None:
        """The run's final metrics: best_val_dice, best_val_miou, best_val_dice/<class>, cost/*
        (linked to the model by its log_model call)."""
        scores = {"best_val_dice": result["dice"], "best_val_miou": result["miou"],
                  **{f"best_val_dice/{k}": v for k, v in (result.get("per_class_dice") or {}).items()},
                  **{f"cost/{k}": v for k, v in (result.get("cost") or {}).items()}}
        self._log.submit({"call": "log_batch", "metrics": metric_rows(
            {k: v for k, v in scores.items() if v is not None and math.isfinite(v)})})

    def _stop_system_metrics(self) -> None:
        if self._system is not None:
            with contextlib.suppress(Exception):  # its own calls to a server that is away
                self._system.finish()  # its last samples land before the run ends
            self._system = None

    def status_for(self, error: BaseException) -> tuple[str, dict[str, str]]:
        """The MLflow status (and extra tags) a run ends with when `error` stops it."""
        status = RunStatus.KILLED if isinstance(error, KeyboardInterrupt) else RunStatus.FAILED
        return RunStatus.to_string(status), {"error": f"{type(error).__name__}: {error}"[:5000]}

    def on_exception(self, run: Run, error: BaseException) -> None:
        if self._log is None:  # the worker did not start
            return
        status, tags = self.status_for(error)
        self.flush()  # what was logged before the error still lands
        self.set_tags(tags)
        self._end(run, status)
