"""The main job on the embedded synthetic data: UNet against Hybrid UNet, several seeds."""

from __future__ import annotations

import os
from pathlib import Path

from hybridunet.compare import run_comparison, summary, table
from hybridunet.config import parse_config
from hybridunet.data.synthetic import ensure_synthetic

DATA = Path("data/synthetic")
SYNTHETIC = {"train": 200, "val": 50, "size": 256, "seed": 0}  # what DATA holds (synthetic.json checks it)
# A budget of a few minutes on two CPU cores: 96x96 crops, half-width models, a subset.
RECIPE = {
    "model": {"widths": [16, 32, 64, 128, 256]},
    "data": {"root": str(DATA), "size": 96, "limit_train": 128, "limit_val": 48,
             "augment": {"scale": [0.8, 1.25], "hflip": 0.5, "color_jitter": 0.1}},
    "train": {"epochs": 5, "batch_size": 8, "progress": False},
    "loss": {"name": "dice_ce"},
    "optim": {"name": "adamw", "lr": 0.003},
    "sched": {"name": "cosine"},
    "tracking": {"experiment": "hybridunet-demo"},
}


def run_demo(seeds: int = 3, tracking: bool = True) -> dict:
    """Generate the synthetic data if missing, compare the two presets, print the table."""
    if not any((DATA / "train").glob("*.jpg")):
        print(f"generating synthetic street scenes in {DATA} ...", flush=True)
    ensure_synthetic(DATA, **SYNTHETIC, workers=os.cpu_count() or 1)
    configs = []
    for name in ("unet", "hybrid_unet"):
        tree = {**RECIPE, "model": {**RECIPE["model"], "name": name}}
        configs.append((name, parse_config(tree, "the demo recipe")))
    print(f"training unet and hybrid_unet with seeds 0..{seeds - 1} (a few minutes on 2 CPU cores) ...", flush=True)
    arms = run_comparison(configs, list(range(seeds)), tracking=tracking, progress=lambda line: print(line, flush=True))
    print()
    print(table(arms))
    if tracking:
        from hybridunet.tracking import experiment_id, tracking_uri

        experiment = RECIPE["tracking"]["experiment"]
        number = experiment_id(experiment, tracking_uri())
        print(f"\nEvery run is in MLflow (experiment {experiment}). To browse them:  mlflow ui   then open\n"
              f"  http://127.0.0.1:5000/#/experiments/{number}/runs?workflowType=machine_learning\n"
              f"To compare them again:  hybridunet compare --experiment {experiment}")
    return summary(arms)
