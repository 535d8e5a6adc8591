"""Which of the Hybrid UNet's parts help? A study over the part swaps, from the YAML
search space experiments/search/hybrid_parts.yaml, through `hybridunet.tuning`.

    python experiments/tune_hybrid_parts.py [--trials 12]

Runs as-is on the synthetic data (generated if missing) at a small budget; raise
data.size, data.limit_train and train.epochs for a real answer. Re-running resumes.
Each trial is a nested MLflow run; the best one is written to outputs/tune-hybrid-parts/best.yaml.
"""

import argparse
import json
from pathlib import Path

from hybridunet.config import load_config
from hybridunet.data import synthesize
from hybridunet.tuning import load_search_space, study_report, tune

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--trials", type=int, default=12)
parser.add_argument("--storage", default="sqlite:///optuna.db")
args = parser.parse_args()

base = load_config("experiments/configs/hybrid_unet.yaml", [
    "data.size=64", "data.limit_train=64", "data.limit_val=32", "train.epochs=3", "train.batch_size=8",
    "model.widths=[16,32,64,128,256]", "train.progress=false", "tracking.experiment=tune-hybrid-parts",
])
if not any(Path(base.data.root, "train").glob("*.jpg")):
    synthesize(base.data.root)
space = load_search_space("experiments/search/hybrid_parts.yaml", base)
study = tune(base, space, trials=args.trials, storage=args.storage, study_name="hybrid-parts")
print(json.dumps(study_report(study), indent=2))
