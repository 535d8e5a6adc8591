"""Seeds that vary less? The spread of resdec - unet at the demo's recipe, scored four ways in
the same runs.

    python benchmarks/variance.py [--seeds 108:116] [--val 500] [--ema 0.99] [--boot 10000]
        [--journal outputs/variance/journal.jsonl]

unet and hybrid_unet_resdec train with the demo's recipe (hybridunet/demo.py) on the demo's 200
training scenes, fresh held-out seeds 108-115 (100-107 chose the recipe; the demo uses 0..),
with an EMA of the weights on (timm's ModelEmaV3 with its warm-up: the decay 1 - k^(-2/3) after
k steps, 0.982 at the run's 400th, below the --ema cap of 0.99). The EMA does
not change the training, so each run is scored at every epoch four ways: the raw or the
averaged weights, on the first 48 validation images (the demo's `limit_val: 48`) or on a
500-image validation split (the demo's data has 50); each way takes its own best epoch. For
each way: each arm's mean Dice, the paired difference's sd and d_z, the seconds its scoring
costs a run (and the EMA's updates), and a paired bootstrap 95% interval (over seeds) on
sd(as now) / sd(way). A way is adopted into the demo's recipe only if that interval lies above
1.2 and, for the EMA, neither arm's mean Dice drops against the raw weights on the same images
(the larger validation set alone changes no model). Finished runs are lines of --journal. Prints a table, then a JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
from common import print_json

from hybridunet.cli.args import parse_seeds
from hybridunet.config import parse_config
from hybridunet.data import make_loader
from hybridunet.data.synthetic import ensure_synthetic
from hybridunet.demo import ARMS, RECIPE, SYNTHETIC
from hybridunet.engine import Callback, evaluate, fit, open_split

WAYS = ("raw/48", "ema/48", "raw/500", "ema/500")  # raw/48 is the demo as now
FIRST = 48


class FourWays(Callback):
    """Each epoch: the raw and the averaged weights on the first 48 validation images and on all."""

    def __init__(self) -> None:
        self.scores: dict[str, list[float]] = {way: [] for way in WAYS}
        self.seconds = {"48": 0.0, "500": 0.0}

    def on_fit_start(self, run) -> None:
        data = open_split(run.config.model_copy(update={"data": run.config.data.model_copy(
            update={"limit_val": None})}), run.config.data.val_split, train=False)
        batch = run.config.train.batch_size
        first = list(range(min(FIRST, len(data))))
        rest = list(range(len(first), len(data)))
        from torch.utils.data import Subset

        self.loaders = (make_loader(Subset(data, first), batch), make_loader(Subset(data, rest), batch))

    def on_epoch_end(self, run, epoch, metrics) -> None:
        from hybridunet.metrics import ConfusionMatrix

        for name, model in (("raw", run.model), ("ema", run.ema)):
            cm = ConfusionMatrix(run.config.model.num_classes, device=run.device)
            start = time.perf_counter()
            evaluate(model, self.loaders[0], run.config.model.num_classes, device=run.device,
                     precision=run.precision, cm=cm)
            self.seconds["48"] += time.perf_counter() - start
            self.scores[f"{name}/48"].append(cm.compute()["dice"])
            start = time.perf_counter()
            evaluate(model, self.loaders[1], run.config.model.num_classes, device=run.device,
                     precision=run.precision, cm=cm)  # the same matrix: the 48, then the rest
            self.seconds["500"] += time.perf_counter() - start
            self.scores[f"{name}/500"].append(cm.compute()["dice"])


def train(arm: str, seed: int, data: Path, args: argparse.Namespace) -> dict:
    tree = json.loads(json.dumps(RECIPE))
    tree["model"]["name"] = arm
    tree["data"].update(root=str(data), limit_val=FIRST)  # the engine's own looks: the demo's
    tree["train"].update(ema={"decay": args.ema}, out_dir=f"outputs/variance/{arm}-s{seed}", progress=False,
                         overwrite=True)
    tree["tracking"] = {"enabled": False}
    config = parse_config(tree, f"variance {arm}")
    config.seed = seed
    ways = FourWays()
    start = time.perf_counter()
    fit(config, callbacks=[ways])
    best = {way: max(values) for way, values in ways.scores.items()}
    return {"arm": arm, "seed": seed, "best": best, "seconds": time.perf_counter() - start,
            "score_seconds": ways.seconds}


def ema_update_seconds(arm: str, updates: int = 50) -> float:
    """Seconds of one EMA update of `arm`'s demo-width model (timm's ModelEmaV3), the median."""
    import torch
    from timm.utils import ModelEmaV3

    from hybridunet.models import create_model

    model = create_model(arm, widths=RECIPE["model"]["widths"])
    ema = ModelEmaV3(model, decay=0.99, use_warmup=True)
    times = []
    for step in range(updates):
        start = time.perf_counter()
        with torch.no_grad():
            ema.update(model, step=step + 1)
        times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]


def bootstrap(base: np.ndarray, other: np.ndarray, boot: int, rng: np.random.Generator) -> tuple[float, float]:
    """95% percentile interval of sd(base) / sd(other) over seeds resampled in pairs."""
    n = len(base)
    ratios = []
    for _ in range(boot):
        pick = rng.integers(0, n, n)
        a, b = np.std(base[pick], ddof=1), np.std(other[pick], ddof=1)
        if b > 0:
            ratios.append(a / b)
    low, high = np.percentile(ratios, [2.5, 97.5])
    return float(low), float(high)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", nargs="+", default=["108:116"])
    parser.add_argument("--val", type=int, default=500, help="the validation split's size")
    parser.add_argument("--ema", type=float, default=0.99, help="train.ema.decay (its warm-up applies)")
    parser.add_argument("--boot", type=int, default=10_000)
    parser.add_argument("--journal", default="outputs/variance/journal.jsonl")
    args = parser.parse_args(argv)
    seeds = parse_seeds(args.seeds)
    if min(seeds) < 108:
        raise SystemExit(f"--seeds {args.seeds}: fresh held-out seeds are 108 and up (100-107 chose the recipe)")
    data = Path(f"data/variance-{SYNTHETIC['train']}-{args.val}-s{SYNTHETIC['seed']}")
    ensure_synthetic(data, train=SYNTHETIC["train"], val=args.val, size=SYNTHETIC["size"], seed=SYNTHETIC["seed"],
                     workers=os.cpu_count() or 1)
    journal = Path(args.journal)
    done = {}
    if journal.exists():
        for line in journal.read_text().splitlines():
            row = json.loads(line)
            done[(row["arm"], row["seed"], row["ema"], row.get("val", 500))] = row  # rows before --val was kept: 500
    for seed in seeds:
        for arm in ARMS:
            if (arm, seed, args.ema, args.val) not in done:
                row = {**train(arm, seed, data, args), "ema": args.ema, "val": args.val}
                journal.parent.mkdir(parents=True, exist_ok=True)
                with journal.open("a") as f:
                    f.write(json.dumps(row) + "\n")
                done[(arm, seed, args.ema, args.val)] = row
                print(f"{arm} seed {seed}: " + ", ".join(f"{w} {row['best'][w]:.4f}" for w in WAYS)
                      + f" in {row['seconds']:.0f} s", flush=True)
    rows = {(arm, seed): done[(arm, seed, args.ema, args.val)] for seed in seeds for arm in ARMS}
    ema_seconds = {arm: ema_update_seconds(arm) * RECIPE["train"]["epochs"] * 25 for arm in ARMS}  # 25 steps an epoch
    rng = np.random.default_rng(0)
    diffs = {way: np.array([rows[(ARMS[1], s)]["best"][way] - rows[(ARMS[0], s)]["best"][way] for s in seeds])
             for way in WAYS}
    print(f"\n{ARMS[1]} - {ARMS[0]} at the demo's recipe, seeds {seeds}, EMA decay up to {args.ema} "
          f"(warm-up), val split of {args.val}; each way its own best epoch")
    print(f"{'way':<8} {'unet':>8} {'resdec':>8} {'diff':>8} {'sd':>7} {'d_z':>6} {'sd now/sd':>9} "
          f"{'95% bootstrap':>16} {'score s/run':>11} {'EMA s/run':>9}  adopt?")
    figures: dict = {}
    now = diffs["raw/48"]
    for way in WAYS:
        unet = float(np.mean([rows[(ARMS[0], s)]["best"][way] for s in seeds]))
        resdec = float(np.mean([rows[(ARMS[1], s)]["best"][way] for s in seeds]))
        d, sd = diffs[way], float(np.std(diffs[way], ddof=1))
        ratio = float(np.std(now, ddof=1)) / sd if sd > 0 else float("inf")
        low, high = bootstrap(now, d, args.boot, rng) if way != "raw/48" else (1.0, 1.0)
        parts = ("48",) if way.endswith("/48") else ("48", "500")  # the 500: the 48, then the other 452
        score_s = float(np.mean([sum(rows[(a, s)]["score_seconds"][p] for p in parts) for a in ARMS for s in seeds])) / 2
        # Dice is compared on the same images: the EMA against the raw weights on its validation set;
        # the larger set alone changes no model, so it has no Dice to lose
        same_set = "raw/" + way.split("/")[1]
        lower_dice = way.startswith("ema") and (
            unet < float(np.mean([rows[(ARMS[0], s)]["best"][same_set] for s in seeds]))
            or resdec < float(np.mean([rows[(ARMS[1], s)]["best"][same_set] for s in seeds])))
        adopt = way != "raw/48" and low > 1.2 and not lower_dice
        ema_s = float(np.mean(list(ema_seconds.values()))) if way.startswith("ema") else 0.0
        print(f"{way:<8} {unet:>8.4f} {resdec:>8.4f} {d.mean():>+8.4f} {sd:>7.4f} {d.mean() / sd:>6.2f} {ratio:>9.2f} "
              f"{f'{low:.2f} .. {high:.2f}':>16} {score_s:>11.1f} {ema_s:>9.2f}  {'yes' if adopt else 'no'}")
        figures[way] = {"unet": round(unet, 4), "resdec": round(resdec, 4), "diff": round(float(d.mean()), 4),
                        "sd": round(sd, 4), "d_z": round(float(d.mean()) / sd, 2), "sd_ratio": round(ratio, 2),
                        "ratio_ci95": [round(low, 2), round(high, 2)], "score_seconds": round(score_s, 1),
                        "ema_update_seconds": round(ema_s, 2), "dice_lower": lower_dice, "adopt": adopt}
    print(f"seconds a run (training, the engine's looks and this scoring): "
          f"{np.mean([r['seconds'] for r in rows.values()]):.0f}; 'score s/run': one model's scoring at every "
          "epoch, on 48 images or on the other 452 (the 500 add them to the 48)")
    print_json(figures)


if __name__ == "__main__":
    main()
