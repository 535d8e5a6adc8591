"""Commands that list and inspect: recipes, models, data synth / show / stats."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from hybridunet.cli.args import Subcommands, count, positive


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


def add_commands(commands: Subcommands) -> None:
    recipes = commands.add_parser("recipes", help="list the recipes that ship with the package (for --config NAME)")
    recipes.add_argument("--show", metavar="NAME", help="print one recipe's YAML")
    recipes.set_defaults(func=cmd_recipes)
    models = commands.add_parser("models", help="list models with parameters and GFLOPs")
    models.add_argument("--filter", default="*", help="glob on model names, e.g. 'smp_*'")
    models.add_argument("--size", type=int, default=256, help="input height and width (default 256)")
    models.add_argument("--num-classes", type=int, default=19)
    models.set_defaults(func=cmd_models)

    data = Subcommands(commands.add_parser("data", help="generate or inspect data sets").add_subparsers(
        dest="data_command", required=True, metavar="ACTION"), commands.common)
    synth = data.add_parser("synth", help="write synthetic street scenes in the Kaggle pairs layout")
    synth.add_argument("--out", required=True, help="output folder (gets train/, val/, test/ and synthetic.json)")
    synth.add_argument("--train", type=count, default=200, help="training pairs (default 200)")
    synth.add_argument("--val", type=count, default=50, help="validation pairs (default 50)")
    synth.add_argument("--test", type=count, default=0, help="held-out test pairs (default 0: no test split)")
    synth.add_argument("--size", type=positive, default=256, help="photo height and width (default 256)")
    synth.add_argument("--workers", type=positive, default=1, help="processes (the files are the same; default 1)")
    synth.add_argument("--seed", type=int, default=0)
    synth.add_argument("--labels", action="store_true", help="also write exact trainId masks to {split}_labels/")
    synth.add_argument("--overwrite", action="store_true", help="replace data already in --out")
    synth.set_defaults(func=cmd_data_synth)

    show = data.add_parser("show", help="save a grid of sample images and colour masks")
    show.add_argument("--data", required=True, help="data folder (Kaggle pairs or official Cityscapes)")
    show.add_argument("--split", default="train")
    show.add_argument("--n", type=positive, default=8, help="samples to show (default 8)")
    show.add_argument("--seed", type=int, default=0, help="which samples are drawn")
    show.add_argument("--out", default="grid.png", help="PNG file to write (default grid.png)")
    show.set_defaults(func=cmd_data_show)

    stats = data.add_parser("stats", help="class shares of a split, beside Cityscapes' (last line: JSON)")
    stats.add_argument("--data", required=True, help="data folder (Kaggle pairs, official Cityscapes or folder data)")
    stats.add_argument("--split", default="train")
    stats.add_argument("--format", default="auto", choices=["auto", "pairs", "cityscapes", "folder"])
    stats.add_argument("--num-classes", type=positive, help="folder data without a classes.txt")
    stats.add_argument("--out", help="also draw a bar chart to this PNG")
    stats.set_defaults(func=cmd_data_stats)
