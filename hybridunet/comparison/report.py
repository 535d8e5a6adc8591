"""A comparison as text and JSON: the table, the summary, and the one line that shows a
pair's difference with its interval (every command, caption, ablation row and benchmark
table prints it through `line`, `verdict` or `interval`)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from hybridunet.comparison.cost import WORDS
from hybridunet.comparison.events import BudgetStop, Event, Looked, OldRule, RunDone
from hybridunet.comparison.outcome import PairOutcome
from hybridunet.comparison.stats import (
    COST_KEYS,
    TRAINING_KEYS,
    all_scored_on_test,
    cost_means,
    deciding_metric,
    paired,
    paired_metrics,
    per_class,
)
from hybridunet.results import METRICS, Arm

COST_COLUMNS = (("params M", 8, ".2f"), ("GFLOPs", 7, ".2f"), ("train img/s", 11, ".1f"), ("infer img/s", 11, ".1f"))
TRAINING_COLUMNS = (("train steps", 11, ".0f"), ("train TFLOPs", 12, ".2f"), ("x steps", 7, ".2f"))


def interval(o: PairOutcome, detectable: bool = False) -> str:
    """`+0.0174 (95% CI -0.0611 .. +0.0960, paired t-test p = 0.44, n = 3)`, or with the
    rule's decision `... sequential p = 0.0061)` (at an interim look, the repeated interval
    alone: `... repeated)`): the estimate and its interval, 4 decimals."""
    low, high = o.interval
    text = f"{o.estimate:+.4f} (95% CI {low:+.4f} .. {high:+.4f}, "
    if o.decision is not None:
        old = "; the earlier Bonferroni rule" if o.method == "bonferroni" else ""
        return text + ("repeated" if o.interim else f"sequential p = {o.p:.3g}") + old + ")"
    text += f"paired t-test p = {o.p:.3g}, n = {o.n}"
    if detectable:
        text += f"; detectable at 80% power: {o.detectable:.4f}"
    return text + ")"


def verdict(o: PairOutcome, detectable: bool = True) -> str:
    """The outcome without its name: the rule's decision, interval and seeds, or the fixed
    seeds' interval."""
    if o.decision is None:
        return interval(o, detectable)
    what = f"equivalent within ±{o.margin:g}" if o.decision == "equivalent" else o.winner
    when = (f"decided at {o.n} seeds" if o.decided else
            f"at {o.n} seeds; equivalence could be shown within ±{o.equivalence_margin:.4f}")
    return f"{what}, {interval(o)}, {when}"


def line(o: PairOutcome, detectable: bool = True) -> str:
    """The pair as one line: `dice b - a: ...`, with the seeds a missing score left out."""
    at = f" {WORDS[o.matched]}" if o.matched in WORDS else ""
    text = f"{o.metric} {o.b} - {o.a}{at}: {verdict(o, detectable)}"
    for label, seeds in o.left_out.items():
        text += f"; seeds {list(seeds)} of {label} left out (the other arm lacks {o.metric} there)"
    return text


def headline(o: PairOutcome) -> str:
    """A few words for a run's name: `b vs a: b better +0.045 (4 seeds)`."""
    if o.decision is None:
        return f"{o.b} vs {o.a}: {o.estimate:+.3f}, p = {o.p:.2g} ({o.n} fixed seeds)"
    return f"{o.b} vs {o.a}: {o.winner} {o.estimate:+.3f} ({o.n} seeds)"


def mean_std(values: Sequence[float]) -> str:
    """`mean ± std` (sample standard deviation), or `-` for no values."""
    if not len(values):
        return "-"
    std = np.std(values, ddof=1) if len(values) > 1 else 0.0
    return f"{np.mean(values):.4f} ± {std:.4f}"


def table(arms: Sequence[Arm], outcomes: Sequence[PairOutcome] = ()) -> str:
    """The comparison as plain text, as `hybridunet compare` prints it.

    Args:
        arms: The arms, baseline first.
        outcomes: A sequential comparison's outcomes (`Comparison.outcomes`); without them,
            each arm's fixed-seed paired difference against the first.

    Returns:
        Mean ± std of Dice and mIoU per arm with its cost, the differences or decisions,
            and per-class Dice.
    """
    test = any(a.has("test_dice") for a in arms)
    matched = any("train_steps" in r.cost for a in arms for r in a.records)  # the training amount, where matched
    columns = COST_COLUMNS + (TRAINING_COLUMNS if matched else ())
    keys = COST_KEYS + (TRAINING_KEYS if matched else ())
    head = f"{'config':<24} {'seeds':>5} {'val Dice':>17} {'val mIoU':>17}"
    lines = [head + (f" {'test Dice':>17}" if test else "") + f" {'s/run':>7}" +
             "".join(f" {title:>{width}}" for title, width, _ in columns)]
    for arm in arms:
        seconds = f"{np.mean(arm.seconds):.0f}" if arm.seconds else "-"
        row = (f"{arm.label:<24} {len(arm.records):>5} {mean_std(list(arm.values('dice').values())):>17} "
               f"{mean_std(list(arm.values('miou').values())):>17}")
        if test:
            row += f" {mean_std(list(arm.values('test_dice').values())):>17}"
        cost = cost_means(arm)
        row += f" {seconds:>7}" + "".join(
            f" {format(cost[key], spec) if key in cost else '-':>{width}}" for (_, width, spec), key in
            zip(columns, keys))
        lines.append(row)
    if outcomes:
        lines += [line(o) for o in outcomes]
    else:
        lines += [line(paired(arms[0], other, metric).outcome()) for other in arms[1:] for metric in paired_metrics(arms)]
    return "\n".join(lines + per_class_table(arms))


def per_class_table(arms: Sequence[Arm]) -> list[str]:
    """Each class's mean validation Dice per arm (a blank line first), or nothing."""
    classes = next((list(r.val.per_class_dice) for a in arms for r in a.records if r.val.per_class_dice), [])
    if not classes:
        return []
    lines = ["", f"{'per-class val Dice':<18}" + "".join(f"{a.label[:14]:>16}" for a in arms)]
    per_arm = [per_class(arm) for arm in arms]
    for name in classes:
        cells = [f"{np.mean(values[name]):>16.3f}" if values.get(name) else f"{'-':>16}" for values in per_arm]
        lines.append(f"{name:<18}" + "".join(cells))
    return lines


def summary(arms: Sequence[Arm], outcomes: Sequence[PairOutcome] = ()) -> dict[str, Any]:
    """The comparison as JSON-ready data (with the rule's `outcomes`: one per pair, as it left them)."""
    metric = outcomes[0].metric if outcomes else deciding_metric(all_scored_on_test(arms))
    out: dict[str, Any] = {"arms": {}, "paired": [], "metric": metric}
    if outcomes:
        out["decisions"] = [o.as_dict() for o in outcomes]
    for arm in arms:
        entry: dict[str, Any] = {"seeds": arm.seeds, "run_ids": [r.run_id for r in arm.records],
                                 "cost": cost_means(arm)}
        for name in METRICS:
            values = arm.values(name)
            if values:
                entry[name] = [values.get(s) for s in arm.seeds]
                entry[f"{name}_mean"] = float(np.mean(list(values.values())))
        out["arms"][arm.label] = entry
    for other in arms[1:]:
        out["paired"] += [paired(arms[0], other, name).outcome().as_dict() for name in paired_metrics(arms)]
    return out


def describe(event: Event) -> str:
    """A progress event as the line a command prints."""
    if isinstance(event, RunDone):
        r = event.record
        test = f", test Dice {r.test.dice:.4f}" if r.test is not None else ""
        how = f"(from {event.journal})" if event.source == "journal" else (
            f"in {r.seconds:.0f} s" if r.seconds is not None and math.isfinite(r.seconds) else "")
        return f"[{event.done}/{event.total}] {r.label} seed {r.seed}: Dice {r.val.dice:.4f}, mIoU {r.val.miou:.4f}{test} {how}"
    if isinstance(event, BudgetStop):
        return f"stopping at {event.seeds} seeds: another would pass the {event.minutes:g}-minute budget"
    if isinstance(event, OldRule):
        return (f"{event.journal} was recorded under the earlier Bonferroni rule (each look at its Bonferroni share "
                "of the level): its sequence is continued and decided under that rule, not the exact one")
    if isinstance(event, Looked):
        return "\n".join([f"look at {len(event.seen)} seeds:", *(f"  {line(o)}" for o in event.outcomes)])
    raise TypeError(f"not a comparison event: {event!r}")
