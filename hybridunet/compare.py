"""Multi-seed comparison of configs: is a difference in Dice real or noise?

Every config trains with the same seeds (so the same data order and augmentation per
seed); the second config is compared with the first by a paired difference per seed,
its 95% t confidence interval and a paired t-test.
"""

from __future__ import annotations

import contextlib
import math
import re
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats

from hybridunet.config import ExperimentConfig
from hybridunet.engine import Callback, Run, fit, json_safe
from hybridunet.errors import UsageError
from hybridunet.results import METRICS, Arm, RunRecord, append_journal, check_seeds, group, read_journal, scores_of


@dataclass(frozen=True)
class Paired:
    """``b - a`` per seed, over the seeds both arms have the metric for."""

    a: str
    b: str
    metric: str
    seeds: tuple[int, ...]
    diffs: tuple[float, ...]
    left_out: Mapping[str, tuple[int, ...]] = field(default_factory=dict)  # label -> seeds only it has

    @property
    def mean(self) -> float:
        return float(np.mean(self.diffs)) if self.diffs else math.nan

    @property
    def ci95(self) -> tuple[float, float]:
        n = len(self.diffs)
        if n < 2:
            return (math.nan, math.nan)
        half = stats.t.ppf(0.975, n - 1) * np.std(self.diffs, ddof=1) / math.sqrt(n)
        return (self.mean - half, self.mean + half)

    @property
    def detectable(self) -> float:
        """The smallest true mean difference this many seeds detect with 80% power (paired
        two-sided t-test at the 5% level, noncentral t), given the spread of the differences."""
        n = len(self.diffs)
        if n < 2 or np.std(self.diffs) == 0:
            return math.nan
        from scipy.optimize import brentq

        critical = stats.t.ppf(0.975, n - 1)

        def power(effect: float) -> float:
            shift = effect * math.sqrt(n)
            lower = stats.nct.cdf(-critical, n - 1, shift)  # NaN where it underflows
            return stats.nct.sf(critical, n - 1, shift) + (0.0 if math.isnan(lower) else lower)

        effect = brentq(lambda e: power(e) - 0.8, 1e-6, 50.0)
        return effect * float(np.std(self.diffs, ddof=1))

    @property
    def effect_size(self) -> float:
        """Cohen's d_z: the mean difference over the differences' standard deviation."""
        if len(self.diffs) < 2 or np.std(self.diffs) == 0:
            return math.nan
        return self.mean / float(np.std(self.diffs, ddof=1))

    @property
    def p_value(self) -> float:
        if len(self.diffs) < 2 or np.std(self.diffs) == 0:
            return math.nan
        return float(stats.ttest_1samp(self.diffs, 0.0).pvalue)  # = paired t-test of b against a

    def stats(self, detectable: bool = True) -> str:
        """`+0.0174 (95% CI -0.0611 .. +0.0960, paired t-test p = 0.44, n = 3[; detectable ...])`."""
        low, high = self.ci95
        text = (f"{self.mean:+.4f} (95% CI {low:+.4f} .. {high:+.4f}, paired t-test p = {self.p_value:.3g}, "
                f"n = {len(self.diffs)}")
        if detectable:
            text += f"; detectable at 80% power: {self.detectable:.4f}"
        return text + ")"

    def line(self, detectable: bool = True) -> str:
        """The comparison as one line: every command that prints a paired difference prints this."""
        text = f"{self.metric} {self.b} - {self.a}: {self.stats(detectable)}"
        for label, seeds in self.left_out.items():
            text += f"; seeds {list(seeds)} of {label} left out (the other arm lacks {self.metric} there)"
        return text

    def as_dict(self) -> dict[str, Any]:
        return {"a": self.a, "b": self.b, "metric": self.metric, "seeds": list(self.seeds),
                "mean_diff": self.mean, "ci95": list(self.ci95), "p_value": self.p_value,
                "diffs": list(self.diffs), "detectable": self.detectable,
                "left_out": {k: list(v) for k, v in self.left_out.items()}}


def mean_std(values: Sequence[float]) -> str:
    """`mean ± std` (sample standard deviation), or `-` for no values."""
    if not len(values):
        return "-"
    std = np.std(values, ddof=1) if len(values) > 1 else 0.0
    return f"{np.mean(values):.4f} ± {std:.4f}"


def paired(a: Arm, b: Arm, metric: str = "dice") -> Paired:
    """`b - a` matched by seed. Seeds where only one arm has `metric` are left out and named."""
    va, vb = a.values(metric), b.values(metric)
    seeds = tuple(s for s in b.seeds if s in va and s in vb)
    left_out = {arm.label: tuple(s for s in arm.seeds if s in values and s not in seeds)
                for arm, values in ((a, va), (b, vb))}
    return Paired(a.label, b.label, metric, seeds, tuple(vb[s] - va[s] for s in seeds),
                  {k: v for k, v in left_out.items() if v})


def decision_metric(arms: Sequence[Arm]) -> str:
    """Test Dice where every arm was scored on a test split, else validation Dice."""
    return "test_dice" if arms and all(a.has("test_dice") for a in arms) else "dice"


def table(arms: Sequence[Arm]) -> str:
    """The comparison as plain text: mean ± std per arm, paired differences, per-class Dice."""
    test = any(a.has("test_dice") for a in arms)
    head = f"{'config':<24} {'seeds':>5} {'val Dice':>17} {'val mIoU':>17}"
    lines = [head + (f" {'test Dice':>17}" if test else "") + f" {'s/run':>7}"]
    for arm in arms:
        seconds = f"{np.mean(arm.seconds):.0f}" if arm.seconds else "-"
        row = (f"{arm.label:<24} {len(arm.records):>5} {mean_std(list(arm.values('dice').values())):>17} "
               f"{mean_std(list(arm.values('miou').values())):>17}")
        if test:
            row += f" {mean_std(list(arm.values('test_dice').values())):>17}"
        lines.append(f"{row} {seconds:>7}")
    metrics = ("dice", "miou", "test_dice") if test else ("dice", "miou")
    for other in arms[1:]:
        lines += [paired(arms[0], other, metric).line() for metric in metrics]
    classes = next((list(r.val.per_class_dice) for a in arms for r in a.records if r.val.per_class_dice), [])
    if classes:
        lines.append("")
        lines.append(f"{'per-class val Dice':<18}" + "".join(f"{a.label[:14]:>16}" for a in arms))
        for name in classes:
            cells = []
            for arm in arms:
                values = [r.val.per_class_dice[name] for r in arm.records
                          if r.val.per_class_dice.get(name) is not None]
                cells.append(f"{np.mean(values):>16.3f}" if values else f"{'-':>16}")
            lines.append(f"{name:<18}" + "".join(cells))
    return "\n".join(lines)


def summary(arms: Sequence[Arm]) -> dict[str, Any]:
    """The comparison as JSON-ready data."""
    out: dict[str, Any] = {"arms": {}, "paired": [], "metric": decision_metric(arms)}
    for arm in arms:
        entry: dict[str, Any] = {"seeds": arm.seeds, "run_ids": [r.run_id for r in arm.records]}
        for metric in METRICS:
            values = arm.values(metric)
            if values:
                entry[metric] = [values.get(s) for s in arm.seeds]
                entry[f"{metric}_mean"] = float(np.mean(list(values.values())))
        out["arms"][arm.label] = entry
    metrics = ("dice", "miou", "test_dice") if any(a.has("test_dice") for a in arms) else ("dice", "miou")
    for other in arms[1:]:
        out["paired"] += [paired(arms[0], other, metric).as_dict() for metric in metrics]
    return out


def run_comparison(
    configs: Sequence[tuple[str, ExperimentConfig]],
    seeds: Sequence[int],
    out_dir: str | Path | None = None,
    tracking: bool = True,
    progress: Callable[[str], None] | None = None,
    journal: str | Path | None = None,
    test_split: str | None = None,
) -> list[Arm]:
    """Train every (label, config) with every seed; with `tracking`, one parent MLflow run
    holds every training as a nested run, and the table and a bar plot as artifacts.
    `progress` receives one line per finished run.

    With `test_split`, each run's best checkpoint (chosen on val) is also scored on that
    held-out split, which never takes part in the choice. With `journal` (a JSONL file),
    every finished run appends its `RunRecord`, and a run already there (same label, seed
    and config hash) is read back instead of trained: a stopped comparison continues.
    Runs go seed by seed, every arm within a seed, so a cut-off comparison still pairs.
    """
    check_seeds(seeds)
    stamp = f"{datetime.now():%Y%m%d-%H%M%S}"
    out_dir = Path(out_dir or Path("outputs") / f"compare-{stamp}")
    labels = [label for label, _ in configs]
    arms = [Arm(label) for label in labels]
    finished = read_journal(journal) if journal else {}
    with _parent(configs[0][1], tracking, f"compare-{'-vs-'.join(labels)}-{stamp}",
                 {"compare": "parent", "compare.labels": ",".join(labels)}) as parent:
        if parent is not None:
            parent.log_params({"configs": ",".join(labels), "seeds": ",".join(map(str, seeds))})
        total, done = len(configs) * len(seeds), 0
        for seed in seeds:
            for index, (label, config) in enumerate(configs):
                record = finished.get((label, seed, config.result_hash()))
                if record is None or (test_split and record.test is None):
                    record = train_record(label, config, seed, out_dir, parent, test_split)
                    if journal:
                        append_journal(journal, record)
                    how = f"in {record.seconds:.0f} s"
                else:
                    how = f"(from {journal})"
                arms[index] = arms[index].add(record)
                done += 1
                if progress is not None:
                    test = f", test Dice {record.test.dice:.4f}" if record.test is not None else ""
                    progress(f"[{done}/{total}] {label} seed {seed}: Dice {record.val.dice:.4f}, "
                             f"mIoU {record.val.miou:.4f}{test} {how}")
        if parent is not None:
            _log_summary(parent, arms)
    return arms


def train_record(label: str, config: ExperimentConfig, seed: int, out_dir: Path, parent=None,
                 test_split: str | None = None) -> RunRecord:
    """Train `config` with `seed` into ``out_dir/<label>-s<seed>`` and return its record;
    with `test_split`, its best checkpoint is scored there too."""
    run_config = config.model_copy(deep=True)
    run_config.seed = seed
    run_config.train.out_dir = str(out_dir / f"{label}-s{seed}")
    run_config.tracking.run_name = f"{label}-s{seed}"
    seen = _DataSeen()
    callbacks: list[Callback] = [seen]
    if parent is not None:
        from hybridunet.tracking import MLflowCallback

        callbacks.append(MLflowCallback(run_config.tracking, parent_run_id=parent.run_id,
                                        tags={"compare.label": label}))
    start = time.perf_counter()
    result = fit(run_config, callbacks=callbacks)
    record = RunRecord(label, seed, scores_of(result), config_hash=config.result_hash(),
                       data_fingerprint=seen.fingerprint, seconds=time.perf_counter() - start,
                       run_id=result.get("run_id"), checkpoint=result["checkpoint"])
    if test_split:
        from hybridunet.engine import evaluate_checkpoint

        test = evaluate_checkpoint(result["checkpoint"], data=run_config.data.root, split=test_split)
        record = record.with_test(scores_of(test))
        if parent is not None and record.run_id:
            from hybridunet.tracking import log_test_scores

            log_test_scores(record.run_id, test, run_config.tracking)
    return record


class _DataSeen(Callback):
    """Keeps the fingerprint of the data a run trained on, for its record."""

    fingerprint: str | None = None

    def on_fit_end(self, run: Run, result: dict[str, Any]) -> None:
        self.fingerprint = run.data_fingerprint


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values (family-wise error over the comparisons); NaN stays NaN."""
    order = sorted((p, i) for i, p in enumerate(p_values) if not math.isnan(p))
    adjusted = [math.nan] * len(p_values)
    running = 0.0
    for rank, (p, i) in enumerate(order):
        running = max(running, min(1.0, (len(order) - rank) * p))
        adjusted[i] = running
    return adjusted


def _parent(config: ExperimentConfig, tracking: bool, name: str, tags: dict[str, str]):
    if not tracking:
        return contextlib.nullcontext(None)
    from hybridunet.tracking import parent_run

    return parent_run(config.tracking, name, tags)


def _log_summary(parent, arms: Sequence[Arm]) -> None:
    from hybridunet.viz import comparison_figure

    parent.log_text(table(arms), "compare/table.txt")
    parent.log_json(json_safe(summary(arms)), "compare/summary.json")
    parent.log_figure(comparison_figure({a.label: list(a.values("dice").values()) for a in arms}, "Dice"),
                      "compare/dice.png")
    metrics = {}
    for arm in arms:
        key = re.sub(r"[^\w\-. /]", "_", arm.label)
        for metric in METRICS:
            values = list(arm.values(metric).values())
            if values:
                metrics[f"{key}/{metric}_mean"] = float(np.mean(values))
    parent.log_metrics(metrics)


def arms_from_mlflow(experiment: str, uri: str | None = None,
                     notes: Callable[[str], None] | None = None) -> list[Arm]:
    """Finished training runs of an MLflow experiment, grouped by their label (preset plus
    part overrides). Per (label, seed) the newest run counts; `notes` is told how many
    older ones were skipped, and when one label mixes configs or data."""
    from hybridunet.tracking import finished_runs

    notes = notes or (lambda line: print(line, file=sys.stderr))
    newest: dict[tuple[str, int], RunRecord] = {}
    skipped: dict[str, int] = {}
    order: list[str] = []
    for record in finished_runs(experiment, uri):  # newest first
        if (record.label, record.seed) in newest:
            skipped[record.label] = skipped.get(record.label, 0) + 1
            continue
        newest[(record.label, record.seed)] = record
        if record.label not in order:
            order.append(record.label)
    if not newest:
        raise UsageError(f"experiment {experiment!r} holds no finished training runs")
    for label, count in sorted(skipped.items()):
        notes(f"{label}: skipped {count} older run(s) of a seed that has a newer one")
    records = sorted(newest.values(), key=lambda r: r.seed)
    for label in sorted(order):
        for what, noun, kinds in (("config_hash", "result-changing config", "recipes"),
                                  ("data_fingerprint", "data", "data sets")):
            values = {getattr(r, what) for r in records if r.label == label} - {None}
            if len(values) > 1:
                notes(f"warning: runs labelled {label} differ in their {noun} ({len(values)} kinds): "
                      f"their comparison mixes {kinds}")
    # the label whose newest run is the oldest comes first: a comparison's baseline, trained first
    return group(records, list(reversed(order)))
