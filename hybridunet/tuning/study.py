"""`tune`: run or resume a study until it holds its trials, and write the best config."""

from __future__ import annotations

import contextlib
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna
import yaml
from optuna.trial import TrialState

from hybridunet.config import ExperimentConfig, parse_config
from hybridunet.errors import UsageError
from hybridunet.tuning.objective import FINISHED, Objective, Surplus
from hybridunet.tuning.space import SearchSpace, decode, set_key
from hybridunet.tuning.storage import open_storage


def study_dir(study_name: str) -> Path:
    return Path("outputs") / f"tune-{study_name}"


def tune(
    base: ExperimentConfig,
    space: SearchSpace,
    trials: int,
    storage: str = "sqlite:///optuna.db",
    study_name: str = "hybridunet",
    jobs: int = 1,
    timeout: float | None = None,
    heartbeat: float = 30,
    seeds_per_trial: int = 1,
) -> optuna.Study:
    """Run (or resume) a study until it holds `trials` finished trials; write best.yaml.

    Workers sharing `storage` together finish exactly `trials` trials (see `Objective.claim`).
    A worker that dies leaves its trial RUNNING; `heartbeat` seconds apart every running
    trial says it is alive, and after three silent intervals the next worker marks it
    FAILED and runs its parameters again. With `seeds_per_trial` K, a trial scores the mean
    of K seeds (see `Objective`); the Wilcoxon pruner needs K of 4 or more to ever prune.
    """
    if seeds_per_trial < 1:
        raise UsageError(f"--seeds-per-trial {seeds_per_trial}: expected 1 or more")
    if space.pruner.name == "wilcoxon" and seeds_per_trial < 4:
        print(f"hybridunet tune: the wilcoxon pruner compares a trial with the best one seed by seed and needs "
              f"4 or more seeds per trial to ever prune; with {seeds_per_trial} it never prunes", file=sys.stderr)
    study = optuna.create_study(
        storage=open_storage(storage, heartbeat), study_name=study_name, direction="maximize", load_if_exists=True,
        sampler=space.make_sampler(), pruner=space.make_pruner(),
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study.set_metric_names(["val_dice"])  # optuna-dashboard labels the objective
    out = study_dir(study_name)
    with _study_parent(base, study, storage) as parent:
        objective = Objective(base, space, trials, out, parent.run_id if parent is not None else None, seeds_per_trial)
        remaining = trials - len(study.get_trials(deepcopy=False, states=FINISHED))
        if remaining > 0:
            study.optimize(objective, n_trials=remaining, timeout=timeout, n_jobs=jobs, catch=(Surplus,),
                           callbacks=[optuna.study.MaxTrialsCallback(trials, states=FINISHED)])
        if study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
            best = write_best(base, space, study, out)
            if parent is not None:
                finished = study.get_trials(deepcopy=False, states=FINISHED)
                parent.log_metrics({"best_val_dice": study.best_value, "trials_finished": len(finished),
                                    "trials_pruned": sum(t.state == TrialState.PRUNED for t in finished)})
                parent.log_artifact(best)
    return study


def write_best(base: ExperimentConfig, space: SearchSpace, study: optuna.Study, out: Path) -> Path:
    """out/best.yaml: the base config with the best trial's values, ready to train."""
    tree = base.to_dict()
    for key, value in study.best_trial.params.items():
        tree = set_key(tree, key, decode(space.params[key], value))
    best = parse_config(tree, "best trial").to_dict()
    best["train"]["out_dir"] = None
    out.mkdir(parents=True, exist_ok=True)
    (out / "best.yaml").write_text(yaml.safe_dump(best, sort_keys=False))
    return out / "best.yaml"


def confirm_best(base: ExperimentConfig, study: optuna.Study, max_seeds: int = 10,
                 progress: Callable[[str], None] | None = None):
    """Train the study's best config against its starting config with the stopping rule
    (`compare.run_sequential`, seeds 0, 1, ...): a best trial picked on one seed's noise is
    then reported as undecided or equivalent, not as a gain. Returns the `Decision`."""
    from hybridunet.compare import Rule, run_sequential

    best = parse_config(yaml.safe_load((study_dir(study.study_name) / "best.yaml").read_text()), "best trial")
    configs = [(f"{study.study_name}-start", base), (f"{study.study_name}-best", best)]
    out_dir = study_dir(study.study_name) / "confirm"
    _, (decision,) = run_sequential(configs, Rule(max_seeds=max_seeds, metric="dice"), out_dir=out_dir,
                                    tracking=base.tracking.enabled, progress=progress)
    return decision


def _study_parent(base: ExperimentConfig, study: optuna.Study, storage: str):
    """The study's parent MLflow run: one for every worker of the study, resumed ones included."""
    if not base.tracking.enabled:
        return contextlib.nullcontext(None)
    import hashlib

    from sqlalchemy.engine import make_url

    from hybridunet.tracking import parent_run, shared_parent_id

    where = make_url(storage).render_as_string(hide_password=True)
    key = f"optuna:{study.study_name}:{hashlib.sha256(where.encode()).hexdigest()[:12]}"
    parent_id = shared_parent_id(base.tracking, key, f"study-{study.study_name}",
                                 {"optuna.study": study.study_name, "study": "parent", "optuna.storage": where})
    study.set_user_attr("mlflow_parent_run_id", parent_id)
    return parent_run(base.tracking, f"study-{study.study_name}", run_id=parent_id)


def study_report(study: optuna.Study) -> dict[str, Any]:
    finished = study.get_trials(deepcopy=False, states=FINISHED)
    complete = [t for t in finished if t.state == TrialState.COMPLETE]
    running = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    return {
        "study": study.study_name,
        "trials_finished": len(finished),
        "trials_running": len(running),  # by other workers, or left by one that died (failed after its grace period)
        "trials_pruned": len(finished) - len(complete),
        "best_value": study.best_value if complete else None,
        "best_params": study.best_trial.params if complete else None,
        "best_trial": study.best_trial.number if complete else None,
    }
