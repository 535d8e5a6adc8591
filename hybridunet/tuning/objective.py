"""One trial of a study: its config, its training with pruning on validation Dice, its MLflow run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import optuna
from optuna.trial import TrialState

from hybridunet.config import ExperimentConfig, parse_config
from hybridunet.engine import Callback, Run, fit
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


class Objective:
    """`objective(trial)` of a study over `space` on top of `base`: the best validation Dice of
    the trial's training, pruned per epoch; with `parent_id`, a nested MLflow run per trial."""

    def __init__(self, base: ExperimentConfig, space: SearchSpace, trials: int, out: Path,
                 parent_id: str | None = None) -> None:
        self.base_tree, self.space, self.trials, self.out, self.parent_id = base.to_dict(), space, trials, out, parent_id

    def __call__(self, trial: optuna.Trial) -> float:
        self.claim(trial)
        tree = self.sample(trial)
        twin = self.finished_twin(trial)
        if twin is not None:
            return twin
        config = self.trial_config(tree, trial)
        return fit(config, callbacks=self.callbacks(config, trial))["dice"]

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
    def finished_twin(trial: optuna.Trial) -> float | None:
        """TPE often proposes a finished combination again in small categorical spaces:
        training it again would give the same result, so its value is reused."""
        for done in trial.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
            if done.params == trial.params:
                trial.set_user_attr("duplicate_of", done.number)
                return done.value
        return None

    def trial_config(self, tree: dict[str, Any], trial: optuna.Trial) -> ExperimentConfig:
        config = parse_config(tree, f"trial {trial.number}")
        config.train.out_dir = str(self.out / f"trial-{trial.number:04d}")
        config.train.overwrite = True  # a retried trial replaces its own folder
        config.tracking.run_name = f"{trial.study.study_name}-trial-{trial.number}"
        return config

    def callbacks(self, config: ExperimentConfig, trial: optuna.Trial) -> list[Callback]:
        callbacks: list[Callback] = [PruneOnDice(trial)]
        if self.parent_id is not None:
            from hybridunet.tracking import TrialRunCallback

            callbacks.append(TrialRunCallback(config.tracking, self.parent_id, trial.study.study_name, trial.number,
                                              trial.params, pruned=optuna.TrialPruned))
        return callbacks
