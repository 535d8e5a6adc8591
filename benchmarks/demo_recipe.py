"""Candidates for the demo's recipe, judged on held-out seeds (100 and up: never the demo's own).

    python benchmarks/demo_recipe.py [--candidates demo s48e16 ...] [--seeds 100:108] [--cap N] [--budget 5]
        [--journal outputs/demo-recipe/journal.jsonl]

Each candidate is the demo's recipe (hybridunet/demo.py) with a few keys changed; unet and
hybrid_unet_resdec train on the demo's data with each held-out seed. The table gives the
standardised effect d_z of the paired differences (the figure the stopping rule's power
depends on: BENCHMARKS.md's simulation), the cost of a seed pair, how many seeds the demo's
budget buys, and what the demo's rule would decide on these seeds in order. Choose on d_z and
the cost; the demo's own seeds (0, 1, 2, ...) are never seen here. Finished runs are lines of
--journal, so a rerun continues.
"""

from __future__ import annotations

import argparse
import copy
import os

import numpy as np
from common import print_json

from hybridunet.cli.args import parse_seeds
from hybridunet.comparison import PairOutcome, Rule, describe, look, mean_std, paired, run_comparison
from hybridunet.config import parse_config
from hybridunet.data.synthetic import ensure_synthetic
from hybridunet.demo import ARMS, DATA, RECIPE, SYNTHETIC
from hybridunet.results import Arm

# name -> the keys changed from the demo's recipe ("section.key": value)
CANDIDATES = {
    "demo": {},
    "no_weights": {"loss.class_weights": "none"},
    "e12": {"train.epochs": 12},
    "s48e16": {"data.size": 48, "train.epochs": 16},
    "s48e12": {"data.size": 48, "train.epochs": 12},
    "w16e6": {"model.widths": [16, 32, 64, 128, 256], "train.epochs": 6},
    # seeds that vary less: benchmarks/variance.py (EMA weights, a 500-image validation split)
}


def candidate_tree(changes: dict, name: str) -> dict:
    tree = copy.deepcopy(RECIPE)
    for dotted, value in changes.items():
        *sections, key = dotted.split(".")
        node = tree
        for section in sections:
            node = node.setdefault(section, {})
        node[key] = value
    tree["model"]["name"] = name
    return tree


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--candidates", nargs="+", default=list(CANDIDATES), choices=list(CANDIDATES))
    parser.add_argument("--seeds", nargs="+", default=["100:108"])
    parser.add_argument("--cap", type=int, help="the rule's cap (default: the seeds the budget buys, 3 to 10)")
    parser.add_argument("--budget", type=float, default=5.0, help="the demo's training minutes")
    parser.add_argument("--journal", default="outputs/demo-recipe/journal.jsonl")
    args = parser.parse_args(argv)
    seeds = parse_seeds(args.seeds)
    if min(seeds) < 100:
        raise SystemExit(f"--seeds {args.seeds}: held-out seeds are 100 and up (the demo uses 0, 1, 2, ...)")
    ensure_synthetic(DATA, **SYNTHETIC, workers=os.cpu_count() or 1)
    figures = {}
    rows = []
    for cand in args.candidates:
        configs = [(f"{arm}@{cand}", parse_config(candidate_tree(CANDIDATES[cand], arm), f"candidate {cand}"))
                   for arm in ARMS]
        base, hybrid = run_comparison(configs, seeds, tracking=False, journal=args.journal,
                                      on_event=lambda event: print(describe(event), flush=True))
        d = paired(base, hybrid, "dice")
        pair_s = float(np.mean(base.seconds) + np.mean(hybrid.seconds))
        affordable = int(args.budget * 60 // pair_s)
        cap = args.cap or min(10, max(3, affordable))
        outcome = decided(base, hybrid, seeds, cap)
        rows.append((cand, mean_std(list(base.values("dice").values())),
                     mean_std(list(hybrid.values("dice").values())), d, pair_s, affordable, cap, outcome))
        figures[cand] = {"diff": round(d.mean, 4), "d_z": round(d.effect_size, 2), "pair_seconds": round(pair_s, 1),
                         "cap": cap, "decision": outcome.decision if outcome else "below the first look",
                         "decided_at": outcome.n if outcome else None}
    print(f"\nunet vs hybrid_unet_resdec on the demo's data, held-out seeds {seeds}, val Dice "
          f"(the rule at level 0.05, its cap the seeds a {args.budget:g}-minute budget buys at that pair cost)")
    print(f"{'candidate':<12} {'unet':>16} {'resdec':>16} {'diff':>8} {'sd':>7} {'d_z':>5} {'ahead':>6} "
          f"{'s/pair':>7} {'buys':>5}  rule on these seeds")
    for cand, unet, resdec, d, pair_s, affordable, cap, outcome in rows:
        ahead = f"{sum(v > 0 for v in d.diffs)}/{len(d.diffs)}"
        rule = f"{outcome.decision} at {outcome.n}" if outcome else f"below the first look at {len(d.diffs)}"
        print(f"{cand:<12} {unet:>16} {resdec:>16} {d.mean:>+8.4f} {float(np.std(d.diffs, ddof=1)):>7.4f} "
              f"{d.effect_size:>5.2f} {ahead:>6} {pair_s:>7.1f} {affordable:>5}  {rule} (cap {cap})")
    print_json(figures)


def decided(base: Arm, hybrid: Arm, seeds: list[int], cap: int) -> PairOutcome | None:
    """The demo's rule (this cap, its default first look) on these seeds in order, through the
    comparison's own look; None below the first look."""
    return look([(base, hybrid)], Rule(max_seeds=cap, metric="dice"), "dice", seeds[:cap]).get((base.label, hybrid.label))


if __name__ == "__main__":
    main()
