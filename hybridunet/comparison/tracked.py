"""A comparison in MLflow: one parent run whose nested runs are its seeds, and the summary it
carries at the end (table, pictures, each arm's curve, the decisions), written from the
records and curves in memory."""

from __future__ import annotations

import contextlib
import math
import re
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from hybridunet.comparison.outcome import PairOutcome
from hybridunet.comparison.report import headline, summary, table, verdict
from hybridunet.comparison.stats import pair_outcomes, per_class
from hybridunet.config import ExperimentConfig
from hybridunet.engine import Callback
from hybridunet.jsonsafe import json_safe
from hybridunet.results import METRICS, Arm
from hybridunet.tracking import MLflowCallback, ParentRun, parent_run
from hybridunet.tracking.calls import metric_rows
from hybridunet.tracking.outbox import Outbox
from hybridunet.tracking.runs import match_call, test_scores
from hybridunet.tracking.sync import keep


class TrackedComparison:
    """The parent run of one comparison: its seeds' runs nest under it."""

    def __init__(self, parent: ParentRun, configs: Sequence[tuple[str, ExperimentConfig]]) -> None:
        self.parent, self.configs = parent, list(configs)

    def callbacks(self, run_config: ExperimentConfig, label: str) -> list[Callback]:
        """What a seed's training logs through: a nested run tagged with its arm. A server
        that is away is not waited for per seed: its calls wait in the seed's folder, and
        the comparison's end sends them (`parent_run`)."""
        return [MLflowCallback(run_config.tracking, parent_run_id=self.parent, tags={"compare.label": label},
                               flush_timeout=0)]

    def log_test(self, run_id: str | None, test: Mapping[str, Any], run_config: ExperimentConfig) -> None:
        self.on_seed(run_id, run_config.train.out_dir, {"call": "log_batch", "metrics": metric_rows(test_scores(test))})

    def log_match(self, run_id: str | None, entries: Mapping[str, Any], run_config: ExperimentConfig) -> None:
        self.on_seed(run_id, run_config.train.out_dir, match_call(entries))

    def on_seed(self, run_id: str | None, folder: str | Path | None, call: dict[str, Any]) -> None:
        """A call on a seed's run: after the calls its folder still keeps (a server that was
        away), else through the parent's worker."""
        if folder is not None and Outbox(folder).exists():
            keep(folder, call)
            return
        run_id = run_id or (Outbox(folder).run_id() if folder is not None else None)
        if run_id is not None:
            self.parent.submit({**call, "run_id": run_id})

    def finish(self, arms: Sequence[Arm], outcomes: Sequence[PairOutcome],
               curves: Mapping[str, Mapping[int, list[float]]]) -> None:
        """Each arm's best seed logs its model, and the parent the comparison at a glance."""
        self.log_models(arms)
        log_summary(self.parent, arms, outcomes, curves)

    def log_models(self, arms: Sequence[Arm]) -> None:
        """Each arm's best seed (by validation Dice) logs its model as its config's
        tracking.log_model says; the other seeds log none."""
        from hybridunet.tracking.models import best_candidate

        for arm, (_, config) in zip(arms, self.configs):
            best = best_candidate((r.run_id, r.val.dice, r.checkpoint) for r in arm.records)
            if best is not None and config.tracking.log_model != "none":
                run_id, checkpoint = best
                self.on_seed(run_id, Path(checkpoint).parent, {
                    "call": "log_model", "checkpoint": checkpoint, "kind": config.tracking.log_model,
                    "registered_model": config.tracking.registered_model})


@contextlib.contextmanager
def tracked_comparison(configs: Sequence[tuple[str, ExperimentConfig]], seeds: Sequence[int] | None = None,
                       folder: str | Path | None = None) -> Iterator[TrackedComparison]:
    """The parent run for the block (FAILED on an error, KILLED on Ctrl-C, never left RUNNING),
    its outbox in `folder`, the comparison's; `seeds` are logged as a param where they are fixed."""
    labels = [label for label, _ in configs]
    name = f"compare-{'-vs-'.join(labels)}-{datetime.now():%Y%m%d-%H%M%S}"
    with parent_run(configs[0][1].tracking, name, {"compare": "parent", "compare.labels": ",".join(labels)},
                    folder=folder) as parent:
        parent.log_params({"configs": ",".join(labels)})
        if seeds is not None:
            parent.log_params({"seeds": ",".join(map(str, seeds))})
        yield TrackedComparison(parent, configs)


def log_summary(parent: ParentRun, arms: Sequence[Arm], outcomes: Sequence[PairOutcome],
                curves: Mapping[str, Mapping[int, list[float]]]) -> None:
    """The comparison at a glance on the parent run: each arm's validation curve as stepped
    metrics (``curve/<arm>``: the mean over seeds, ``spread/<arm>``: their std; one point per
    epoch), its final means (``dice_mean/<arm>``...), each pair's difference, interval and
    decision (``decision/<b>-<a>/...``, tags ``compare.decision.<b>``), the comparison's
    pictures as image charts (``comparison/curves``, ``/per_class``, ``/per_seed``: MLflow's
    chart view sorts its sections by name, so they come first, then the curves) and the
    outcome in the run's name. Curves come from `curves` (the runs trained in this process);
    a run read back from a journal that has none there is read from its own MLflow run."""
    from hybridunet.viz import comparison_figure, comparison_panels, figure_array

    parent.log_text(table(arms, outcomes), "compare/table.txt")
    parent.log_json(json_safe(summary(arms, outcomes)), "compare/summary.json")
    parent.log_figure(comparison_figure({a.label: list(a.values("dice").values()) for a in arms}, "Dice"),
                      "compare/dice.png")
    drawn: dict[str, dict[int, Sequence[float]]] = {a.label: {} for a in arms}
    for arm in arms:
        for r in arm.records:
            mine = curves.get(arm.label, {}).get(r.seed)
            if mine is not None:
                drawn[arm.label][r.seed] = mine
            elif r.run_id:  # read back from a journal: its curve is in its own MLflow run
                drawn[arm.label][r.seed] = parent.history(r.run_id, "val_dice")
    longest = max((len(v) for seeds in drawn.values() for v in seeds.values()), default=0)
    for epoch in range(longest):
        step: dict[str, float] = {}
        for label, seeds in drawn.items():
            values = [v[epoch] for v in seeds.values() if len(v) > epoch and math.isfinite(v[epoch])]
            if values:
                step[f"curve/{metric_key(label)}"] = float(np.mean(values))
                step[f"spread/{metric_key(label)}"] = float(np.std(values, ddof=1)) if len(values) > 1 else 0.0
        parent.log_metrics(step, step=epoch)
    metrics = {}
    for arm in arms:
        for metric in METRICS:
            values = list(arm.values(metric).values())
            if values:
                metrics[f"{metric}_mean/{metric_key(arm.label)}"] = float(np.mean(values))
    pairs = pair_outcomes(arms, outcomes)
    for o in pairs:
        key = f"decision/{metric_key(o.b)}-{metric_key(o.a)}"
        metrics.update({f"{key}/difference": o.estimate, f"{key}/ci95_low": o.interval[0],
                        f"{key}/ci95_high": o.interval[1], f"{key}/seeds": o.n})
    parent.log_metrics({k: v for k, v in metrics.items() if v is not None and math.isfinite(v)})
    parent.set_tags({"compare.outcome": "; ".join(headline(o) for o in pairs),
                     **{f"compare.decision.{metric_key(o.b)}": o.decision for o in outcomes}})
    means = {a.label: {name: float(np.mean(v)) for name, v in per_class(a).items()} for a in arms}
    diffs = {f"{o.b} - {o.a}\n{verdict(o, detectable=False)}": dict(zip(o.seeds, o.diffs)) for o in pairs}
    figures = comparison_panels(drawn, means, diffs)
    for name in ("curves", "per_class", "per_seed"):
        parent.log_image(figure_array(figures[name]), key=f"comparison/{name}")
    parent.log_figure(figures["all"], "compare/comparison.png")
    if pairs:
        parent.rename(" | ".join(headline(o) for o in pairs))


def metric_key(label: str) -> str:
    """A label as MLflow accepts it in a metric or tag key."""
    return re.sub(r"[^\w\-. /]", "_", label)
