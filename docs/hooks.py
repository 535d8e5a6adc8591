"""MkDocs hooks: the pages' tables that come from the code, so they cannot drift from it.

A page asks for one with a comment on a line of its own: `<!-- generated: presets -->` (the
presets as `hybridunet.models.PRESETS` holds them), `<!-- generated: parts -->` (every
registered part, per registry) or `<!-- generated: cli -->` (every command and flag, from
the argparse parser the `hybridunet` command runs) or `<!-- generated: plan -->` (what
`hybridunet plan --max-seeds 10` prints). An unknown name fails the build.
"""

from __future__ import annotations

import argparse
import functools
import inspect
import re
from collections.abc import Callable, Iterator
from typing import Any

MARKER = re.compile(r"^<!-- generated: (?P<name>[a-z_]+) -->$", re.MULTILINE)


def on_page_markdown(markdown: str, page: Any, **_: Any) -> str:
    def expand(found: re.Match[str]) -> str:
        name = found["name"]
        if name not in TABLES:
            raise ValueError(f"{page.file.src_uri}: unknown generated table {name!r}; known: {', '.join(TABLES)}")
        return TABLES[name]()

    return MARKER.sub(expand, markdown)


def cell(text: object) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def presets_table() -> str:
    from hybridunet.models import PRESETS
    from hybridunet.models.presets import PART_KEYS

    rows = ["| | " + " | ".join(f"`{preset.name}`" for preset in PRESETS) + " |", "|---" * (len(PRESETS) + 1) + "|"]
    for key in PART_KEYS:
        rows.append(f"| `{key}` | " + " | ".join(f"`{preset.parts[key]}`" for preset in PRESETS) + " |")
    rows.append("| what it is | " + " | ".join(cell(preset.description) for preset in PRESETS) + " |")
    rows.append("| reference | " + " | ".join(cell(preset.reference) for preset in PRESETS) + " |")
    return "\n".join(rows)


def first_line(builder: Callable[..., Any]) -> str:
    if isinstance(builder, functools.partial):  # a part registered as another with keywords set
        keywords = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v!r}" for k, v in builder.keywords.items())
        return f"`{builder.func.__name__}` with `{keywords}`: " + first_line(builder.func)
    doc = inspect.getdoc(builder) or ""
    return doc.split("\n\n")[0].replace("\n", " ")


def parts_table() -> str:
    from hybridunet.nn import BLOCKS, BOTTLENECKS, SKIPS, UPSAMPLERS

    slots = {"`encoder_block`, `decoder_block`": ("hybridunet.nn.BLOCKS", BLOCKS),
             "`skip`": ("hybridunet.nn.SKIPS", SKIPS),
             "`bottleneck`": ("hybridunet.nn.BOTTLENECKS", BOTTLENECKS),
             "`upsampler`": ("hybridunet.nn.UPSAMPLERS", UPSAMPLERS)}
    rows = ["| slot | registry | name | what it is |", "|---|---|---|---|"]
    for slot, (path, registry) in slots.items():
        for name in registry.names():
            rows.append(f"| {slot} | `{path}` | `{name}` | {cell(first_line(registry.get(name)))} |")
    return "\n".join(rows)


def subcommands(parser: argparse.ArgumentParser, prefix: str) -> Iterator[tuple[str, str, argparse.ArgumentParser]]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {choice.dest: choice.help for choice in action._choices_actions}
            for name, sub in action.choices.items():
                yield f"{prefix} {name}", helps.get(name) or "", sub
                yield from subcommands(sub, f"{prefix} {name}")


def arguments(parser: argparse.ArgumentParser) -> str:
    rows = []
    for action in parser._actions:
        if action.help == argparse.SUPPRESS or isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)):
            continue
        names = ", ".join(f"`{flag}`" for flag in action.option_strings) or f"`{action.metavar or action.dest}`"
        if action.option_strings and action.nargs != 0:
            names += f" `{action.metavar or action.dest.upper()}`"
        default = action.default
        unset = default is None or default is False or default == argparse.SUPPRESS or default == []  # 0 is a default
        shown = "" if unset or action.nargs == 0 else f"`{default}`"
        help_text = (action.help or "") % {**vars(action), "prog": parser.prog}  # as argparse formats it
        rows.append(f"| {names} | {cell(help_text)} | {cell(shown)} |")
    if not rows:
        return ""
    return "\n".join(["| argument | what it does | default |", "|---|---|---|", *rows])


def cli_reference() -> str:
    from hybridunet.cli import build_parser

    parser = build_parser()
    out = [cell(parser.description), "", "```", parser.format_usage().strip(), "```", "", arguments(parser)]
    for command, summary, sub in subcommands(parser, "hybridunet"):
        sub.prog = command
        out += ["", f"## `{command}`", "", (sub.description or summary or "").strip(), "",
                "```", sub.format_usage().strip(), "```", "", arguments(sub)]
    return "\n".join(out)


def plan_output() -> str:
    import contextlib
    import io

    from hybridunet.cli import main

    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        status = main(["plan", "--max-seeds", "10"])
    lines = out.getvalue().splitlines()[:-1]  # the last line is the JSON for scripts
    if status != 0 or not lines:
        raise RuntimeError(f"`hybridunet plan --max-seeds 10` exited {status} with {out.getvalue()!r}")
    return "\n".join(["```", "$ hybridunet plan --max-seeds 10", *lines, "```"])


TABLES: dict[str, Callable[[], str]] = {"presets": presets_table, "parts": parts_table, "cli": cli_reference, "plan": plan_output}
