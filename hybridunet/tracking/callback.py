"""MLflow tracking as an engine callback: one MLflow run per training."""

from __future__ import annotations

import math
import tempfile
import time
from typing import Any

import numpy as np
import torch
from mlflow.entities import Metric, Param, RunStatus, RunTag
from mlflow.tracking import MlflowClient

from hybridunet.config import TrackingConfig
from hybridunet.data.labels import colorize
from hybridunet.data.transforms import to_picture
from hybridunet.engine import Callback, Run
from hybridunet.errors import ConfigError
from hybridunet.tracking.datasets import VALIDATION, log_datasets, run_datasets
from hybridunet.tracking.provenance import provenance_tags
from hybridunet.tracking.store import experiment_id, tracking_uri
from hybridunet.tracking.worker import LogWorker
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


def start_system_metrics(run_id: str, uri: str):
    """MLflow's system-metrics sampler (`system/*` metrics) on run `run_id`, started."""
    try:
        import psutil  # noqa: F401  (MLflow's sampler needs it and only warns without it)
    except ImportError:
        raise ConfigError("tracking.system_metrics: true needs psutil: pip install psutil "
                          "(or hybridunet[system])") from None
    from mlflow.system_metrics.system_metrics_monitor import SystemMetricsMonitor

    monitor = SystemMetricsMonitor(run_id, tracking_uri=uri)
    monitor.start()
    return monitor


def _param_value(value: Any) -> str:
    text = str(value)
    return text if len(text) <= 6000 else text[:5997] + "..."


class MLflowCallback(Callback):
    """Logs a training run to MLflow: the flattened config as params, per-epoch metrics
    (and ``val_dice/<class>``), image | truth | prediction panels for fixed validation
    images (each under its own key ``val/sample_NN``, and stacked as ``val_panels``), the
    config, best checkpoint, confusion matrix and learning curves.

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
        self._system = None  # MLflow's SystemMetricsMonitor, with tracking.system_metrics
        self._datasets: dict[str, Any] = {}  # context -> MLflow dataset (`run_datasets`)

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
        self.client = MlflowClient(uri)
        self._log = LogWorker(self.config.background)
        self._datasets = run_datasets(run)  # logged with a new run; the final scores name the validation one
        previous = run.info.get("mlflow_run_id") if run.resumed else None
        if previous:
            self.client.update_run(previous, status="RUNNING")
            self.run_id = previous
            self._log_missing_epochs(run)
        else:
            cfg = run.config
            tags = {**provenance_tags(run), **self.extra_tags}
            if self.parent_run_id:
                tags["mlflow.parentRunId"] = self.parent_run_id
            created = self.client.create_run(
                experiment_id(self.config.experiment, uri), run_name=self.config.run_name or run.out_dir.name, tags=tags
            )
            self.run_id = created.info.run_id
            resolved = {**run.precision.as_dict(), "class_weights": run.class_weights}
            self.log_params({**cfg.flat(), **{f"resolved.{k}": v for k, v in resolved.items()}})
            self._log.submit(self.client.log_artifact, self.run_id, str(run.out_dir / "config.yaml"))
            self._log.submit(log_datasets, self.client, self.run_id, self._datasets)
        run.info["mlflow_run_id"] = self.run_id
        run.keep_val_samples = max(run.keep_val_samples, self.config.log_images)
        if self.config.log_model != "none":
            from hybridunet.tracking.models import prepare

            self._log.submit(prepare, self.config.log_model)  # the model's once-a-process costs, while training runs
        if self.config.system_metrics:
            self._system = start_system_metrics(self.run_id, uri)
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
            for i, picture in enumerate(sample_pictures(run.val_samples, run.config.data.normalize)):
                # one key per fixed image: MLflow's image grid puts the same image of several runs side by side
                self._log.submit(self.client.log_image, self.run_id, picture, key=f"val/sample_{i:02d}", step=epoch,
                                 synchronous=True)

    def on_fit_end(self, run: Run, result: dict[str, Any]) -> None:
        best = run.out_dir / "best.safetensors"
        for path in (best, best.with_suffix(".json")):
            self._log.submit(self.client.log_artifact, self.run_id, str(path), "checkpoint")
        matrix = run.best_confusion.matrix.cpu().numpy() if run.best_confusion is not None else None
        with tempfile.TemporaryDirectory() as folder:  # drawn here while the worker sends what is queued
            save_run_charts(folder, matrix, run.class_names, list(run.history))
            self._log.submit(self.client.log_artifacts, self.run_id, folder, "plots")
            self.flush()
            self._log.close()
        model = None
        if self.config.log_model != "none":  # after the epochs' metrics landed: the model links its epoch's
            from hybridunet.tracking.models import ensure_model

            model = ensure_model(self.run_id, best, self.config.log_model, self.config.registered_model,
                                 tracking_uri(self.config))
            if model is not None:
                result.update(model_uri=model.model_uri, model_id=model.model_id)
        self._log_final(result, model.model_id if model is not None else None)
        self._stop_system_metrics()
        self.client.set_terminated(self.run_id, "FINISHED")
        result["run_id"] = self.run_id

    def _log_final(self, result: dict[str, Any], model_id: str | None) -> None:
        """The run's final metrics, linked to its model (the validation scores with the
        validation dataset): best_val_dice, best_val_miou, best_val_dice/<class>, cost/*."""
        scores = {"best_val_dice": result["dice"], "best_val_miou": result["miou"],
                  **{f"best_val_dice/{k}": v for k, v in (result.get("per_class_dice") or {}).items()}}
        cost = {f"cost/{k}": v for k, v in (result.get("cost") or {}).items()}
        dataset = self._datasets[VALIDATION]
        now = int(time.time() * 1000)
        rows = [Metric(k, float(v), now, 0, model_id=model_id, dataset_name=dataset.name if model_id else None,
                       dataset_digest=dataset.digest if model_id else None)
                for k, v in scores.items() if v is not None and math.isfinite(v)]
        rows += [Metric(k, float(v), now, 0, model_id=model_id) for k, v in cost.items()
                 if v is not None and math.isfinite(v)]
        self.client.log_batch(self.run_id, metrics=rows)

    def _stop_system_metrics(self) -> None:
        if self._system is not None:
            self._system.finish()  # its last samples land before the run ends
            self._system = None

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
            self._stop_system_metrics()
            self.flush()
            self._log.close(timeout=60)  # what was logged before the error still lands
        except RuntimeError as logging_error:
            tags["logging_error"] = str(logging_error)[:5000]
        for key, value in tags.items():
            self.client.set_tag(self.run_id, key, value)
        self.client.set_terminated(self.run_id, status)
