"""The stopping rule's error rates, power and seeds used, by simulation (no training): the exact
rule beside the earlier Bonferroni one; or a journal re-read under the rule.

    python benchmarks/sequential_rule.py [--sims 20000] [--caps 5 10] [--effects 0.5 1 1.5 2 2.5 3]
        [--margin 0.01] [--level 0.05]
    python benchmarks/sequential_rule.py --journal benchmarks/reference/study_scale_v2.jsonl [--max-seeds 10]
        [--metric test_dice]

Paired differences are drawn normal (sd 0.03 Dice, a CPU protocol's spread) with a true mean
of d_z x sd; both rules look after every seed from the cap's default first look
(`sequential.default_min_seeds`) to the cap. Rows: the rate of declaring a side under no
difference (normal and t3 differences), of declaring equivalence under a true difference
equal to the margin, and per d_z the power and the expected seeds at stop. Prints a table,
then a JSON line.

With --journal: every pair of the journal's arms, `B - A` for A first seen first, under the
exact rule at the level split over the pairs; a pair with fewer paired seeds than the first
look says so.
"""

from __future__ import annotations

import argparse
import math
from itertools import combinations

import numpy as np
from common import print_json

from hybridunet.sequential import decide_many, default_min_seeds

SD = 0.03
RULES = ("bonferroni", "exact")


class Rows:
    """One table row per call: both rules on the same draws, at one cap."""

    def __init__(self, args: argparse.Namespace, cap: int, figures: dict) -> None:
        self.args, self.cap, self.first, self.figures = args, cap, default_min_seeds(cap), figures

    def __call__(self, kind: str, true: str, diffs: np.ndarray, wanted: str) -> None:
        cap, cells = self.cap, []
        for rule in RULES:
            decision, *_, used = decide_many(diffs, self.first, cap, self.args.margin, self.args.level, method=rule)
            if wanted == "side":
                rate = float(np.mean((decision == "better") | (decision == "worse")))
            else:
                rate = float(np.mean(decision == wanted))
            cells.append(f"{rate:>16.4f} {used.mean():>19.2f}")
            self.figures[f"cap{cap}_{kind}_{true}_{rule}_{wanted}"] = round(rate, 4)
            self.figures[f"cap{cap}_{kind}_{true}_{rule}_mean_seeds"] = round(float(used.mean()), 2)
        print(f"{cap:>4} {self.first:>5} {kind:>12} {true:>10} " + " ".join(cells))


def simulate(args: argparse.Namespace) -> dict:
    rng = np.random.default_rng(0)
    se = math.sqrt(args.level * (1 - args.level) / args.sims)
    print(f"the stopping rule, earlier (Bonferroni over looks) and exact: level {args.level}, margin {args.margin}, "
          f"{args.sims} simulated comparisons per row (Monte-Carlo se at the level: {se:.4f}); "
          "'side' is the rate of declaring either side, 'E seeds' the expected seeds at stop")
    print(f"{'cap':>4} {'first':>5} {'differences':>12} {'true diff':>10} "
          + " ".join(f"{rule + ' side':>16} {rule + ' E seeds':>19}" for rule in RULES))
    figures: dict = {}
    for cap in args.caps:
        row = Rows(args, cap, figures)
        for kind in ("normal", "t3"):
            noise = (rng.standard_normal if kind == "normal" else
                     lambda shape: rng.standard_t(3, shape) / math.sqrt(3))
            row(kind, "0", noise((args.sims, cap)) * SD, "side")
            row(kind, f"{args.margin:g}", noise((args.sims, cap)) * SD / 6 + args.margin, "equivalent")
        for effect in args.effects:
            row("normal", f"d_z {effect:g}", rng.standard_normal((args.sims, cap)) * SD + effect * SD, "better")
    print("rows 'd_z ...': the 'side' columns are the power (the chance of deciding better)")
    return figures


def reread(args: argparse.Namespace) -> dict:
    from hybridunet.comparison import Rule, line, look
    from hybridunet.results import Journal, group

    arms = group(Journal(args.journal).records().values())
    by_label = {arm.label: arm for arm in arms}
    pairs = list(combinations(by_label, 2))
    rule = Rule(args.max_seeds, margin=args.margin, level=args.level)
    print(f"{args.journal} under the exact rule: cap {rule.max_seeds}, first look {rule.first}, level {rule.level:g} "
          f"over {len(pairs)} pairs, {args.metric}")
    seeds = sorted({s for arm in arms for s in arm.seeds})
    outcomes = look([(by_label[a], by_label[b]) for a, b in pairs], rule, args.metric, seeds)
    figures = {}
    for a, b in pairs:
        outcome = outcomes.get((a, b))
        if outcome is None:
            paired = len(set(by_label[a].seeds) & set(by_label[b].seeds))
            print(f"{args.metric} {b} - {a}: below the first look ({paired} paired seeds < {rule.first})")
            figures[f"{b} - {a}"] = f"below the first look ({paired} seeds)"
        else:
            print(line(outcome))
            figures[f"{b} - {a}"] = outcome.decision
    return figures


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sims", type=int, default=20_000)
    parser.add_argument("--caps", type=int, nargs="+", default=[5, 10])
    parser.add_argument("--effects", type=float, nargs="+", default=[0.5, 1.0, 1.5, 2.0, 2.5, 3.0])
    parser.add_argument("--margin", type=float, default=0.01)
    parser.add_argument("--level", type=float, default=0.05)
    parser.add_argument("--journal", help="re-read this journal's runs under the exact rule instead of simulating")
    parser.add_argument("--max-seeds", type=int, default=10, help="with --journal: the cap")
    parser.add_argument("--metric", default="test_dice", help="with --journal: what decides")
    args = parser.parse_args(argv)
    print_json(reread(args) if args.journal else simulate(args))


if __name__ == "__main__":
    main()
