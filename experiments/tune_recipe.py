"""Which recipe trains the Hybrid UNet best? A hand-written Optuna objective around
`hybridunet.engine.fit`, the way Optuna's documentation writes studies.

    python experiments/tune_recipe.py [--trials 8] [--storage sqlite:///optuna.db]

Runs as-is on the synthetic data (generated if missing) at a small budget. Re-running
resumes the study. For a YAML search space instead, see tune_hybrid_parts.py or
`hybridunet tune`.
"""

import argparse
from pathlib import Path

import optuna

from hybridunet.config import load_config
from hybridunet.data import synthesize
from hybridunet.engine import fit
from hybridunet.tuning import PruneOnDice

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--trials", type=int, default=8)
parser.add_argument("--storage", default="sqlite:///optuna.db")
args = parser.parse_args()

BUDGET = ["data.size=64", "data.limit_train=64", "data.limit_val=32", "train.epochs=3",
          "model.widths=[16,32,64,128,256]", "train.progress=false", "tracking.enabled=false"]
if not any(Path("data/synthetic/train").glob("*.jpg")):
    synthesize("data/synthetic")


def objective(trial: optuna.Trial) -> float:
    overrides = [
        f"optim.lr={trial.suggest_float('lr', 3e-4, 1e-2, log=True)}",
        f"optim.weight_decay={trial.suggest_float('weight_decay', 1e-6, 1e-2, log=True)}",
        f"loss.name={trial.suggest_categorical('loss', ['ce', 'dice_ce', 'focal'])}",
        f"data.augment.color_jitter={trial.suggest_float('color_jitter', 0.0, 0.4)}",
        f"train.out_dir=outputs/tune-recipe/trial-{trial.number:04d}",
        "train.overwrite=true",
    ]
    config = load_config("experiments/configs/hybrid_unet.yaml", BUDGET + overrides)
    return fit(config, callbacks=[PruneOnDice(trial)])["dice"]  # reports Dice per epoch, may prune


study = optuna.create_study(
    study_name="recipe", storage=args.storage, load_if_exists=True, direction="maximize",
    sampler=optuna.samplers.TPESampler(seed=0), pruner=optuna.pruners.MedianPruner(n_startup_trials=2),
)
done = len(study.get_trials(states=(optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)))
study.optimize(objective, n_trials=max(0, args.trials - done))
print(f"best val Dice {study.best_value:.4f} with {study.best_params}")
