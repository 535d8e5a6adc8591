"""An Optuna trial's nested MLflow run (the tuning package knows no MLflow)."""

from __future__ import annotations

from typing import Any

from hybridunet.config import TrackingConfig
from hybridunet.engine import Run
from hybridunet.tracking.callback import MLflowCallback


class TrialRunCallback(MLflowCallback):
    """A trial's run under its study's parent: tagged with the study and trial, its sampled
    parameters logged as ``trial.<key>``; a trial stopped by `pruned` (the tuner's pruning
    exception) ends FINISHED with ``optuna.state = PRUNED``, a completed one ``COMPLETE``. A
    server that is away fails no trial: its calls wait in the trial's folder for the study's end."""

    def __init__(self, config: TrackingConfig, parent_run_id: Any, study: str, number: int, params: dict[str, Any],
                 pruned: type[BaseException]) -> None:
        super().__init__(config, parent_run_id=parent_run_id, flush_timeout=0)  # the study waits once, at its end
        self.study, self.number, self.params, self.pruned = study, number, params, pruned

    def on_fit_start(self, run: Run) -> None:
        super().on_fit_start(run)
        self.set_tags({"optuna.study": self.study, "optuna.trial": str(self.number)})
        self.log_params({f"trial.{k}": v for k, v in self.params.items()})

    def status_for(self, error: BaseException) -> tuple[str, dict[str, str]]:
        if isinstance(error, self.pruned):
            return "FINISHED", {"optuna.state": "PRUNED"}
        return super().status_for(error)

    def on_fit_end(self, run: Run, result: dict[str, Any]) -> None:
        self.set_tags({"optuna.state": "COMPLETE"})
        super().on_fit_end(run, result)
