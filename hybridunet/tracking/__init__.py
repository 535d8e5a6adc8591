"""Everything that talks to MLflow; no other module of hybridunet imports it.

- store.py: tracking URI, experiments (opened on MLflow 3's runs table), offline default;
- callback.py: `MLflowCallback`, one run per training;  - worker.py: the logging thread;
- parent.py: `parent_run()`, for comparisons and studies; - provenance.py: a run's tags;
- runs.py: finished runs read back as `RunRecord`s for `compare --experiment`;
- trials.py: `TrialRunCallback`, an Optuna trial's nested run;
- models.py: the best checkpoint as a LoggedModel (ONNX by default); - datasets.py: a run's data;
- calls.py: MLflow calls as data, and sending them; - outbox.py: the calls a server away did
  not take, kept in a run folder; - sync.py: sending an outbox (`hybridunet sync`).
"""

import os

# Offline by default, and set before anything below imports MLflow: MLflow 3 sets up its
# telemetry (an installation id under ~/.config/mlflow) when its modules load, unless told
# not to. A user who wants telemetry sets MLFLOW_DISABLE_TELEMETRY=false and keeps it.
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
# MLflow retries a request to a server for minutes (7 tries, backoff factor 2, 120 s timeout)
# while the logging worker waits; the worker keeps what a server that is away does not take
# and tries again itself (worker.py), so one request tries for seconds. Set them to keep yours.
os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
os.environ.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1")
os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "30")

from hybridunet.tracking.callback import EPOCH_METRICS, MLflowCallback, epoch_values, panel_picture
from hybridunet.tracking.parent import ParentRun, parent_run, shared_parent_id
from hybridunet.tracking.provenance import git_commit, provenance_tags
from hybridunet.tracking.runs import finished_runs, log_test_scores, trial_runs
from hybridunet.tracking.store import DEFAULT_URI, EXPERIMENT_KIND, experiment_id, tracking_uri, ui_links
from hybridunet.tracking.trials import TrialRunCallback
from hybridunet.tracking.worker import LogWorker

__all__ = [
    "DEFAULT_URI", "EPOCH_METRICS", "EXPERIMENT_KIND", "LogWorker", "MLflowCallback", "ParentRun",
    "epoch_values", "experiment_id", "finished_runs", "git_commit", "panel_picture", "parent_run",
    "log_test_scores", "provenance_tags", "shared_parent_id", "tracking_uri", "trial_runs", "TrialRunCallback", "ui_links",
]
