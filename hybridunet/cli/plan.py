"""`hybridunet plan`: the stopping rule's design before any seed is trained, as gsDesign shows one."""

from __future__ import annotations

import argparse

from hybridunet.cli.args import Subcommands, positive, print_json


def cmd_plan(args: argparse.Namespace) -> int:
    """Print each look's boundary and, per standardised effect, the power and expected seeds."""
    from scipy import stats

    from hybridunet.sequential import EFFECTS, check_design, default_min_seeds, design, operating

    first = args.min_seeds if args.min_seeds is not None else default_min_seeds(args.max_seeds)
    check_design(first, args.max_seeds, args.level, args.spending)
    d = design(first, args.max_seeds, args.level, args.spending)
    print(f"Exact group-sequential paired t-test: looks at {first}..{args.max_seeds} paired seeds, two-sided level "
          f"{args.level:g} (per pair), {args.spending} spending (Lan-DeMets); boundaries exact for normal differences")
    print(f"\n{'look':>4} {'seeds':>5} {'fraction':>8} {'alpha spent':>11} {'|t| bound':>10} {'d_z bound':>9}")
    looks = []
    for i, n in enumerate(range(first, args.max_seeds + 1)):
        c = d.bounds[i]
        # the mean paired difference, in sds, that crosses at this look: t = mean / (sd / sqrt(n))
        print(f"{i + 1:>4} {n:>5} {n / args.max_seeds:>8.2f} {d.spent[i]:>11.5f} {c:>10.3f} {c / n ** 0.5:>9.3f}")
        looks.append({"seeds": n, "alpha_spent": d.spent[i], "t_bound": c, "d_z_bound": c / n ** 0.5})
    rows = operating(first, args.max_seeds, args.level, EFFECTS, spending=args.spending, sims=args.sims)
    fixed_t = stats.t.isf(args.level / 2, args.max_seeds - 1)
    print(f"\n{'d_z':>5} {'power':>7} {'E seeds':>8} {'fixed-n power':>14}   ({args.sims} simulated comparisons per "
          f"row; fixed-n: a t-test at {args.max_seeds} seeds, which cannot stop early)")
    for row in rows:
        fixed = float(stats.nct.sf(fixed_t, args.max_seeds - 1, row["d_z"] * args.max_seeds ** 0.5))
        row["fixed_n_power"] = fixed
        print(f"{row['d_z']:>5.1f} {row['power']:>7.3f} {row['expected_seeds']:>8.2f} {fixed:>14.3f}")
    print("d_z: the mean paired difference over its standard deviation (a sequence of seeds' sd of B - A); "
          "a family of k pairs plans each at --level 0.05/k.")
    print_json({"min_seeds": first, "max_seeds": args.max_seeds, "level": args.level, "spending": args.spending,
                "looks": looks, "operating": rows})
    return 0


def add_commands(commands: Subcommands) -> None:
    plan = commands.add_parser("plan", help="the stopping rule's boundaries, power and expected seeds per effect")
    plan.add_argument("--max-seeds", type=int, required=True, metavar="N", help="the cap: the last look")
    plan.add_argument("--min-seeds", type=int, metavar="M",
                      help="the first look (default: by cap, the one that stops soonest on average)")
    plan.add_argument("--level", type=float, default=0.05,
                      help="the two-sided error rate per pair (default 0.05; a family of k pairs: 0.05/k each)")
    plan.add_argument("--spending", default="obf", help="obf (default), pocock, or power:RHO")
    plan.add_argument("--sims", type=positive, default=20_000, help="simulated comparisons per effect (default 20000)")
    plan.set_defaults(func=cmd_plan)
