"""Where runs are stored: the tracking URI, experiments, and MLflow's offline default.

The tracking URI is ``tracking.uri``, else ``MLFLOW_TRACKING_URI``, else
``sqlite:///mlflow.db`` with artifacts in ``./mlruns`` (what ``mlflow ui`` opens by default).
"""

from __future__ import annotations

import os
from pathlib import Path

from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from hybridunet.config import TrackingConfig
from hybridunet.errors import UsageError

DEFAULT_URI = "sqlite:///mlflow.db"
# MLflow 3's UI opens experiments of this kind on the runs table (not the GenAI traces view).
EXPERIMENT_KIND = {"mlflow.experimentKind": "custom_model_development"}


def tracking_uri(config: TrackingConfig | None = None) -> str:
    return (config.uri if config and config.uri else None) or os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_URI


def absolute_uri(uri: str) -> str:
    """`uri` with a relative sqlite path made absolute: an outbox's calls reach the same store
    from whatever folder `hybridunet sync` is run in."""
    if uri.startswith("sqlite:///") and not uri.startswith("sqlite:////"):
        return "sqlite:///" + str(Path(uri.removeprefix("sqlite:///")).resolve())
    return uri


def client(uri: str | None = None) -> MlflowClient:
    return MlflowClient(uri or tracking_uri())


def experiment_id(name: str, uri: str) -> str:
    """The id of experiment `name`, created if missing. With a sqlite store its artifacts go to
    ``mlruns/`` beside the database file, as `mlflow ui` expects for the default store."""
    c = MlflowClient(uri)
    found = c.get_experiment_by_name(name)
    if found is not None:
        if found.lifecycle_stage == "deleted":
            raise UsageError(f"MLflow experiment {name!r} is deleted; restore it or choose another tracking.experiment")
        if "mlflow.experimentKind" not in found.tags:
            c.set_experiment_tag(found.experiment_id, *next(iter(EXPERIMENT_KIND.items())))
        return found.experiment_id
    try:
        return c.create_experiment(name, artifact_location=_artifact_location(uri), tags=EXPERIMENT_KIND)
    except MlflowException:  # another process (a second tune worker, say) created it since the lookup
        again = c.get_experiment_by_name(name)
        if again is None:
            raise
        return again.experiment_id


def _artifact_location(uri: str) -> str | None:
    if not uri.startswith("sqlite:///"):
        return None  # a server or database store knows its own artifact root
    database = Path(uri.removeprefix("sqlite:///"))
    return (database.resolve().parent / "mlruns").as_uri()


def ui_links(run_id: str, uri: str | None = None, ui: str = "http://127.0.0.1:5000") -> tuple[str, str]:
    """Where `mlflow ui` shows a run: its experiment's chart view (where a comparison's parent
    draws each arm's curve, the decision and the comparison figure, its seeds folded under
    it), and the page of the run's parent (or of the run itself) with its charts."""
    c = client(uri)
    run = c.get_run(run_id)
    shown = run.data.tags.get("mlflow.parentRunId", run_id)
    experiment = run.info.experiment_id
    return (f"{ui}/#/experiments/{experiment}/runs?workflowType=machine_learning&compareRunsMode=CHART",
            f"{ui}/#/experiments/{experiment}/runs/{shown}/model-metrics")
