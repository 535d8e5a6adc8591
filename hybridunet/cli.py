"""The `hybridunet` command line."""

from __future__ import annotations

import argparse
import sys
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hybridunet", description=__doc__)
    parser.add_argument("--version", action="version", version=f"hybridunet {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    models = commands.add_parser("models", help="list models with parameters and GFLOPs")
    models.add_argument("--filter", default="*", help="glob on model names, e.g. 'smp_*'")
    models.add_argument("--size", type=int, default=256, help="input height and width (default 256)")
    models.add_argument("--num-classes", type=int, default=19)
    models.set_defaults(func=cmd_models)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
