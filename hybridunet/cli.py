"""The `hybridunet` command line."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence

from hybridunet import __version__


def cmd_models(args: argparse.Namespace) -> int:
    """Print every registered model with its parameters and GFLOPs for one image."""
    from hybridunet.models import create_model, list_models
    from hybridunet.models.summary import count_flops, count_params

    size = (3, args.size, args.size)
    rows = []
    for name in list_models(args.filter):
        model = create_model(name, num_classes=args.num_classes)
        rows.append((name, count_params(model) / 1e6, count_flops(model, size) / 1e9))
    print(f"{'model':<20} {'params (M)':>11} {'GFLOPs @ ' + 'x'.join(map(str, size)):>18}")
    for name, params, gflops in rows:
        print(f"{name:<20} {params:>11.2f} {gflops:>18.2f}")
    return 0


def cmd_data_synth(args: argparse.Namespace) -> int:
    """Write synthetic street scenes in the Kaggle pairs layout."""
    import time

    from hybridunet.data.synthetic import write_split

    out = Path(args.out)
    splits = {"train": args.train, "val": args.val}
    for split in splits:
        existing = [*(out / split).glob("*.jpg"), *(out / f"{split}_labels").glob("*.png")]
        if existing and not args.overwrite:
            raise UsageError(f"{out / split} already holds data ({len(existing)} files); pass --overwrite to replace it")
        for path in existing:
            path.unlink()
    start = time.perf_counter()
    for split, count in splits.items():
        write_split(out, split, count, size=args.size, seed=args.seed, labels=args.labels)
    elapsed = time.perf_counter() - start
    total = sum(splits.values())
    print(f"wrote {args.train} train + {args.val} val pairs of {args.size}x{2 * args.size} to {out} "
          f"in {elapsed:.1f}s ({total / max(elapsed, 1e-9):.0f} pairs/s)")
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


class UsageError(ValueError):
    """A command-line request that cannot be honoured as given."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hybridunet", description=__doc__)
    parser.add_argument("--version", action="version", version=f"hybridunet {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    models = commands.add_parser("models", help="list models with parameters and GFLOPs")
    models.add_argument("--filter", default="*", help="glob on model names, e.g. 'smp_*'")
    models.add_argument("--size", type=int, default=256, help="input height and width (default 256)")
    models.add_argument("--num-classes", type=int, default=19)
    models.set_defaults(func=cmd_models)

    data = commands.add_parser("data", help="generate or inspect data sets").add_subparsers(
        dest="data_command", required=True, metavar="ACTION"
    )
    synth = data.add_parser("synth", help="write synthetic street scenes in the Kaggle pairs layout")
    synth.add_argument("--out", required=True, help="output folder (gets train/ and val/)")
    synth.add_argument("--train", type=_count, default=200, help="training pairs (default 200)")
    synth.add_argument("--val", type=_count, default=50, help="validation pairs (default 50)")
    synth.add_argument("--size", type=_positive, default=256, help="photo height and width (default 256)")
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
    return parser


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
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, KeyError, FileNotFoundError) as err:  # bad input: say what, no traceback
        message = err.args[0] if isinstance(err, KeyError) and err.args else err
        print(f"hybridunet {args.command}: error: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
