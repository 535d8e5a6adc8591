"""The `hybridunet` command line: the parser, and the commands beside the parsers they build
(info.py: recipes, models, data; runs.py: train, eval, predict, export; experiments.py:
compare, tune, demo). Heavy imports live inside the commands, so `--help` answers at once."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from hybridunet import __version__  # the package's __init__ imports nothing heavy: --help answers at once
from hybridunet.cli import experiments, info, plan, runs
from hybridunet.cli.args import Subcommands


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hybridunet", description="Train, evaluate, compare and tune UNet and "
                                     "Hybrid UNet segmentation models (Cityscapes), tracked in MLflow.")
    parser.add_argument("--version", action="version", version=f"hybridunet {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks for bad input too")
    common = argparse.ArgumentParser(add_help=False)  # --debug also after the command
    common.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    commands = Subcommands(parser.add_subparsers(dest="command", required=True, metavar="COMMAND"), common)
    for group in (info, runs, experiments, plan):
        group.add_commands(commands)
    return parser


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
