"""What the commands share: argument types, the one seed syntax, overrides, progress output."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from hybridunet.errors import UsageError
from hybridunet.results import check_seeds


class Subcommands:
    """add_parser that gives every command the shared flags (`--debug`)."""

    def __init__(self, action, common: argparse.ArgumentParser) -> None:
        self.action, self.common = action, common

    def add_parser(self, name: str, **kwargs) -> argparse.ArgumentParser:
        return self.action.add_parser(name, parents=[self.common], **kwargs)


def count(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a count >= 0, got {text}")
    return value


def positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text}")
    return value


def parse_seeds(values: Sequence[str | int], flag: str = "--seeds") -> list[int]:
    """The one seed syntax of compare, demo and the quality protocol: `N` -> seeds 0..N-1,
    `A:B` -> A..B-1, several values -> those seeds (each once)."""
    text = " ".join(map(str, values))
    try:
        if not values:
            raise ValueError
        if len(values) > 1:
            seeds = [int(v) for v in values]
        else:
            start, sep, stop = str(values[0]).partition(":")
            seeds = list(range(int(start), int(stop))) if sep else list(range(int(start)))
    except ValueError:
        raise UsageError(f"{flag} {text}: expected a count N, a range A:B or several seeds") from None
    if not seeds:
        raise UsageError(f"{flag} {text}: names no seed; give a count of at least 1, a range A:B with A < B, "
                         "or the seeds themselves")
    check_seeds(seeds, f"{flag} {text}: ")
    return seeds


SEEDS_HELP = "K: seeds 0..K-1; A:B: seeds A..B-1; several numbers: those seeds"


def move_overrides(args: argparse.Namespace, *flags: str) -> None:
    """nargs="+" takes the overrides that follow `--configs a.yaml b.yaml` or `--seeds 3`: move them back."""
    for flag in flags:
        values = getattr(args, flag) or []
        args.overrides += [v for v in values if "=" in v]
        setattr(args, flag, [v for v in values if "=" not in v])


def say(line: str) -> None:
    """Progress lines of long commands, shown as they come."""
    print(line, flush=True)


def print_json(value) -> None:
    """A command's last line: strict JSON (NaN and infinities as null)."""
    import json

    from hybridunet.jsonsafe import json_safe

    print(json.dumps(json_safe(value)))
