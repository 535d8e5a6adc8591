"""The `hybridunet` command line."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from hybridunet import __version__  # the package's __init__ imports nothing heavy: --help answers at once


def cmd_recipes(args: argparse.Namespace) -> int:
    """Print the recipes that ship with the package: `--config NAME` takes any of them."""
    from hybridunet.recipes import description, names, recipe_path

    if args.show:
        print(recipe_path(args.show).read_text(), end="")
        return 0
    width = max(len(name) for name in names()) + 2
    for name in names():
        print(f"{name:<{width}}{description(name)}")
    print("\n`--config NAME` (train, tune, compare) takes a name; a YAML may start from one with "
          "`base: NAME`. `hybridunet recipes --show NAME` prints one.")
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    """Print every registered model with its parameters and GFLOPs for one image."""
    from hybridunet.models import MODELS, create_model, list_models
    from hybridunet.models.summary import count_flops, count_params

    size = (3, args.size, args.size)
    rows = []
    for name in list_models(args.filter):
        model = create_model(name, num_classes=args.num_classes)
        info = MODELS.info(name)  # a ModelInfo for the built-ins; None for a user's own builder
        description = info.description if info is not None else ""
        rows.append((name, count_params(model) / 1e6, count_flops(model, size) / 1e9, description))
    width = max([20, *(len(r[0]) + 1 for r in rows)])
    print(f"{'model':<{width}} {'params (M)':>11} {'GFLOPs @ ' + 'x'.join(map(str, size)):>18}  description")
    for name, params, gflops, description in rows:
        print(f"{name:<{width}} {params:>11.2f} {gflops:>18.2f}  {description}")
    return 0


def cmd_data_synth(args: argparse.Namespace) -> int:
    """Write synthetic street scenes in the Kaggle pairs layout."""
    import time

    from hybridunet.data.synthetic import synthesize

    start = time.perf_counter()
    out = synthesize(args.out, train=args.train, val=args.val, size=args.size, seed=args.seed, labels=args.labels,
                     overwrite=args.overwrite, test=args.test, workers=args.workers)
    elapsed = time.perf_counter() - start
    total = args.train + args.val + args.test
    test = f" + {args.test} test" if args.test else ""
    print(f"wrote {args.train} train + {args.val} val{test} pairs of {args.size}x{2 * args.size} to {out} "
          f"in {elapsed:.1f}s ({total / max(elapsed, 1e-9):.0f} pairs/s, {args.workers} process"
          f"{'es' if args.workers > 1 else ''})")
    return 0


def cmd_data_show(args: argparse.Namespace) -> int:
    """Save a grid of images and their colour masks."""
    import numpy as np

    from hybridunet.data import open_dataset
    from hybridunet.viz import panel_grid

    dataset = open_dataset(args.data, args.split)
    picks = np.random.default_rng(args.seed).choice(len(dataset), min(args.n, len(dataset)), replace=False)
    rows = [dataset.load(int(i)) for i in sorted(picks)]
    names = [Path(dataset.name(int(i))).name for i in sorted(picks)]
    out = panel_grid(rows, ["image", "mask"], args.out, row_labels=names)
    print(f"wrote {out} ({len(rows)} samples of {dataset.split} from {args.data})")
    return 0


def cmd_data_stats(args: argparse.Namespace) -> int:
    """Per-class pixel and image shares of a split, the Cityscapes reference beside 19-class data."""
    from hybridunet.data import CLASS_NAMES, folder_class_names, open_dataset, resolve_format
    from hybridunet.data.stats import CITYSCAPES_SHARE, class_stats, stats_figure, stats_table

    format = resolve_format(args.data, args.format)
    if format == "folder":
        names = folder_class_names(args.data, args.num_classes)
        dataset = open_dataset(args.data, args.split, format=format, num_classes=len(names))
    else:
        names = list(CLASS_NAMES)
        dataset = open_dataset(args.data, args.split, format=format)
    stats = class_stats(dataset, names)
    reference = CITYSCAPES_SHARE if names == list(CLASS_NAMES) else None
    print(stats_table(stats, reference))
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        stats_figure(stats, reference).savefig(args.out)
        print(f"wrote {args.out}")
    print(json.dumps({"data": str(args.data), "split": args.split, **stats.as_dict()}))
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    """Train from a YAML config; the last stdout line is the metrics JSON."""
    from hybridunet.config import load_config
    from hybridunet.engine import fit

    overrides = list(args.overrides) + (["train.overwrite=true"] if args.overwrite else [])
    config = load_config(args.config, overrides)
    result = fit(config, callbacks=_callbacks(config), resume=args.resume)
    if int(os.environ.get("RANK", "0")) == 0:  # under torchrun, one metrics line
        print(json.dumps(json_safe(result)))
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    """Compare configs over seeds (or finished runs of an MLflow experiment)."""
    from hybridunet.compare import Rule, arms_from_mlflow, run_comparison, run_sequential, summary, table
    from hybridunet.config import load_config
    from hybridunet.errors import UsageError
    from hybridunet.results import parse_seeds

    _move_overrides(args, "configs", "seeds")
    sequential = args.max_seeds is not None or args.budget is not None
    decisions = []
    if sequential and args.seeds:
        raise UsageError("--seeds fixes the seeds; --max-seeds and --budget add seeds until decided: give one of them")
    if args.experiment:
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
            rule = Rule(args.max_seeds or 10, args.min_seeds, args.margin, metric=args.metric,
                        budget_minutes=args.budget)
            test_split = "test" if rule.metric in (None, "test_dice", "test_miou") and _has_test(configs) else None
            arms, decisions = run_sequential(list(zip(labels, configs)), rule, tracking=tracking, progress=_say,
                                             test_split=test_split)
        else:
            arms = run_comparison(list(zip(labels, configs)), parse_seeds(args.seeds or ["3"]), tracking=tracking,
                                  progress=_say)
    print(table(arms, decisions))
    print(json.dumps(json_safe(summary(arms, decisions))))
    return 0


def _say(line: str) -> None:
    """Progress lines of long commands, shown as they come."""
    print(line, flush=True)


def _has_test(configs) -> bool:
    """Whether every config's data has a held-out test split (the default decider then)."""
    return all(any((Path(c.data.root) / "test").glob("*")) for c in configs)


def _move_overrides(args: argparse.Namespace, *flags: str) -> None:
    """nargs="+" takes the overrides that follow `--configs a.yaml b.yaml` or `--seeds 3`: move them back."""
    for flag in flags:
        values = getattr(args, flag) or []
        args.overrides += [v for v in values if "=" in v]
        setattr(args, flag, [v for v in values if "=" not in v])


def cmd_tune(args: argparse.Namespace) -> int:
    """Run or resume an Optuna study; the last stdout line is the study's result JSON."""
    from hybridunet.config import load_config
    from hybridunet.errors import UsageError
    from hybridunet.tuning import confirm_best, load_search_space, study_dir, study_report, tune

    _move_overrides(args, "objectives")

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
        decision = confirm_best(base, study, args.confirm_max_seeds, progress=_say)
        print(decision.line())
        report["confirm"] = decision.as_dict()
    print(json.dumps(json_safe(report)))
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    """The main job: synthetic data, UNet vs Hybrid UNet over seeds, tracked in MLflow."""
    from hybridunet.demo import run_demo

    run_demo(seeds=args.seeds, tracking=not args.no_tracking, max_seeds=args.max_seeds, budget_minutes=args.budget)
    return 0


def _callbacks(config) -> list:
    if not config.tracking.enabled or int(os.environ.get("RANK", "0")) != 0:  # under torchrun, rank 0 logs
        return []
    from hybridunet.tracking import MLflowCallback

    return [MLflowCallback(config.tracking)]


def cmd_eval(args: argparse.Namespace) -> int:
    """Evaluate a checkpoint on a split; the last stdout line is the metrics JSON."""
    from hybridunet.engine import evaluate_checkpoint

    if args.official:
        return _official_eval(args)
    metrics = evaluate_checkpoint(args.checkpoint, args.data, args.split, args.batch_size, args.device)
    print(json.dumps(json_safe(metrics)))
    return 0


def _official_eval(args: argparse.Namespace) -> int:
    from hybridunet import cityscapes_eval as official
    from hybridunet.errors import UsageError

    if not args.data:
        raise UsageError("--official needs --data: the official Cityscapes root (leftImg8bit/ and gtFine/)")
    pairs = official.write_predictions(args.checkpoint, args.data, args.split, args.official, args.device,
                                       args.overwrite)
    result = official.official_scores(pairs, args.official)
    print(official.report(result))
    ours = official.own_miou(pairs)
    print(f"\nour mIoU on the same {len(pairs)} labelId PNGs: {ours:.6f} (cityscapesscripts: "
          f"{result['averageScoreClasses']:.6f})")
    print(json.dumps(json_safe({"images": len(pairs), "miou_official": result["averageScoreClasses"],
                                "category_iou": result["averageScoreCategories"],
                                "iiou": result["averageScoreInstClasses"] if result["instance_level"] else None,
                                "miou_ours": ours, "predictions": args.official})))
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    """Write colour masks and overlays for an image or a folder of images."""
    from hybridunet.prediction import open_predictor, predict_files, prediction_targets

    prediction_targets(args.input, args.out, args.overwrite)  # a bad input or output fails before the model loads
    predictor = open_predictor(checkpoint=args.checkpoint, onnx_model=args.model, device=args.device)
    written = predict_files(predictor, args.input, args.out, args.size, args.overwrite, args.tile, args.overlap,
                            args.blend)
    print(f"wrote masks and overlays of {len(written)} images to {args.out}")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    """Write the checkpoint's fp32 eval model as ONNX with its sidecar JSON."""
    from hybridunet.export import export_onnx, sidecar_path

    out = export_onnx(args.checkpoint, args.out, args.opset, args.overwrite)
    print(f"wrote {out} and {sidecar_path(out).name} (opset {args.opset}; dynamic batch, height and width)")
    if args.mlflow_run:
        from hybridunet.tracking.models import log_onnx_model
        from hybridunet.tracking.store import tracking_uri

        model = log_onnx_model(args.mlflow_run, out, args.registered_model, tracking_uri())
        print(f"logged it to MLflow run {args.mlflow_run} as {model.model_uri} (ONNX flavour)")
    return 0


def json_safe(value):
    from hybridunet.engine.run import json_safe as convert

    return convert(value)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hybridunet", description=__doc__)
    parser.add_argument("--version", action="version", version=f"hybridunet {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks for bad input too")
    common = argparse.ArgumentParser(add_help=False)  # --debug also after the command
    common.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    commands = _Subcommands(parser.add_subparsers(dest="command", required=True, metavar="COMMAND"), common)

    recipes = commands.add_parser("recipes", help="list the recipes that ship with the package (for --config NAME)")
    recipes.add_argument("--show", metavar="NAME", help="print one recipe's YAML")
    recipes.set_defaults(func=cmd_recipes)
    models = commands.add_parser("models", help="list models with parameters and GFLOPs")
    models.add_argument("--filter", default="*", help="glob on model names, e.g. 'smp_*'")
    models.add_argument("--size", type=int, default=256, help="input height and width (default 256)")
    models.add_argument("--num-classes", type=int, default=19)
    models.set_defaults(func=cmd_models)

    data = _Subcommands(commands.add_parser("data", help="generate or inspect data sets").add_subparsers(
        dest="data_command", required=True, metavar="ACTION"), common)
    synth = data.add_parser("synth", help="write synthetic street scenes in the Kaggle pairs layout")
    synth.add_argument("--out", required=True, help="output folder (gets train/, val/, test/ and synthetic.json)")
    synth.add_argument("--train", type=_count, default=200, help="training pairs (default 200)")
    synth.add_argument("--val", type=_count, default=50, help="validation pairs (default 50)")
    synth.add_argument("--test", type=_count, default=0, help="held-out test pairs (default 0: no test split)")
    synth.add_argument("--size", type=_positive, default=256, help="photo height and width (default 256)")
    synth.add_argument("--workers", type=_positive, default=1, help="processes (the files are the same; default 1)")
    synth.add_argument("--seed", type=int, default=0)
    synth.add_argument("--labels", action="store_true", help="also write exact trainId masks to {split}_labels/")
    synth.add_argument("--overwrite", action="store_true", help="replace data already in --out")
    synth.set_defaults(func=cmd_data_synth)

    show = data.add_parser("show", help="save a grid of sample images and colour masks")
    show.add_argument("--data", required=True, help="data folder (Kaggle pairs or official Cityscapes)")
    show.add_argument("--split", default="train")
    show.add_argument("--n", type=_positive, default=8, help="samples to show (default 8)")
    show.add_argument("--seed", type=int, default=0, help="which samples are drawn")
    show.add_argument("--out", default="grid.png", help="PNG file to write (default grid.png)")
    show.set_defaults(func=cmd_data_show)

    stats = data.add_parser("stats", help="class shares of a split, beside Cityscapes' (last line: JSON)")
    stats.add_argument("--data", required=True, help="data folder (Kaggle pairs, official Cityscapes or folder data)")
    stats.add_argument("--split", default="train")
    stats.add_argument("--format", default="auto", choices=["auto", "pairs", "cityscapes", "folder"])
    stats.add_argument("--num-classes", type=_positive, help="folder data without a classes.txt")
    stats.add_argument("--out", help="also draw a bar chart to this PNG")
    stats.set_defaults(func=cmd_data_stats)

    train = commands.add_parser("train", help="train from a YAML config (last line: metrics JSON)")
    train.add_argument("--config", required=True,
                       help="a recipe name (`hybridunet recipes`: unet, tiny, ...) or an experiment YAML")
    train.add_argument("--resume", action="store_true", help="continue from the last checkpoint in the output folder")
    train.add_argument("--overwrite", action="store_true", help="replace an existing output folder's checkpoints")
    train.add_argument("overrides", nargs="*", metavar="key=value", help="dotted overrides, e.g. train.epochs=2")
    train.set_defaults(func=cmd_train)

    evaluate = commands.add_parser("eval", help="evaluate a checkpoint (last line: metrics JSON)")
    evaluate.add_argument("--checkpoint", required=True, help="a .safetensors checkpoint (e.g. outputs/RUN/best.safetensors)")
    evaluate.add_argument("--data", help="data folder (default: the one it was trained on)")
    evaluate.add_argument("--split", default="val")
    evaluate.add_argument("--batch-size", type=_positive, help="default: the training run's validation batch size")
    evaluate.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    evaluate.add_argument("--official", metavar="OUT",
                          help="official Cityscapes data: write labelId PNGs to OUT and score them with cityscapesscripts")
    evaluate.add_argument("--overwrite", action="store_true", help="with --official: replace predictions in OUT")
    evaluate.set_defaults(func=cmd_eval)

    pred = commands.add_parser("predict", help="write colour masks and overlays for images")
    which = pred.add_mutually_exclusive_group(required=True)
    which.add_argument("--checkpoint", help="a .safetensors checkpoint (PyTorch)")
    which.add_argument("--model", help="a .onnx file from `hybridunet export` (onnxruntime; its .onnx.json beside it)")
    pred.add_argument("--input", required=True, help="an image or a folder of images")
    pred.add_argument("--out", required=True, help="output folder")
    pred.add_argument("--size", type=_positive, help="run the model at SIZE x SIZE and resize back (default: as is)")
    pred.add_argument("--tile", type=_positive, help="predict in TILE x TILE windows (after resizing as training did)")
    pred.add_argument("--overlap", type=float, default=0.25, help="tiles' overlap, a fraction in [0, 1) (default 0.25)")
    pred.add_argument("--blend", default="gaussian", choices=["gaussian", "linear"],
                      help="how overlapping tiles are weighted (default gaussian)")
    pred.add_argument("--overwrite", action="store_true", help="replace existing output files")
    pred.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    pred.set_defaults(func=cmd_predict)

    export = commands.add_parser("export", help="write a trained model as ONNX (dynamic batch, height, width)")
    export.add_argument("--checkpoint", required=True)
    export.add_argument("--format", default="onnx", choices=["onnx"])
    export.add_argument("--out", help="the .onnx file (default: beside the checkpoint); a .onnx.json sidecar goes beside it")
    export.add_argument("--opset", type=int, default=17, help="ONNX opset (default 17)")
    export.add_argument("--overwrite", action="store_true", help="replace an existing export")
    export.add_argument("--mlflow-run", metavar="RUN_ID", help="also log it to this MLflow run (ONNX flavour)")
    export.add_argument("--registered-model", metavar="NAME", help="with --mlflow-run: register it under NAME")
    export.set_defaults(func=cmd_export)

    compare = commands.add_parser("compare", help="train configs over seeds and test the difference")
    compare.add_argument("--configs", nargs="+", metavar="CONFIG",
                         help="two or more recipe names or experiment YAMLs")
    compare.add_argument("--seeds", nargs="+", metavar="K",
                         help="K: seeds 0..K-1 for every config (default 3); A:B: seeds A..B-1; "
                              "several numbers: those seeds")
    compare.add_argument("--max-seeds", type=_positive, metavar="N",
                         help="sequential: add seeds 0, 1, ... until every pair is decided, at most N")
    compare.add_argument("--min-seeds", type=_positive, default=3, help="sequential: the first look (default 3)")
    compare.add_argument("--margin", type=float, default=0.01,
                         help="sequential: a difference this small is negligible (equivalence; default 0.01)")
    compare.add_argument("--budget", type=float, metavar="MINUTES",
                         help="sequential: start no seed that would pass this much training time (cap 10 seeds "
                              "unless --max-seeds)")
    compare.add_argument("--metric", choices=["dice", "miou", "test_dice", "test_miou"],
                         help="sequential: what decides (default: test_dice where the data has test/, else dice)")
    compare.add_argument("--experiment", help="instead: compare finished runs of this MLflow experiment by label")
    compare.add_argument("overrides", nargs="*", metavar="key=value", help="overrides applied to every config")
    compare.set_defaults(func=cmd_compare)

    tune = commands.add_parser("tune", help="Optuna study over a YAML search space (resumable)")
    tune.add_argument("--config", required=True, help="the base config: a recipe name or an experiment YAML")
    tune.add_argument("--search", required=True, help="search space YAML, e.g. experiments/search/recipe.yaml")
    tune.add_argument("--trials", type=_positive, required=True, help="finished trials the study should hold in total")
    tune.add_argument("--storage", default="sqlite:///optuna.db", help="Optuna RDB URL (default sqlite:///optuna.db)")
    tune.add_argument("--study", default="hybridunet", help="study name (default hybridunet)")
    tune.add_argument("--jobs", type=_positive, default=1, help="trials at once in this process (threads)")
    tune.add_argument("--timeout", type=float, help="stop starting trials after this many seconds")
    tune.add_argument("--heartbeat", type=float, default=30,
                      help="seconds between a trial's heartbeats; a trial silent for 3 of them is failed and rerun")
    tune.add_argument("--seeds-per-trial", type=_positive, default=1, metavar="K",
                      help="score a trial by its mean over K seeds (pruned seed by seed; default 1)")
    tune.add_argument("--confirm", action="store_true",
                      help="then train the best config against the starting one until the stopping rule decides")
    tune.add_argument("--confirm-max-seeds", type=_positive, default=10, metavar="N",
                      help="with --confirm: the rule's cap (default 10)")
    tune.add_argument("--objectives", nargs="+", default=["val_dice"], metavar="NAME",
                      help="val_dice, then params and/or latency (ms per image): a multi-objective study with its "
                           "Pareto front (unpruned)")
    tune.add_argument("overrides", nargs="*", metavar="key=value", help="overrides of the base config")
    tune.set_defaults(func=cmd_tune)

    demo = commands.add_parser("demo", help="the main job on synthetic data: unet vs the best hybrid preset")
    demo.add_argument("--seeds", type=_positive, help="exactly seeds 0..K-1 instead of the stopping rule")
    demo.add_argument("--max-seeds", type=_positive, default=5,
                      help="the stopping rule's cap (default 5: what the budget buys on two AMD EPYC cores)")
    demo.add_argument("--budget", type=float, default=5, metavar="MINUTES",
                      help="start no seed that would pass this much training (default 5)")
    demo.add_argument("--no-tracking", action="store_true", help="do not log to MLflow")
    demo.set_defaults(func=cmd_demo)
    return parser


class _Subcommands:
    """add_parser that gives every command the shared flags (`--debug`)."""

    def __init__(self, action, common: argparse.ArgumentParser) -> None:
        self.action, self.common = action, common

    def add_parser(self, name: str, **kwargs) -> argparse.ArgumentParser:
        return self.action.add_parser(name, parents=[self.common], **kwargs)


def _count(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a count >= 0, got {text}")
    return value


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text}")
    return value


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    # key=value overrides may stand anywhere, also after flags such as --resume
    if hasattr(args, "overrides"):
        args.overrides += [e for e in extra if "=" in e and not e.startswith("-")]
        extra = [e for e in extra if e not in args.overrides]
    if extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    from hybridunet.errors import UserError

    try:
        return args.func(args)
    except KeyboardInterrupt:
        print(f"hybridunet {args.command}: interrupted; completed epochs are kept in the run's last checkpoint "
              "(continue with --resume)", file=sys.stderr)
        return 130
    except UserError as err:  # bad input: say what in one line; anything else is a bug and shows its traceback
        if args.debug:
            raise
        print(f"hybridunet {args.command}: error: {err}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `hybridunet recipes | head`: the reader has what it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error when Python flushes
        return 141  # 128 + SIGPIPE, as a shell reports a command that a closed pipe stopped


if __name__ == "__main__":
    sys.exit(main())
