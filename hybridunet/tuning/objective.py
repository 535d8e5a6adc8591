"""One trial of a study: its config, its training with pruning on validation Dice, its MLflow run."""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import TrialState

from hybridunet.config import ExperimentConfig, parse_config
from hybridunet.engine import Callback, FitResult, Run, fit
from hybridunet.tuning.space import SearchSpace, set_key

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)


class PruneOnDice(Callback):
    """Reports validation Dice after every epoch; raises TrialPruned when the pruner says so."""

    def __init__(self, trial: optuna.Trial) -> None:
        self.trial = trial

    def on_epoch_end(self, run: Run, epoch: int, metrics: dict[str, Any]) -> None:
        self.trial.report(metrics["val_dice"], epoch)
        last = epoch + 1 >= run.config.train.epochs  # a finished trial completes: nothing left to save
        if not last and self.trial.should_prune():
            raise optuna.TrialPruned(f"pruned after epoch {epoch + 1} at val_dice={metrics['val_dice']:.4f}")


class Surplus(Exception):
    """A trial started after the study's trials were all claimed."""


# What a study may optimise: the trial's validation Dice and what its model costs (fit's `cost`).
OBJECTIVES = {"val_dice": "maximize", "params": "minimize", "latency": "minimize"}


def objective_values(results: Sequence[Mapping[str, Any]], objectives: tuple[str, ...]) -> tuple[float, ...]:
    """The objectives of one trial from its trainings' results (one per seed): val_dice is their
    mean, params the model's millions of parameters, latency milliseconds per image in eval mode
    (the median seed's inference images/s)."""
    cost = results[-1].get("cost") or {}
    speeds = sorted(r["cost"]["inference_images_per_s"] for r in results if r.get("cost"))
    values = {"val_dice": sum(r["dice"] for r in results) / len(results), "params": cost.get("params_m"),
              "latency": 1000 / speeds[len(speeds) // 2] if speeds else None}
    return tuple(float(values[name]) for name in objectives)


class Objective:
    """`objective(trial)` of a study over `space` on top of `base`: the best validation Dice of
    the trial's training, pruned per epoch; with `parent` (the study's `ParentRun`), a nested
    MLflow run per trial.

    With `seeds_per_trial` K > 1 a trial trains seeds base.seed .. base.seed + K - 1 (the same
    for every trial, so trials are paired by seed) and scores their mean; it reports each
    seed's Dice as step k, so the median and Wilcoxon pruners compare trials seed by seed,
    and in MLflow each seed is a run nested under its trial's run."""

    def __init__(self, base: ExperimentConfig, space: SearchSpace, trials: int, out: Path,
                 parent: Any = None, seeds_per_trial: int = 1,
                 objectives: tuple[str, ...] = ("val_dice",)) -> None:
        self.base_tree, self.space, self.trials, self.out, self.parent = base.to_dict(), space, trials, out, parent
        self.seeds_per_trial, self.objectives = seeds_per_trial, objectives
        self.prunes = len(objectives) == 1  # Optuna cannot prune with several objectives

    def __call__(self, trial: optuna.Trial) -> float | tuple[float, ...]:
        self.claim(trial)
        tree = self.sample(trial)
        twin = self.finished_twin(trial)
        if twin is not None:
            return twin if self.prunes else tuple(twin)
        config = self.trial_config(tree, trial)
        if self.seeds_per_trial == 1:
            results = [fit(config, callbacks=self.callbacks(config, trial, per_epoch=self.prunes))]
        else:
            results = self.over_seeds(config, trial)
        values = objective_values(results, self.objectives)
        return values[0] if self.prunes else values

    def over_seeds(self, config: ExperimentConfig, trial: optuna.Trial) -> list[FitResult]:
        results: list[FitResult] = []
        values: list[float] = []
        pruned = None
        with self.trial_parent(config, trial) as parent:
            for k in range(self.seeds_per_trial):
                run = config.model_copy(deep=True)
                run.seed = config.seed + k
                run.train.out_dir = str(Path(config.train.out_dir) / f"seed-{run.seed}")
                run.tracking.run_name = f"{config.tracking.run_name}-seed-{run.seed}"
                callbacks = self.callbacks(run, trial, parent, per_epoch=False) if parent else []
                results.append(fit(run, callbacks=callbacks))
                values.append(results[-1]["dice"])
                if not self.prunes:
                    continue
                trial.report(values[-1], k)
                if k + 1 < self.seeds_per_trial and trial.should_prune():
                    pruned = optuna.TrialPruned(f"pruned after seed {run.seed} at val_dice={values[-1]:.4f}")
                    break
            if parent is not None:  # the trial's run ends FINISHED, pruned or not, as single-seed trials do
                parent.log_metrics({"mean_val_dice": sum(values) / len(values), "seeds": len(values)})
                parent.set_tags({"optuna.state": "PRUNED" if pruned else "COMPLETE"})
        if pruned is not None:
            raise pruned
        return results

    def trial_parent(self, config: ExperimentConfig, trial: optuna.Trial):
        """The trial's own MLflow run, holding its seeds' runs (none when tracking is off)."""
        if self.parent is None:
            return contextlib.nullcontext(None)
        from hybridunet.tracking import parent_run

        waits_not = config.tracking.model_copy(update={"flush_timeout": 0})  # the study waits for a server once, at its end
        return parent_run(waits_not, config.tracking.run_name, {
            "optuna.study": trial.study.study_name, "optuna.trial": str(trial.number), "trial": "parent"},
            folder=config.train.out_dir, parent=self.parent)

    def claim(self, trial: optuna.Trial) -> None:
        """Workers sharing a storage together finish exactly `trials`: one that starts a trial
        after the others have claimed them all marks it (user attribute `surplus`) and stops."""
        claimed = trial.study.get_trials(deepcopy=False, states=(*FINISHED, TrialState.RUNNING))
        if sum(t.number < trial.number for t in claimed) >= self.trials:
            trial.set_user_attr("surplus", True)
            trial.study.stop()
            raise Surplus(f"trial {trial.number}: the study's {self.trials} trials are claimed by other workers")

    def sample(self, trial: optuna.Trial) -> dict[str, Any]:
        tree = self.base_tree
        for key, spec in self.space.params.items():
            tree = set_key(tree, key, spec.suggest(trial, key))
        return tree

    @staticmethod
    def finished_twin(trial: optuna.Trial) -> float | list[float] | None:
        """TPE often proposes a finished combination again in small categorical spaces:
        training it again would give the same result, so its value (values) is reused."""
        for done in trial.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
            if done.params == trial.params:
                trial.set_user_attr("duplicate_of", done.number)
                return done.values if len(done.values) > 1 else done.value
        return None

    def trial_config(self, tree: dict[str, Any], trial: optuna.Trial) -> ExperimentConfig:
        config = parse_config(tree, f"trial {trial.number}")
        config.train.out_dir = str(self.out / f"trial-{trial.number:04d}")
        config.train.overwrite = True  # a retried trial replaces its own folder
        config.tracking.run_name = f"{trial.study.study_name}-trial-{trial.number}"
        config.tracking.log_model = "none"  # the study's best trial logs its model at the end (`tune`)
        return config

    def callbacks(self, config: ExperimentConfig, trial: optuna.Trial, parent: Any = None,
                  per_epoch: bool = True) -> list[Callback]:
        """`parent`: the trial's own parent run (a `ParentRun`), else the study's."""
        callbacks: list[Callback] = [PruneOnDice(trial)] if per_epoch else []
        parent = parent or self.parent
        if parent is not None:
            from hybridunet.tracking import TrialRunCallback

            callbacks.append(TrialRunCallback(config.tracking, parent, trial.study.study_name, trial.number,
                                              trial.params, pruned=optuna.TrialPruned))
        return callbacks
