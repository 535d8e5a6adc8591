"""`tune`: run or resume a study until it holds its trials, and write the best config."""

from __future__ import annotations

import contextlib
import re
import statistics
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import optuna
import yaml
from optuna.trial import TrialState

from hybridunet.config import ExperimentConfig, parse_config
from hybridunet.errors import UsageError
from hybridunet.tuning.objective import FINISHED, OBJECTIVES, Objective, Surplus
from hybridunet.tuning.space import SearchSpace, decode, set_key
from hybridunet.tuning.storage import open_storage

if TYPE_CHECKING:
    from hybridunet.comparison import Event, PairOutcome

STUDY_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9 ._+=@-]{0,127}")


def check_study_name(study_name: str) -> str:
    """`study_name`, if it can name one folder under outputs/ (no slash, no leading dot) and
    be matched by MLflow's run search (no quotes: it does not unescape them); else a UsageError."""
    if not STUDY_NAME.fullmatch(study_name):
        raise UsageError(f"--study {study_name!r}: expected up to 128 letters, digits, spaces and . _ + = @ -, "
                         "starting with a letter or digit (the name is a folder under outputs/ and an MLflow tag)")
    return study_name


def study_dir(study_name: str) -> Path:
    return Path("outputs") / f"tune-{check_study_name(study_name)}"


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
    objectives: tuple[str, ...] = ("val_dice",),
) -> optuna.Study:
    """Run (or resume) an Optuna study until it holds `trials` finished trials; write best.yaml.

    Workers sharing `storage` together finish exactly `trials` trials (see `Objective.claim`).
    A worker that dies leaves its trial RUNNING; `heartbeat` seconds apart every running
    trial says it is alive, and after three silent intervals the next worker marks it
    FAILED and runs its parameters again. With `seeds_per_trial` K, a trial scores the mean
    of K seeds (see `Objective`); the Wilcoxon pruner needs K of 4 or more to ever prune.

    With several `objectives` (val_dice and params or latency, see `OBJECTIVES`) the study is
    multi-objective (Optuna's TPE handles several), unpruned (Optuna cannot prune then),
    and it writes one ready config per trial of its Pareto front (out/pareto/) beside best.yaml
    (the front's best val_dice). Every study with `MIN_TRIALS_FOR_IMPORTANCE` complete trials
    or more ends with parameter importances per objective (fANOVA, `importances`).

    Args:
        base: The config every trial starts from.
        space: From `load_search_space`.
        trials: Finished trials the study should hold in all (a resumed study counts its old ones).
        storage: An Optuna storage URL (`sqlite:///optuna.db`, `postgresql+psycopg://...`).
        study_name: The study's name in the storage.
        jobs: Trials run at once in this process.
        timeout: Stop starting trials after this many seconds.
        heartbeat: Seconds between a running trial's heartbeats.
        seeds_per_trial: Seeds averaged per trial.
        objectives: `("val_dice",)`, or with `"params"` and/or `"latency"`.

    Returns:
        The Optuna study.

    Example:
        ```python
        from hybridunet.config import load_config
        from hybridunet.tuning import load_search_space, tune

        base = load_config("hybrid_unet", ["train.epochs=5"])
        study = tune(base, load_search_space("experiments/search/hybrid_parts.yaml", base), trials=20,
                     study_name="parts")
        ```
    """
    check_study_name(study_name)
    if seeds_per_trial < 1:
        raise UsageError(f"--seeds-per-trial {seeds_per_trial}: expected 1 or more")
    unknown = [o for o in objectives if o not in OBJECTIVES]
    if unknown or not objectives or objectives[0] != "val_dice" or len(set(objectives)) < len(objectives):
        raise UsageError(f"--objectives {' '.join(objectives)}: expected val_dice first, then any of "
                         f"{', '.join(o for o in OBJECTIVES if o != 'val_dice')} (each once)")
    several = len(objectives) > 1
    if several and space.pruner.name != "none":
        print(f"hybridunet tune: Optuna cannot prune a study with several objectives: the {space.pruner.name} "
              "pruner is left out and every trial runs to its end", file=sys.stderr)
    if space.pruner.name == "wilcoxon" and seeds_per_trial < 4 and not several:
        print(f"hybridunet tune: the wilcoxon pruner compares a trial with the best one seed by seed and needs "
              f"4 or more seeds per trial to ever prune; with {seeds_per_trial} it never prunes", file=sys.stderr)
    directions = [OBJECTIVES[o] for o in objectives]
    opened = open_storage(storage, heartbeat)
    study = optuna.create_study(storage=opened, study_name=study_name, directions=directions, load_if_exists=True,
                                sampler=space.make_sampler(),
                                pruner=optuna.pruners.NopPruner() if several else space.make_pruner())
    if [d.name.lower() for d in study.directions] != directions:
        raise UsageError(f"study {study_name!r} in {storage} optimises {len(study.directions)} objective(s); "
                         f"--objectives {' '.join(objectives)} asks for {len(directions)}: use another --study")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study.set_metric_names(list(objectives))  # optuna-dashboard labels the objectives
    out = study_dir(study_name)
    with _study_parent(base, study, storage) as parent:
        objective = Objective(base, space, trials, out, parent, seeds_per_trial, objectives)
        remaining = trials - len(study.get_trials(deepcopy=False, states=FINISHED))
        if remaining > 0:
            study.optimize(objective, n_trials=remaining, timeout=timeout, n_jobs=jobs, catch=(Surplus,),
                           callbacks=[optuna.study.MaxTrialsCallback(trials, states=FINISHED)])
        if study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
            best = write_best(base, space, study, out)
            front = write_pareto(base, space, study, out) if several else []
            scores = importances(study)
            study.set_user_attr("importances", scores)  # the report reads them back; the dashboard shows them
            if parent is not None and _trials_in_mlflow(base, out):
                log_study_summary(parent, base, study, best, front, scores)
    return study


def _trials_in_mlflow(base: ExperimentConfig, folder: Path) -> bool:
    """Send what the trials kept in their folders (a server that was away), waiting for it once;
    whether all of it landed: the study's summary reads the trials' runs back."""
    from hybridunet.tracking.sync import drain
    from hybridunet.tracking.worker import say

    kept = drain(folder, base.tracking.flush_timeout)
    if kept:
        say(f"MLflow at {base.tracking.uri or 'the tracking URI'} did not take {kept} calls of the trials: they are "
            f"kept below {folder} (send them with  hybridunet sync {folder}); the study's summary (curves, best "
            "model) is not logged")
    return kept == 0


def log_study_summary(parent: Any, base: ExperimentConfig, study: optuna.Study, best: Path, front: list[Path],
                      scores: dict[str, Any]) -> None:
    """The study on its parent run: the best trial's model, the curves, the best value, the
    importances, the ready config (and the Pareto front); skipped, with one line, if the
    server goes away while it reads the trials back."""
    from hybridunet.tracking.outage import is_outage
    from hybridunet.tracking.worker import say

    try:
        log_best_model(base, study, parent)
        log_study_curves(parent, base, study)
    except Exception as error:  # noqa: BLE001
        if not is_outage(error):
            raise
        say(f"the study's curves and best model are not logged: the tracking server went away ({error})")
    finished = study.get_trials(deepcopy=False, states=FINISHED)
    parent.log_metrics({"best_val_dice": best_trial(study).values[0], "trials_finished": len(finished),
                        "trials_pruned": sum(t.state == TrialState.PRUNED for t in finished),
                        **{f"importance/{o}/{k}": v for o, values in scores.items() for k, v in values.items()}})
    parent.log_artifact(best)
    if len(study.directions) > 1:
        parent.log_text(pareto_table(study), "pareto/front.txt")
        parent.log_json(pareto_front(study), "pareto/front.json")
        for path in front:
            parent.log_artifact(path, "pareto")


def log_best_model(base: ExperimentConfig, study: optuna.Study, parent: Any) -> None:
    """The best trial's run (its best seed's, by validation Dice) logs its model as
    base.tracking.log_model says; no other trial logs one (`Objective.trial_config`)."""
    if base.tracking.log_model == "none":
        return
    from hybridunet.tracking import trial_runs
    from hybridunet.tracking.models import best_candidate

    best = best_trial(study)
    number = best.user_attrs.get("duplicate_of", best.number)  # a repeated combination was not trained again
    found = best_candidate((r["run_id"], r["best_val_dice"], r["checkpoint"])
                           for r in trial_runs(base.tracking, study.study_name, number) if r["best_val_dice"] is not None)
    if found is not None and found[0] is not None:
        parent.log_model(found[0], found[1], base.tracking.log_model, base.tracking.registered_model)


def log_study_curves(parent: Any, base: ExperimentConfig, study: optuna.Study) -> None:
    """The study at a glance on its parent run: each finished trial's validation Dice per
    epoch (``curve/trial-NNNN``, the mean over its seeds, ``spread/trial-NNNN`` their std;
    pruned trials up to where they stopped), and the optimisation history by trial number
    (``trial/val_dice``, ``trial/best_val_dice``). Each point is stamped with its trial's
    end, so a resumed study or another worker logs nothing twice."""
    from hybridunet.tracking import trial_runs

    best = None
    for trial in sorted(study.get_trials(deepcopy=False, states=FINISHED), key=lambda t: t.number):
        stamp = int(trial.datetime_complete.timestamp() * 1000) if trial.datetime_complete else None
        runs = trial_runs(base.tracking, study.study_name, trial.number)
        curves = [parent.history(r["run_id"], "val_dice") for r in runs]
        key = f"trial-{trial.number:04d}"
        for epoch in range(max((len(c) for c in curves), default=0)):
            values = [c[epoch] for c in curves if len(c) > epoch]
            parent.log_metrics({f"curve/{key}": statistics.fmean(values),
                                f"spread/{key}": statistics.stdev(values) if len(values) > 1 else 0.0},
                               step=epoch, timestamp=stamp)
        if trial.state == TrialState.COMPLETE:
            value = trial.values[0]
            best = value if best is None else max(best, value)
            parent.log_metrics({"trial/val_dice": value, "trial/best_val_dice": best}, step=trial.number,
                               timestamp=stamp)


MIN_TRIALS_FOR_IMPORTANCE = 5  # complete trials before importances are computed


def importance_evaluator() -> tuple[str, Any]:
    """fANOVA (a random forest's variance decomposition; scikit-learn, which MLflow installs),
    else PED-ANOVA (Optuna alone). With the few trials a study here holds, PED-ANOVA's top
    10% is one or two trials: on an 8-trial study it gave the learning rate 0.60 of the
    importance for the parameter count, which only the widths and the skip change; fANOVA
    gave the widths 0.83."""
    from optuna.importance import FanovaImportanceEvaluator, PedAnovaImportanceEvaluator

    try:
        import sklearn  # noqa: F401
    except ImportError:
        return "PED-ANOVA", PedAnovaImportanceEvaluator()
    return "fANOVA", FanovaImportanceEvaluator(seed=0)


def importances(study: optuna.Study) -> dict[str, dict[str, float]]:
    """Each objective's parameter importances (see `importance_evaluator`), once the study holds
    `MIN_TRIALS_FOR_IMPORTANCE` complete trials; else empty."""
    from optuna.importance import get_param_importances

    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if len(complete) < MIN_TRIALS_FOR_IMPORTANCE or not complete[0].params:
        return {}
    name_of, evaluator = importance_evaluator()
    out = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        # PED-ANOVA explains low target values (and warns so): a maximised objective is negated
        warnings.filterwarnings("ignore", message="PedAnovaImportanceEvaluator computes", category=UserWarning)
        for i, (name, direction) in enumerate(zip(study.metric_names or ["val_dice"], study.directions)):
            sign = -1.0 if direction == optuna.study.StudyDirection.MAXIMIZE and name_of == "PED-ANOVA" else 1.0
            out[name] = {k: float(v) for k, v in get_param_importances(
                study, evaluator=evaluator, target=lambda t, i=i, sign=sign: sign * t.values[i], normalize=True).items()}
    return out


def best_trial(study: optuna.Study) -> optuna.trial.FrozenTrial:
    """The best trial by val_dice: the study's best, or its Pareto front's highest val_dice."""
    if len(study.directions) == 1:
        return study.best_trial
    return max(study.best_trials, key=lambda t: t.values[0])


def pareto_front(study: optuna.Study) -> list[dict[str, Any]]:
    """The trials no other trial beats in every objective, by val_dice (best first)."""
    names = study.metric_names or [f"objective_{i}" for i in range(len(study.directions))]
    return [{"trial": t.number, "objectives": dict(zip(names, t.values)), "params": t.params}
            for t in sorted(study.best_trials, key=lambda t: -t.values[0])]


def pareto_table(study: optuna.Study) -> str:
    front = pareto_front(study)
    names = list(front[0]["objectives"]) if front else []
    lines = [f"{'trial':>5} " + " ".join(f"{n:>12}" for n in names) + "  trial parameters"]
    for row in front:
        lines.append(f"{row['trial']:>5} " + " ".join(f"{row['objectives'][n]:>12.4f}" for n in names)
                     + f"  {row['params']}")
    return "\n".join(lines)


def write_pareto(base: ExperimentConfig, space: SearchSpace, study: optuna.Study, out: Path) -> list[Path]:
    """out/pareto/trial-NNNN.yaml: a ready config for every trial of the Pareto front."""
    folder = out / "pareto"
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("trial-*.yaml"):  # the front of an earlier run of this study: ours to replace
        old.unlink()
    return [_write_config(base, space, t, folder / f"trial-{t.number:04d}.yaml") for t in study.best_trials]


def write_best(base: ExperimentConfig, space: SearchSpace, study: optuna.Study, out: Path) -> Path:
    """out/best.yaml: the base config with the best trial's values (by val_dice), ready to train."""
    out.mkdir(parents=True, exist_ok=True)
    return _write_config(base, space, best_trial(study), out / "best.yaml")


def _write_config(base: ExperimentConfig, space: SearchSpace, trial: optuna.trial.FrozenTrial, path: Path) -> Path:
    tree = base.to_dict()
    for key, value in trial.params.items():
        tree = set_key(tree, key, decode(space.params[key], value))
    config = parse_config(tree, f"trial {trial.number}").to_dict()
    config["train"]["out_dir"] = None
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def confirm_best(base: ExperimentConfig, study: optuna.Study, max_seeds: int = 10,
                 on_event: Callable[[Event], None] | None = None) -> PairOutcome:
    """Train the study's best config against its starting config with the stopping rule
    (`comparison.run_sequential`, seeds 0, 1, ...): a best trial picked on one seed's noise is
    then reported as undecided or equivalent, not as a gain. Returns the pair's outcome."""
    from hybridunet.comparison import Rule, run_sequential

    best = parse_config(yaml.safe_load((study_dir(study.study_name) / "best.yaml").read_text()), "best trial")
    configs = [(f"{study.study_name}-start", base), (f"{study.study_name}-best", best)]
    out_dir = study_dir(study.study_name) / "confirm"
    _, (outcome,) = run_sequential(configs, Rule(max_seeds=max_seeds, metric="dice"), out_dir=out_dir,
                                   tracking=base.tracking.enabled, on_event=on_event)
    return outcome


def _study_parent(base: ExperimentConfig, study: optuna.Study, storage: str):
    """The study's parent MLflow run: one for every worker of the study, resumed ones included."""
    if not base.tracking.enabled:
        return contextlib.nullcontext(None)
    import hashlib

    from sqlalchemy.engine import make_url

    from hybridunet.tracking import shared_parent_id
    from hybridunet.tracking.parent import PARENT_KEY

    where = make_url(storage).render_as_string(hide_password=True)
    key = f"optuna:{study.study_name}:{hashlib.sha256(where.encode()).hexdigest()[:12]}"
    tags = {"optuna.study": study.study_name, "study": "parent", "optuna.storage": where}
    try:
        parent_id: str | None = shared_parent_id(base.tracking, key, f"study-{study.study_name}", tags)
    except Exception as error:  # noqa: BLE001
        from hybridunet.tracking.outage import is_outage
        from hybridunet.tracking.worker import say

        if not is_outage(error):
            raise
        say(f"MLflow does not answer ({type(error).__name__}): this worker's study run is created when it does; "
            "the study goes on")
        parent_id = None  # created by the worker, tagged as shared_parent_id would (another worker's may differ)
        tags[PARENT_KEY] = key
    if parent_id is not None:
        study.set_user_attr("mlflow_parent_run_id", parent_id)
    return _worker_parent(base, study.study_name, parent_id, tags)


@contextlib.contextmanager
def _worker_parent(base: ExperimentConfig, study_name: str, parent_id: str | None, tags: dict[str, str]):
    """The study's parent run as this worker logs to it: its outbox in a folder of its own
    (one study folder, many workers), removed at the end unless calls are left in it."""
    import os
    import shutil
    import socket

    from hybridunet.tracking import parent_run
    from hybridunet.tracking.outbox import outboxes

    folder = study_dir(study_name)
    mine = folder / "workers" / f"{socket.gethostname()}-{os.getpid()}"
    try:
        with parent_run(base.tracking, f"study-{study_name}", tags, run_id=parent_id, folder=mine,
                        children=folder, shared=True) as parent:
            yield parent
    finally:
        if not any(o.pending_count() for o in outboxes(folder)):  # kept calls may name this folder's run as parent
            shutil.rmtree(mine, ignore_errors=True)
            with contextlib.suppress(OSError):
                (folder / "workers").rmdir()  # another worker's may still be there


def study_report(study: optuna.Study) -> dict[str, Any]:
    finished = study.get_trials(deepcopy=False, states=FINISHED)
    complete = [t for t in finished if t.state == TrialState.COMPLETE]
    running = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    best = best_trial(study) if complete else None
    report = {
        "study": study.study_name,
        "trials_finished": len(finished),
        "trials_running": len(running),  # by other workers, or left by one that died (failed after its grace period)
        "trials_pruned": len(finished) - len(complete),
        "best_value": best.values[0] if best else None,  # val_dice
        "best_params": best.params if best else None,
        "best_trial": best.number if best else None,
        "importances": study.user_attrs.get("importances") or importances(study),
    }
    if len(study.directions) > 1:
        report["pareto"] = pareto_front(study) if complete else []
    return report
