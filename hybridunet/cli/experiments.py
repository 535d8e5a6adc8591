"""Commands over many runs: compare, tune, demo."""

from __future__ import annotations

import argparse
from pathlib import Path

from hybridunet.cli.args import SEEDS_HELP, Subcommands, move_overrides, parse_seeds, positive, print_json, say
from hybridunet.results import METRICS


def cmd_compare(args: argparse.Namespace) -> int:
    """Compare configs over seeds (or finished runs of an MLflow experiment)."""
    from hybridunet.comparison import Rule, arms_from_mlflow, run_comparison, run_sequential, summary, table
    from hybridunet.config import load_config
    from hybridunet.errors import UsageError

    move_overrides(args, "configs", "seeds")
    from hybridunet.comparison.cost import check_match_cost

    match_cost = check_match_cost(args.match_cost)
    sequential = args.max_seeds is not None or args.budget is not None
    outcomes: list = []  # the rule's, for a sequential comparison
    if sequential and args.seeds:
        raise UsageError("--seeds fixes the seeds; --max-seeds and --budget add seeds until decided: give one of them")
    if args.experiment:
        if match_cost != "none":
            raise UsageError(f"--match-cost {match_cost} trains; --experiment reads finished runs back: give one")
        arms = arms_from_mlflow(args.experiment)
    else:
        if not args.configs or len(args.configs) < 2:
            raise UsageError("compare needs --configs A.yaml B.yaml (two or more), or --experiment NAME")
        configs = [load_config(path, args.overrides) for path in args.configs]
        labels = [c.model.label for c in configs]
        if len(set(labels)) < len(labels):  # two configs of one model: name them by their files
            labels = [Path(c).stem for c in args.configs]
            labels = [f"{stem}-{i + 1}" if labels.count(stem) > 1 else stem for i, stem in enumerate(labels)]
        tracking = all(c.tracking.enabled for c in configs)
        if sequential:
            rule = Rule(10 if args.max_seeds is None else args.max_seeds, args.min_seeds, args.margin, metric=args.metric,
                        budget_minutes=args.budget)
            test_split = "test" if rule.metric in (None, "test_dice", "test_miou") and _has_test(configs) else None
            arms, outcomes = run_sequential(list(zip(labels, configs)), rule, tracking=tracking, on_event=_tell,
                                            test_split=test_split, match_cost=match_cost)
        else:
            arms = run_comparison(list(zip(labels, configs)), parse_seeds(args.seeds or ["3"]), tracking=tracking,
                                  on_event=_tell, match_cost=match_cost)
    print(table(arms, outcomes))
    print_json(summary(arms, outcomes))
    return 0


def _tell(event) -> None:
    """A comparison's progress, as text."""
    from hybridunet.comparison import Looked, describe

    if not isinstance(event, Looked):  # compare and demo print the rule's outcome once, in the table
        say(describe(event))


def _has_test(configs) -> bool:
    """Whether every config's data has a held-out test split (the default decider then)."""
    return all(any((Path(c.data.root) / "test").glob("*")) for c in configs)


def cmd_tune(args: argparse.Namespace) -> int:
    """Run or resume an Optuna study; the last stdout line is the study's result JSON."""
    from hybridunet.config import load_config
    from hybridunet.errors import UsageError
    from hybridunet.tuning import confirm_best, load_search_space, study_dir, study_report, tune

    move_overrides(args, "objectives")

    base = load_config(args.config, args.overrides)
    space = load_search_space(args.search, base)
    study = tune(base, space, args.trials, storage=args.storage, study_name=args.study,
                 jobs=args.jobs, timeout=args.timeout, heartbeat=args.heartbeat, seeds_per_trial=args.seeds_per_trial,
                 objectives=tuple(args.objectives))
    report = study_report(study)
    print(f"study {report['study']}: {report['trials_finished']} finished trials "
          f"({report['trials_pruned']} pruned); best val Dice {report['best_value']} "
          f"with {report['best_params']}; ready config: {study_dir(args.study) / 'best.yaml'}")
    if "pareto" in report:
        from hybridunet.tuning.study import pareto_table

        print(f"Pareto front ({', '.join(args.objectives)}; ready configs in {study_dir(args.study) / 'pareto'}):")
        print(pareto_table(study))
    if report["importances"]:
        from hybridunet.tuning.study import importance_evaluator

        method = importance_evaluator()[0]
        for name, scores in report["importances"].items():
            print(f"importance for {name} ({method}): " + ", ".join(f"{k} {v:.2f}" for k, v in scores.items()))
    if args.confirm:
        if report["best_trial"] is None:
            raise UsageError(f"--confirm: study {args.study} has no complete trial to confirm")
        print(f"confirming: the best trial's config against the starting config, seeds 0, 1, ... "
              f"until decided (at most {args.confirm_max_seeds})", flush=True)
        from hybridunet.comparison import line

        outcome = confirm_best(base, study, args.confirm_max_seeds, on_event=_tell)
        print(line(outcome))
        report["confirm"] = outcome.as_dict()
    print_json(report)
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    """The main job: synthetic data, UNet vs Hybrid UNet over seeds, tracked in MLflow."""
    from hybridunet.demo import run_demo

    seeds = parse_seeds(args.seeds) if args.seeds else None
    run_demo(seeds=seeds, tracking=not args.no_tracking, max_seeds=args.max_seeds, budget_minutes=args.budget,
             match_cost=args.match_cost)
    return 0


def add_commands(commands: Subcommands) -> None:
    compare = commands.add_parser("compare", help="train configs over seeds and test the difference")
    compare.add_argument("--configs", nargs="+", metavar="CONFIG",
                         help="two or more recipe names or experiment YAMLs")
    compare.add_argument("--seeds", nargs="+", metavar="K", help=f"{SEEDS_HELP} (default 3)")
    compare.add_argument("--max-seeds", type=int, metavar="N",
                         help="sequential: add seeds 0, 1, ... until every pair is decided, at most N")
    compare.add_argument("--min-seeds", type=int,
                         help="sequential: the first look (default: by cap, 4 at 10; `hybridunet plan` shows the design)")
    compare.add_argument("--margin", type=float, default=0.01,
                         help="sequential: a difference this small is negligible (equivalence; default 0.01)")
    compare.add_argument("--budget", type=float, metavar="MINUTES",
                         help="sequential: start no seed that would pass this much training time (cap 10 seeds "
                              "unless --max-seeds)")
    compare.add_argument("--metric", choices=METRICS,
                         help="sequential: what decides (default: test_dice where the data has test/, else dice)")
    compare.add_argument("--match-cost", default="none", metavar="none|flops|time",
                         help="give the cheaper config more steps so every config spends the same training FLOPs "
                              "(flops) or seconds on this machine (time, timed at the start); default none")
    compare.add_argument("--experiment", help="instead: compare finished runs of this MLflow experiment by label")
    compare.add_argument("overrides", nargs="*", metavar="key=value", help="overrides applied to every config")
    compare.set_defaults(func=cmd_compare)

    tune = commands.add_parser("tune", help="Optuna study over a YAML search space (resumable)")
    tune.add_argument("--config", required=True, help="the base config: a recipe name or an experiment YAML")
    tune.add_argument("--search", required=True, help="search space YAML, e.g. experiments/search/recipe.yaml")
    tune.add_argument("--trials", type=positive, required=True, help="finished trials the study should hold in total")
    tune.add_argument("--storage", default="sqlite:///optuna.db", help="Optuna RDB URL (default sqlite:///optuna.db)")
    tune.add_argument("--study", default="hybridunet", help="study name (default hybridunet)")
    tune.add_argument("--jobs", type=positive, default=1, help="trials at once in this process (threads)")
    tune.add_argument("--timeout", type=float, help="stop starting trials after this many seconds")
    tune.add_argument("--heartbeat", type=float, default=30,
                      help="seconds between a trial's heartbeats; a trial silent for 3 of them is failed and rerun")
    tune.add_argument("--seeds-per-trial", type=positive, default=1, metavar="K",
                      help="score a trial by its mean over K seeds (pruned seed by seed; default 1)")
    tune.add_argument("--confirm", action="store_true",
                      help="then train the best config against the starting one until the stopping rule decides")
    tune.add_argument("--confirm-max-seeds", type=positive, default=10, metavar="N",
                      help="with --confirm: the rule's cap (default 10)")
    tune.add_argument("--objectives", nargs="+", default=["val_dice"], metavar="NAME",
                      help="val_dice, then params and/or latency (ms per image): a multi-objective study with its "
                           "Pareto front (unpruned)")
    tune.add_argument("overrides", nargs="*", metavar="key=value", help="overrides of the base config")
    tune.set_defaults(func=cmd_tune)

    demo = commands.add_parser("demo", help="the main job on synthetic data: unet vs the best hybrid preset")
    demo.add_argument("--seeds", nargs="+", metavar="K", help=f"exactly these seeds instead of the stopping rule: {SEEDS_HELP}")
    demo.add_argument("--max-seeds", type=positive, default=5,
                      help="the stopping rule's cap in seeds (default 5); the answer depends on no clock")
    demo.add_argument("--budget", type=float, metavar="MINUTES",
                      help="also start no seed that would pass this much training: a budget can stop the demo "
                           "undecided, and then its answer depends on the machine's speed (default: none)")
    demo.add_argument("--match-cost", default="none", metavar="none|flops|time",
                      help="unet trains longer so both arms spend the same FLOPs or seconds (default none: equal epochs)")
    demo.add_argument("--no-tracking", action="store_true", help="do not log to MLflow")
    demo.set_defaults(func=cmd_demo)
