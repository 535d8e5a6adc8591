"""Multi-seed comparison of configs: is a difference in Dice real or noise?

Every config trains with the same seeds (so the same data order and augmentation per
seed); the second config is compared with the first by a paired difference per seed,
its 95% t confidence interval and a paired t-test.
"""

from __future__ import annotations

import contextlib
import json
import math
import re
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats

from hybridunet.config import ExperimentConfig
from hybridunet.engine import Callback, Run, fit, json_safe
from hybridunet.errors import UsageError
from hybridunet.results import METRICS, Arm, RunRecord, append_journal, check_seeds, group, read_journal, scores_of
from hybridunet.sequential import Look, decide


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


COST_KEYS = ("params_m", "gflops", "train_images_per_s", "inference_images_per_s")  # a run's `cost`
COST_COLUMNS = (("params M", 8, ".2f"), ("GFLOPs", 7, ".2f"), ("train img/s", 11, ".1f"), ("infer img/s", 11, ".1f"))


def cost_means(arm: Arm) -> dict[str, float]:
    """The mean of each cost figure over the arm's runs that logged it."""
    out = {}
    for key in COST_KEYS:
        values = [r.cost[key] for r in arm.records if r.cost.get(key) is not None]
        if values:
            out[key] = float(np.mean(values))
    return out


def table(arms: Sequence[Arm], decisions: Sequence[Decision] = ()) -> str:
    """The comparison as plain text: mean ± std per arm, paired differences (or, for a
    sequential comparison, the rule's decisions), per-class Dice."""
    test = any(a.has("test_dice") for a in arms)
    head = f"{'config':<24} {'seeds':>5} {'val Dice':>17} {'val mIoU':>17}"
    lines = [head + (f" {'test Dice':>17}" if test else "") + f" {'s/run':>7}" +
             "".join(f" {title:>{width}}" for title, width, _ in COST_COLUMNS)]
    for arm in arms:
        seconds = f"{np.mean(arm.seconds):.0f}" if arm.seconds else "-"
        row = (f"{arm.label:<24} {len(arm.records):>5} {mean_std(list(arm.values('dice').values())):>17} "
               f"{mean_std(list(arm.values('miou').values())):>17}")
        if test:
            row += f" {mean_std(list(arm.values('test_dice').values())):>17}"
        cost = cost_means(arm)
        row += f" {seconds:>7}" + "".join(
            f" {format(cost[key], spec) if key in cost else '-':>{width}}" for (_, width, spec), key in
            zip(COST_COLUMNS, COST_KEYS))
        lines.append(row)
    metrics = ("dice", "miou", "test_dice") if test else ("dice", "miou")
    if decisions:
        lines += [d.line() for d in decisions]
    else:
        for other in arms[1:]:
            lines += [paired(arms[0], other, metric).line() for metric in metrics]
    classes = next((list(r.val.per_class_dice) for a in arms for r in a.records if r.val.per_class_dice), [])
    if classes:
        lines.append("")
        lines.append(f"{'per-class val Dice':<18}" + "".join(f"{a.label[:14]:>16}" for a in arms))
        per_arm = [_per_class(arm) for arm in arms]
        for name in classes:
            cells = [f"{np.mean(values[name]):>16.3f}" if values.get(name) else f"{'-':>16}" for values in per_arm]
            lines.append(f"{name:<18}" + "".join(cells))
    return "\n".join(lines)


def summary(arms: Sequence[Arm], decisions: Sequence[Decision] = ()) -> dict[str, Any]:
    """The comparison as JSON-ready data (with `decisions`: one per pair, as the rule left it)."""
    out: dict[str, Any] = {"arms": {}, "paired": [], "metric": decisions[0].metric if decisions else decision_metric(arms)}
    if decisions:
        out["decisions"] = [d.as_dict() for d in decisions]
    for arm in arms:
        entry: dict[str, Any] = {"seeds": arm.seeds, "run_ids": [r.run_id for r in arm.records],
                                 "cost": cost_means(arm)}
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
    with _Session(configs, out_dir, tracking, progress, journal, test_split, len(configs) * len(seeds)) as session:
        if session.parent is not None:
            session.parent.log_params({"seeds": ",".join(map(str, seeds))})
        for seed in seeds:
            session.add_seed(seed)
    return session.arms


@dataclass(frozen=True)
class Rule:
    """When a sequential comparison stops: at the first decision of every pair (see
    `hybridunet.sequential`), at `max_seeds`, or when the next seed would pass `budget_minutes`
    of training in this call."""

    max_seeds: int = 10
    min_seeds: int = 3
    margin: float = 0.01
    level: float = 0.05
    metric: str | None = None  # default: test_dice with a test split, else dice
    budget_minutes: float | None = None

    def __post_init__(self) -> None:
        if not 2 <= self.min_seeds <= self.max_seeds:
            raise UsageError(f"--min-seeds {self.min_seeds} --max-seeds {self.max_seeds}: "
                             "need 2 <= min-seeds <= max-seeds")
        if not 0 < self.margin:
            raise UsageError(f"--margin {self.margin}: expected a positive difference of the metric")
        if not 0 < self.level < 1:
            raise UsageError(f"level {self.level}: expected a probability in (0, 1)")
        if self.metric is not None and self.metric not in METRICS:
            raise UsageError(f"--metric {self.metric}: expected one of {', '.join(METRICS)}")
        if self.budget_minutes is not None and self.budget_minutes <= 0:
            raise UsageError(f"--budget {self.budget_minutes}: expected minutes > 0")

    def journal_entry(self) -> dict[str, Any]:
        """What a journal records of the rule: a continued sequence must use the same."""
        return {"max_seeds": self.max_seeds, "min_seeds": self.min_seeds, "margin": self.margin, "level": self.level}


@dataclass(frozen=True)
class Decision:
    """Where the rule left one pair (`b - a`)."""

    a: str
    b: str
    metric: str
    look: Look
    seeds: tuple[int, ...]
    margin: float

    @property
    def decided(self) -> bool:
        return self.look.decision != "undecided"

    @property
    def outcome(self) -> str:
        """The decision in words: which arm is better, equivalent, or undecided."""
        return {"better": f"{self.b} better", "worse": f"{self.a} better", "equivalent": "equivalent",
                "undecided": "undecided"}[self.look.decision]

    def line(self) -> str:
        low, high = self.look.ci
        outcome = f"equivalent within ±{self.margin:g}" if self.look.decision == "equivalent" else self.outcome
        when = (f"decided at {self.look.n} seeds" if self.decided else
                f"at {self.look.n} seeds; equivalence could be shown within ±{self.look.equivalence_margin:.4f}")
        return (f"{self.metric} {self.b} - {self.a}: {outcome}, {self.look.mean:+.4f} (95% CI {low:+.4f} .. "
                f"{high:+.4f}, sequential p = {self.look.p_value:.3g}), {when}")

    def as_dict(self) -> dict[str, Any]:
        return {"a": self.a, "b": self.b, "metric": self.metric, "decision": self.look.decision,
                "seeds": list(self.seeds), "estimate": self.look.mean, "ci95": list(self.look.ci),
                "p_value": self.look.p_value, "margin": self.margin,
                "equivalence_margin": self.look.equivalence_margin}


def run_sequential(
    configs: Sequence[tuple[str, ExperimentConfig]],
    rule: Rule,
    out_dir: str | Path | None = None,
    tracking: bool = True,
    progress: Callable[[str], None] | None = None,
    journal: str | Path | None = None,
    test_split: str | None = None,
) -> tuple[list[Arm], list[Decision]]:
    """Add paired seeds 0, 1, 2, ... until every config is decided against the first (better,
    worse or equivalent within `rule.margin`, at `rule.level` split over the pairs), or the cap
    or budget is reached (then the open pairs are undecided; the budget never stops a sequence
    before its first look at `rule.min_seeds`). The rule is
    `hybridunet.sequential`'s group-sequential paired t-test; its p-values and intervals are
    valid under this stopping. A journal continues a sequence only under the same rule."""
    metric = rule.metric or ("test_dice" if test_split else "dice")
    if metric.startswith("test_") and not test_split:
        raise UsageError(f"--metric {metric} needs a test split (test_split=...; the data's test/ folder)")
    if journal:
        check_journal_rule(journal, rule)
    level = rule.level / (len(configs) - 1)  # Bonferroni over the pairs compared with the first
    decisions: dict[tuple[str, str], Decision] = {}
    start = time.perf_counter()
    with _Session(configs, out_dir, tracking, progress, journal, test_split, rule.max_seeds * len(configs)) as session:
        for seed in range(rule.max_seeds):
            if seed >= rule.min_seeds and rule.budget_minutes is not None:  # the first look is always reached
                spent = time.perf_counter() - start
                if spent + spent / seed > rule.budget_minutes * 60:
                    if progress is not None:
                        progress(f"stopping at {seed} seeds: another would pass the {rule.budget_minutes:g}-minute budget")
                    break
            session.add_seed(seed)
            if seed + 1 < rule.min_seeds:
                continue
            base = session.arms[0]
            look_at([(base, arm) for arm in session.arms[1:]], rule, metric, level, seed + 1, decisions)
            if all(d.decided for d in decisions.values()):
                break
        session.decisions = list(decisions.values())
    return session.arms, session.decisions


def look_at(pairs: Sequence[tuple[Arm, Arm]], rule: Rule, metric: str, level: float, seeds: int,
            decisions: dict[tuple[str, str], Decision]) -> None:
    """One look of the rule at the first `seeds` paired seeds of every pair (`b - a`) not yet
    decided, at `level` (the rule's, split over the family by the caller; the interval is then
    simultaneous over the family, and the p-value is adjusted to it); a decided pair keeps its
    decision. Updates `decisions`, keyed by (a, b) label."""
    if seeds < rule.min_seeds:
        return
    for a, b in pairs:
        key = (a.label, b.label)
        if key in decisions and decisions[key].decided:
            continue
        d = paired(a, b, metric)
        used = [i for i, s in enumerate(d.seeds) if s < seeds]
        if len(used) < rule.min_seeds:
            continue
        look = decide([d.diffs[i] for i in used], rule.min_seeds, rule.max_seeds, rule.margin, level)
        # the p-value against the family's level (Bonferroni: times the pairs), as the decision is
        look = replace(look, p_value=min(1.0, look.p_value * rule.level / level))
        decisions[key] = Decision(a.label, b.label, metric, look, tuple(d.seeds[i] for i in used), rule.margin)


def check_journal_rule(journal: str | Path, rule: Rule) -> None:
    """Record the rule in a new journal; refuse to continue one recorded under another rule
    (the spending, and so every earlier look, depends on it)."""
    path = Path(journal)
    recorded = journal_rule(path)
    wanted = rule.journal_entry()
    if recorded is None:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a") as f:
            f.write(json.dumps({"rule": wanted}) + "\n")
    elif recorded != wanted:
        raise UsageError(f"{path} continues a sequence under {recorded}; this one asks for {wanted}: "
                         "use the same --max-seeds, --min-seeds and --margin, or another journal")


def journal_rule(path: str | Path) -> dict[str, Any] | None:
    path = Path(path)
    if not path.exists():
        return None
    for line in path.read_text().splitlines():
        if line.startswith('{"rule"'):
            return json.loads(line)["rule"]
    return None


class _Session:
    """One comparison's parent run, journal and progress: `add_seed` trains (or reads back)
    every config with one seed, so the arms stay paired whenever it stops."""

    def __init__(self, configs, out_dir, tracking, progress, journal, test_split, total: int) -> None:
        stamp = f"{datetime.now():%Y%m%d-%H%M%S}"
        self.configs, self.progress, self.journal, self.test_split = list(configs), progress, journal, test_split
        self.out_dir = Path(out_dir or Path("outputs") / f"compare-{stamp}")
        self.labels = [label for label, _ in configs]
        self.arms = [Arm(label) for label in self.labels]
        self.finished = read_journal(journal) if journal else {}
        self.total, self.done = total, 0
        self.decisions: list[Decision] = []
        self._context = _parent(configs[0][1], tracking, f"compare-{'-vs-'.join(self.labels)}-{stamp}",
                                {"compare": "parent", "compare.labels": ",".join(self.labels)})
        self.parent = None

    def __enter__(self) -> _Session:
        self.parent = self._context.__enter__()
        if self.parent is not None:
            self.parent.log_params({"configs": ",".join(self.labels)})
        return self

    def __exit__(self, *error) -> bool | None:
        if error[0] is None and self.parent is not None:
            self.log_models()
            _log_summary(self.parent, self.arms, self.decisions)
        return self._context.__exit__(*error)

    def log_models(self) -> None:
        """Each arm's best seed (by validation Dice) logs its model as its config's
        tracking.log_model says; the other seeds log none (see `train_record`)."""
        from hybridunet.tracking.models import log_best_run_model
        from hybridunet.tracking.store import tracking_uri

        for arm, (_, config) in zip(self.arms, self.configs):
            seeds = [(r.run_id, r.val.dice, r.checkpoint) for r in arm.records if r.run_id]
            log_best_run_model(seeds, config.tracking.log_model, config.tracking.registered_model,
                               tracking_uri(config.tracking))

    def add_seed(self, seed: int) -> None:
        for index, (label, config) in enumerate(self.configs):
            record = self.finished.get((label, seed, config.result_hash()))
            if record is None or (self.test_split and record.test is None):
                record = train_record(label, config, seed, self.out_dir, self.parent, self.test_split)
                if self.journal:
                    append_journal(self.journal, record)
                how = f"in {record.seconds:.0f} s"
            else:
                how = f"(from {self.journal})"
            self.arms[index] = self.arms[index].add(record)
            self.done += 1
            if self.progress is not None:
                test = f", test Dice {record.test.dice:.4f}" if record.test is not None else ""
                self.progress(f"[{self.done}/{self.total}] {label} seed {seed}: Dice {record.val.dice:.4f}, "
                              f"mIoU {record.val.miou:.4f}{test} {how}")


def train_record(label: str, config: ExperimentConfig, seed: int, out_dir: Path, parent=None,
                 test_split: str | None = None) -> RunRecord:
    """Train `config` with `seed` into ``out_dir/<label>-s<seed>`` and return its record;
    with `test_split`, its best checkpoint is scored there too."""
    run_config = config.model_copy(deep=True)
    run_config.seed = seed
    run_config.train.out_dir = str(out_dir / f"{label}-s{seed}")
    run_config.tracking.run_name = f"{label}-s{seed}"
    run_config.tracking.log_model = "none"  # the arm's best seed logs its model at the end (`_Session.log_models`)
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
                       run_id=result.get("run_id"), checkpoint=result["checkpoint"], cost=result.get("cost") or {})
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


def _log_summary(parent, arms: Sequence[Arm], decisions: Sequence[Decision] = ()) -> None:
    """The comparison at a glance on the parent run: each arm's validation curve as stepped
    metrics (``curve/<arm>``: the mean over seeds, ``spread/<arm>``: their std; one point per
    epoch), its final means (``dice_mean/<arm>``...), each pair's difference, interval and
    decision (``decision/<b>-<a>/...``, tags ``compare.decision.<b>``), the comparison's
    pictures as image charts (``comparison/curves``, ``/per_class``, ``/per_seed``: MLflow's
    chart view sorts its sections by name, so they come first, then the curves) and the
    outcome in the run's name."""
    from hybridunet.viz import comparison_figure, comparison_panels, figure_array

    parent.log_text(table(arms, decisions), "compare/table.txt")
    parent.log_json(json_safe(summary(arms, decisions)), "compare/summary.json")
    parent.log_figure(comparison_figure({a.label: list(a.values("dice").values()) for a in arms}, "Dice"),
                      "compare/dice.png")
    curves = {a.label: {r.seed: parent.history(r.run_id, "val_dice") for r in a.records if r.run_id} for a in arms}
    longest = max((len(v) for seeds in curves.values() for v in seeds.values()), default=0)
    for epoch in range(longest):
        step: dict[str, float] = {}
        for label, seeds in curves.items():
            values = [v[epoch] for v in seeds.values() if len(v) > epoch]
            if values:
                step[f"curve/{_metric_key(label)}"] = float(np.mean(values))
                step[f"spread/{_metric_key(label)}"] = float(np.std(values, ddof=1)) if len(values) > 1 else 0.0
        parent.log_metrics(step, step=epoch)
    metrics = {}
    for arm in arms:
        for metric in METRICS:
            values = list(arm.values(metric).values())
            if values:
                metrics[f"{metric}_mean/{_metric_key(arm.label)}"] = float(np.mean(values))
    pairs = _pair_outcomes(arms, decisions)
    for pair in pairs:
        key = f"decision/{_metric_key(pair['b'])}-{_metric_key(pair['a'])}"
        metrics.update({f"{key}/difference": pair["estimate"], f"{key}/ci95_low": pair["ci95"][0],
                        f"{key}/ci95_high": pair["ci95"][1], f"{key}/seeds": len(pair["seeds"])})
    parent.log_metrics({k: v for k, v in metrics.items() if v is not None and math.isfinite(v)})
    parent.set_tags({"compare.outcome": "; ".join(p["headline"] for p in pairs),
                     **{f"compare.decision.{_metric_key(d.b)}": d.look.decision for d in decisions}})
    per_class = {a.label: {name: float(np.mean(v)) for name, v in _per_class(a).items()} for a in arms}
    diffs = {f"{p['b']} - {p['a']}\n{p['caption']}": dict(zip(p["seeds"], p["diffs"])) for p in pairs}
    figures = comparison_panels(curves, per_class, diffs)
    for name in ("curves", "per_class", "per_seed"):
        parent.log_image(figure_array(figures[name]), key=f"comparison/{name}")
    parent.log_figure(figures["all"], "compare/comparison.png")
    if pairs:
        parent.rename(" | ".join(p["headline"] for p in pairs))


def _pair_outcomes(arms: Sequence[Arm], decisions: Sequence[Decision]) -> list[dict[str, Any]]:
    """Each pair as the parent run shows it: the rule's decision where there is one, else the
    paired t interval of the fixed seeds (never called a decision)."""
    metric = decisions[0].metric if decisions else decision_metric(arms)
    by_label = {a.label: a for a in arms}
    out = []
    if decisions:
        for d in decisions:
            p = paired(by_label[d.a], by_label[d.b], metric)
            diffs = [v for s, v in zip(p.seeds, p.diffs) if s in d.seeds]
            outcome = d.outcome
            low, high = d.look.ci
            out.append({"a": d.a, "b": d.b, "estimate": d.look.mean, "ci95": [low, high], "seeds": list(d.seeds),
                        "diffs": diffs, "headline": f"{d.b} vs {d.a}: {outcome} {d.look.mean:+.3f} ({len(d.seeds)} seeds)",
                        "caption": f"{outcome}, 95% CI {low:+.3f} .. {high:+.3f}"})
        return out
    for other in arms[1:]:
        p = paired(arms[0], other, metric)
        if p.diffs:
            out.append({"a": p.a, "b": p.b, "estimate": p.mean, "ci95": list(p.ci95), "seeds": list(p.seeds),
                        "diffs": list(p.diffs),
                        "headline": f"{p.b} vs {p.a}: {p.mean:+.3f}, p = {p.p_value:.2g} ({len(p.seeds)} fixed seeds)",
                        "caption": f"p = {p.p_value:.2g}, 95% CI {p.ci95[0]:+.3f} .. {p.ci95[1]:+.3f}"})
    return out


def _per_class(arm: Arm) -> dict[str, list[float]]:
    """Each class's validation Dice over the arm's runs (the finite values)."""
    values: dict[str, list[float]] = {}
    for record in arm.records:
        for name, v in record.val.per_class_dice.items():
            if v is not None and math.isfinite(v):
                values.setdefault(name, []).append(v)
    return values


def _metric_key(label: str) -> str:
    """A label as MLflow accepts it in a metric or tag key."""
    return re.sub(r"[^\w\-. /]", "_", label)


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
