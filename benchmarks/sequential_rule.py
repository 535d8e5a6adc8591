"""The stopping rule's error rates, power and seeds used, by simulation (no training).

    python benchmarks/sequential_rule.py [--sims 20000] [--caps 4 7 10] [--effects 1.0 1.5 2.0]
        [--min-seeds 3] [--margin 0.01] [--level 0.05]

Paired differences are drawn normal (sd 0.03 Dice, a CPU protocol's spread) with a true mean
of effect x sd; the rule (hybridunet.sequential) looks after every seed from --min-seeds to
the cap. Also: the rate of declaring a side under no difference, and of declaring
equivalence under a true difference equal to the margin, for normal and t3 differences.
Prints a table, then a JSON line.
"""

from __future__ import annotations

import argparse
import math

import numpy as np
from common import print_json

from hybridunet.sequential import decide_many

SD = 0.03


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sims", type=int, default=20_000)
    parser.add_argument("--caps", type=int, nargs="+", default=[4, 7, 10])
    parser.add_argument("--effects", type=float, nargs="+", default=[1.0, 1.5, 2.0])
    parser.add_argument("--min-seeds", type=int, default=3)
    parser.add_argument("--margin", type=float, default=0.01)
    parser.add_argument("--level", type=float, default=0.05)
    args = parser.parse_args(argv)
    rng = np.random.default_rng(0)
    rule = dict(min_seeds=args.min_seeds, margin=args.margin, level=args.level)
    se = math.sqrt(args.level * (1 - args.level) / args.sims)
    print(f"stopping rule: first look at {args.min_seeds} seeds, margin {args.margin}, level {args.level}; "
          f"{args.sims} simulated comparisons per row (Monte-Carlo se at the level: {se:.4f})")
    print(f"{'cap':>4} {'differences':>12} {'true diff':>10} {'side declared':>14} {'equivalent':>11} "
          f"{'mean seeds':>11}")
    figures: dict = {}
    for cap in args.caps:
        for kind in ("normal", "t3"):
            noise = (rng.standard_normal if kind == "normal" else
                     lambda shape: rng.standard_t(3, shape) / math.sqrt(3))
            for true in (0.0, args.margin):
                decision, *_, used = decide_many(noise((args.sims, cap)) * SD + true, max_seeds=cap, **rule)
                side = float(np.mean((decision == "better") | (decision == "worse")))
                equivalent = float(np.mean(decision == "equivalent"))
                print(f"{cap:>4} {kind:>12} {true:>10.3f} {side:>14.4f} {equivalent:>11.4f} {used.mean():>11.2f}")
                figures[f"cap{cap}_{kind}_diff{true:g}_side"] = round(side, 4)
                figures[f"cap{cap}_{kind}_diff{true:g}_equivalent"] = round(equivalent, 4)
        for effect in args.effects:
            decision, *_, used = decide_many(rng.standard_normal((args.sims, cap)) * SD + effect * SD,
                                             max_seeds=cap, **rule)
            power = float(np.mean(decision == "better"))
            print(f"{cap:>4} {'normal':>12} {f'{effect:g} sd':>10} {power:>14.4f} {np.mean(decision == 'equivalent'):>11.4f} "
                  f"{used.mean():>11.2f}")
            figures[f"cap{cap}_effect{effect:g}_power"] = round(power, 4)
            figures[f"cap{cap}_effect{effect:g}_mean_seeds"] = round(float(used.mean()), 2)
    print_json(figures)


if __name__ == "__main__":
    main()
