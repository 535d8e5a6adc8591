"""Optuna tuning: a YAML search space over config keys, TPE sampling, pruning on
validation Dice per epoch, one nested MLflow run per trial, resumable RDB studies.

Search space file::

    sampler: {seed: 0}                         # TPE
    pruner: {name: median, n_startup_trials: 2, n_warmup_steps: 1}   # or hyperband, none
    params:
      optim.lr: {type: float, low: 1.0e-4, high: 1.0e-2, log: true}
      train.batch_size: {type: int, low: 4, high: 16, step: 4}
      model.bottleneck: {type: categorical, choices: [identity, aspp, transformer]}
      model.widths: {type: categorical, choices: [[16, 32, 64], [32, 64, 128]]}

Running the same command again resumes the study: ``trials`` counts finished trials
(complete or pruned) in total. Several processes or machines may share one storage.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import time
import warnings
from pathlib import Path
from typing import Any, Literal, Sequence

import optuna
import yaml
from optuna.trial import TrialState
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from hybridunet.config import ExperimentConfig, apply_overrides, invalid, parse_config, read_yaml
from hybridunet.engine import Callback, Run, fit
from hybridunet.errors import ConfigError, UsageError

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)


class ParamSpec(BaseModel):
    """One searched config key."""

    model_config = ConfigDict(extra="forbid")
    type: Literal["float", "int", "categorical"]
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    choices: list[Any] | None = None

    @model_validator(mode="after")
    def _check(self) -> "ParamSpec":
        if self.type == "categorical":
            if not self.choices:
                raise ValueError("a categorical parameter needs a non-empty 'choices' list")
        elif self.low is None or self.high is None or self.low > self.high:
            raise ValueError(f"a {self.type} parameter needs 'low' <= 'high' (got low={self.low}, high={self.high})")
        elif self.log and self.low <= 0:
            raise ValueError(f"a log-scale parameter needs low > 0 (got {self.low})")
        return self

    def suggest(self, trial: optuna.Trial, key: str) -> Any:
        if self.type == "float":
            return trial.suggest_float(key, self.low, self.high, log=self.log, step=self.step)
        if self.type == "int":
            return trial.suggest_int(key, int(self.low), int(self.high), log=self.log, step=int(self.step or 1))
        # Optuna stores only scalar choices; lists (e.g. widths) travel as their JSON text.
        encoded = [c if isinstance(c, (str, int, float, bool)) or c is None else json.dumps(c) for c in self.choices]
        picked = trial.suggest_categorical(key, encoded)
        return self.choices[encoded.index(picked)]


class SamplerSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    seed: int | None = 0
    n_startup_trials: int = Field(5, ge=0)


class PrunerSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Literal["median", "hyperband", "none"] = "median"
    n_startup_trials: int = Field(2, ge=0)
    n_warmup_steps: int = Field(1, ge=0)


class SearchSpace(BaseModel):
    model_config = ConfigDict(extra="forbid")
    sampler: SamplerSpec = SamplerSpec()
    pruner: PrunerSpec = PrunerSpec()
    params: dict[str, ParamSpec]

    def make_sampler(self) -> optuna.samplers.BaseSampler:
        return optuna.samplers.TPESampler(seed=self.sampler.seed, n_startup_trials=self.sampler.n_startup_trials)

    def make_pruner(self) -> optuna.pruners.BasePruner:
        p = self.pruner
        if p.name == "median":
            return optuna.pruners.MedianPruner(n_startup_trials=p.n_startup_trials, n_warmup_steps=p.n_warmup_steps)
        if p.name == "hyperband":
            return optuna.pruners.HyperbandPruner(min_resource=1)
        return optuna.pruners.NopPruner()


def load_search_space(path: str | Path, base: ExperimentConfig) -> SearchSpace:
    """Read and check a search space: every key must be a config key that accepts each
    bound or choice (checked by validating a config with it)."""
    path = Path(path)
    raw = read_yaml(path, "search space")
    try:
        space = SearchSpace.model_validate(raw)
    except ValidationError as err:
        raise invalid(f"search space {path}", err) from None
    tree = base.to_dict()
    for key, spec in space.params.items():
        samples = spec.choices if spec.type == "categorical" else [spec.low, spec.high]
        for value in samples:
            if spec.type == "int":
                value = int(value)
            try:
                parse_config(_set(tree, key, value), "the config")
            except ConfigError as err:
                raise ConfigError(f"search space {path}: params.{key} = {value!r} does not fit the config "
                                  f"({str(err).removeprefix('invalid the config: ')})") from None
    return space


def _set(tree: dict[str, Any], key: str, value: Any) -> dict[str, Any]:
    return apply_overrides(tree, [f"{key}={json.dumps(value)}"])


class PruneOnDice(Callback):
    """Reports validation Dice after every epoch; raises TrialPruned when the pruner says so."""

    def __init__(self, trial: optuna.Trial) -> None:
        self.trial = trial

    def on_epoch_end(self, run: Run, epoch: int, metrics: dict[str, Any]) -> None:
        self.trial.report(metrics["val_dice"], epoch)
        last = epoch + 1 >= run.config.train.epochs  # a finished trial completes: nothing left to save
        if not last and self.trial.should_prune():
            raise optuna.TrialPruned(f"pruned after epoch {epoch + 1} at val_dice={metrics['val_dice']:.4f}")


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
) -> optuna.Study:
    """Run (or resume) a study until it holds `trials` finished trials; write best.yaml.

    Workers sharing `storage` together finish exactly `trials` trials: one that starts a
    trial after the others have claimed them all marks it FAIL (user attribute `surplus`)
    and stops. A worker that dies leaves its trial RUNNING; `heartbeat` seconds apart
    every running trial says it is alive, and after three silent intervals the next
    worker marks it FAILED and runs its parameters again.
    """
    rdb = open_storage(storage, heartbeat)
    study = optuna.create_study(
        storage=rdb, study_name=study_name, direction="maximize", load_if_exists=True,
        sampler=space.make_sampler(), pruner=space.make_pruner(),
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study.set_metric_names(["val_dice"])  # optuna-dashboard labels the objective
    out = study_dir(study_name)
    base_tree = base.to_dict()

    def objective(trial: optuna.Trial, parent_id: str | None) -> float:
        claimed = trial.study.get_trials(deepcopy=False, states=(*FINISHED, TrialState.RUNNING))
        if sum(t.number < trial.number for t in claimed) >= trials:
            trial.set_user_attr("surplus", True)
            trial.study.stop()
            raise _Surplus(f"trial {trial.number}: the study's {trials} trials are claimed by other workers")
        tree = base_tree
        for key, spec in space.params.items():
            tree = _set(tree, key, spec.suggest(trial, key))
        # TPE often proposes a finished combination again in small categorical spaces:
        # training it again would give the same result, so reuse it.
        for done in trial.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
            if done.params == trial.params:
                trial.set_user_attr("duplicate_of", done.number)
                return done.value
        config = parse_config(tree, f"trial {trial.number}")
        config.train.out_dir = str(out / f"trial-{trial.number:04d}")
        config.train.overwrite = True  # a retried trial replaces its own folder
        config.tracking.run_name = f"{study_name}-trial-{trial.number}"
        callbacks: list[Callback] = [PruneOnDice(trial)]
        if parent_id is not None:
            callbacks.append(trial_run(config, trial, parent_id))
        return fit(config, callbacks=callbacks)["dice"]

    with _study_parent(base, study, storage) as parent:
        parent_id = parent.run_id if parent is not None else None
        remaining = trials - len(study.get_trials(deepcopy=False, states=FINISHED))
        if remaining > 0:
            study.optimize(
                lambda trial: objective(trial, parent_id), n_trials=remaining, timeout=timeout, n_jobs=jobs,
                catch=(_Surplus,), callbacks=[optuna.study.MaxTrialsCallback(trials, states=FINISHED)],
            )
        complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        if complete:
            best_tree = base_tree
            for key, value in study.best_trial.params.items():
                best_tree = _set(best_tree, key, _decode(space.params[key], value))
            best = parse_config(best_tree, "best trial").to_dict()
            best["train"]["out_dir"] = None
            out.mkdir(parents=True, exist_ok=True)
            (out / "best.yaml").write_text(yaml.safe_dump(best, sort_keys=False))
            if parent is not None:
                finished = study.get_trials(deepcopy=False, states=FINISHED)
                parent.log_metrics({"best_val_dice": study.best_value, "trials_finished": len(finished),
                                    "trials_pruned": sum(t.state == TrialState.PRUNED for t in finished)})
                parent.log_artifact(out / "best.yaml")
    return study


class _Surplus(Exception):
    """A trial started after the study's trials were all claimed."""


def open_storage(url: str, heartbeat: float = 30) -> optuna.storages.RDBStorage:
    """An Optuna RDB storage with heartbeats; a database that cannot be reached fails within
    seconds, in one line naming its host and port."""
    import sqlalchemy.exc
    from sqlalchemy.engine import make_url

    try:
        parsed = make_url(url)
    except sqlalchemy.exc.ArgumentError:
        raise ConfigError(f"--storage {url!r} is not a database URL (e.g. sqlite:///optuna.db, "
                          "postgresql://user:password@host:5432/optuna)") from None
    if parsed.drivername == "postgresql" and importlib.util.find_spec("psycopg2") is None:
        parsed = parsed.set(drivername="postgresql+psycopg")  # psycopg 3, the [postgres] extra
    backend = parsed.get_backend_name()
    connect_args = {"timeout": 60} if backend == "sqlite" else {"connect_timeout": 5}
    with warnings.catch_warnings():  # heartbeats are "experimental" in Optuna 5; they are what resumes need
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        try:
            for attempt in range(3):
                try:
                    return optuna.storages.RDBStorage(
                        parsed.render_as_string(hide_password=False), engine_kwargs={"connect_args": connect_args},
                        heartbeat_interval=heartbeat, grace_period=3 * heartbeat,
                        heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=1),
                    )
                except (sqlalchemy.exc.IntegrityError, sqlalchemy.exc.OperationalError) as err:
                    # Workers started together on a new storage: one of them created the schema
                    # first (a duplicate row, or on sqlite "table ... already exists"); use it.
                    racing = isinstance(err, sqlalchemy.exc.IntegrityError) or "already exists" in str(err.orig)
                    if not racing or attempt == 2:
                        raise
                    time.sleep(1 + attempt)
        except ModuleNotFoundError as err:
            raise UsageError(f"--storage {backend}: its driver {err.name!r} is not installed "
                             f"(for PostgreSQL: pip install 'hybridunet[postgres]')") from None
        except sqlalchemy.exc.OperationalError as err:
            where = f"{parsed.host}:{parsed.port or 'default port'}" if parsed.host else str(parsed.database)
            reason = str(err.orig).strip().splitlines()[0] if err.orig else str(err)
            raise UsageError(f"cannot reach the Optuna storage {backend} at {where}: {reason}") from None


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


def _decode(spec: ParamSpec, value: Any) -> Any:
    if spec.type != "categorical":
        return value
    for choice in spec.choices:
        if choice == value or (not isinstance(choice, (str, int, float, bool)) and json.dumps(choice) == value):
            return choice
    return value


def trial_run(config: ExperimentConfig, trial: optuna.Trial, parent_id: str) -> Callback:
    """A trial's nested MLflow run: tagged with the study and trial, its parameters logged,
    and a pruned trial ends FINISHED with ``optuna.state = PRUNED``."""
    from hybridunet.tracking import MLflowCallback

    class TrialRun(MLflowCallback):
        def on_fit_start(self, run: Run) -> None:
            super().on_fit_start(run)
            self.set_tags({"optuna.study": trial.study.study_name, "optuna.trial": str(trial.number)})
            self.log_params({f"trial.{k}": v for k, v in trial.params.items()})

        def status_for(self, error: BaseException) -> tuple[str, dict[str, str]]:
            if isinstance(error, optuna.TrialPruned):
                return "FINISHED", {"optuna.state": "PRUNED"}
            return super().status_for(error)

        def on_fit_end(self, run: Run, result: dict[str, Any]) -> None:
            self.set_tags({"optuna.state": "COMPLETE"})
            super().on_fit_end(run, result)

    return TrialRun(config.tracking, parent_run_id=parent_id)


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
