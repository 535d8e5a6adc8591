"""MLflow tracking as an engine callback: one MLflow run per training.

The tracking URI is ``tracking.uri``, else ``MLFLOW_TRACKING_URI``, else
``sqlite:///mlflow.db`` with artifacts in ``./mlruns`` (what ``mlflow ui`` opens by default).
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

# Offline by default: MLflow 3 reports usage to a remote endpoint unless told not to.
# A user who wants telemetry sets MLFLOW_DISABLE_TELEMETRY=false.
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

import mlflow  # noqa: E402
import numpy as np
import torch  # noqa: E402
from mlflow.entities import RunStatus  # noqa: E402
from mlflow.tracking import MlflowClient  # noqa: E402

from hybridunet import __version__
from hybridunet.config import TrackingConfig
from hybridunet.data.labels import colorize
from hybridunet.engine import Callback, Run

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


def _param_value(value: Any) -> str:
    text = str(value)
    return text if len(text) <= 6000 else text[:5997] + "..."


class MLflowCallback(Callback):
    """Logs a training run to MLflow: the flattened config as params, per-epoch metrics
    (and ``val_dice/<class>``), image | truth | prediction panels for fixed validation
    images, the config, best checkpoint, confusion matrix and learning curves.

    An exception ends the run FAILED, Ctrl-C (KeyboardInterrupt) KILLED (see
    `status_for`). A resumed training continues the same MLflow run. With
    `parent_run_id`, the run is nested under that run (a comparison's or a study's).
    """

    def __init__(
        self, config: TrackingConfig, parent_run_id: str | None = None, tags: dict[str, str] | None = None
    ) -> None:
        self.config, self.parent_run_id, self.extra_tags = config, parent_run_id, tags or {}
        self.run_id: str | None = None
        self._panels: list[tuple[np.ndarray, np.ndarray, torch.Tensor]] = []

    # -- hooks ----------------------------------------------------------------------
    def on_fit_start(self, run: Run) -> None:
        uri = tracking_uri(self.config)
        mlflow.set_tracking_uri(uri)
        previous = run.info.get("mlflow_run_id") if run.resumed else None
        if previous:
            active = mlflow.start_run(run_id=previous)
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
            commit = git_commit()
            if commit:
                tags["git_commit"] = commit
                tags["mlflow.source.git.commit"] = commit
            active = mlflow.start_run(
                run_name=self.config.run_name or run.out_dir.name,
                experiment_id=experiment_id(self.config.experiment, uri),
                nested=self.parent_run_id is not None,
                parent_run_id=self.parent_run_id,
                tags=tags,
            )
            mlflow.log_params({k: _param_value(v) for k, v in cfg.flat().items()})
            mlflow.log_artifact(str(run.out_dir / "config.yaml"))
        self.run_id = active.info.run_id
        run.info["mlflow_run_id"] = self.run_id
        self._prepare_panels(run)

    def _log_missing_epochs(self, run: Run) -> None:
        """After a crash between a checkpoint and its MLflow logging, log what the
        checkpoint's history holds and MLflow lacks, so every epoch is recorded once."""
        logged = {m.step for m in MlflowClient().get_metric_history(self.run_id or mlflow.active_run().info.run_id, "val_dice")}
        for row in run.history:
            if row["epoch"] not in logged:
                values = {k: float(row[k]) for k in EPOCH_METRICS if row.get(k) is not None}
                mlflow.log_metrics(values, step=row["epoch"])

    def on_epoch_end(self, run: Run, epoch: int, metrics: dict[str, Any]) -> None:
        values = {k: float(metrics[k]) for k in EPOCH_METRICS if metrics.get(k) is not None}
        values.update(
            {f"val_dice/{name}": float(v) for name, v in metrics["val_per_class_dice"].items() if v == v}
        )
        mlflow.log_metrics(values, step=epoch)
        panels = self._render_panels(run)
        if panels:  # one picture per epoch, a row per fixed image: cheap to log, easy to scroll
            # synchronous: an asynchronous queue costs about a second to drain at end_run
            mlflow.log_image(np.concatenate(panels, axis=0), key="val_panels", step=epoch, synchronous=True)

    def on_fit_end(self, run: Run, result: dict[str, Any]) -> None:
        from hybridunet.viz import confusion_figure, curves_figure

        best = run.out_dir / "best.safetensors"
        mlflow.log_artifact(str(best), "checkpoint")
        mlflow.log_artifact(str(best.with_suffix(".json")), "checkpoint")
        if run.best_confusion is not None:  # None when a resumed run found no better epoch
            matrix = run.best_confusion.matrix.cpu().numpy()
            mlflow.log_figure(confusion_figure(matrix, run.class_names), "plots/confusion_matrix.png")
        mlflow.log_figure(curves_figure(run.history), "plots/learning_curves.png")
        mlflow.log_metrics({"best_val_dice": result["dice"], "best_val_miou": result["miou"]})
        mlflow.end_run()
        result["run_id"] = self.run_id

    def status_for(self, error: BaseException) -> tuple[str, dict[str, str]]:
        """The MLflow status (and extra tags) a run ends with when `error` stops it."""
        status = RunStatus.KILLED if isinstance(error, KeyboardInterrupt) else RunStatus.FAILED
        return RunStatus.to_string(status), {"error": f"{type(error).__name__}: {error}"[:5000]}

    def on_exception(self, run: Run, error: BaseException) -> None:
        active = mlflow.active_run()
        if active is None or active.info.run_id != self.run_id:
            return
        status, tags = self.status_for(error)
        mlflow.set_tags(tags)
        mlflow.end_run(status=status)

    # -- panels ---------------------------------------------------------------------
    def _prepare_panels(self, run: Run) -> None:
        count = min(self.config.log_images, len(run.val_data))
        self._panels = []
        for k in range(count):
            image, mask = run.val_data.load(k)
            x, target = run.val_data[k]
            self._panels.append((x, target.numpy().astype(np.uint8), image))

    @torch.no_grad()
    def _render_panels(self, run: Run) -> list[np.ndarray]:
        if not self._panels:
            return []
        import cv2

        was_training = run.model.training
        run.model.eval()
        batch = torch.stack([x for x, _, _ in self._panels]).to(run.device)
        predictions = run.model(batch).argmax(1).to(torch.uint8).cpu().numpy()
        run.model.train(was_training)
        panels = []
        for (_, truth, image), pred in zip(self._panels, predictions):
            h, w = truth.shape
            photo = cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA)
            panels.append(np.concatenate([photo, colorize(truth), colorize(pred)], axis=1))
        return panels
