"""Paired statistics over seeds: differences matched by seed, their t interval and test,
Holm's correction, and the metric a comparison is decided on."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy import stats

from hybridunet.comparison.outcome import PairOutcome
from hybridunet.errors import UsageError
from hybridunet.results import METRICS, Arm

PAIRED_METRICS = ("dice", "miou", "test_dice")  # what a table pairs (test_dice where scored); all in METRICS
COST_KEYS = ("params_m", "gflops", "train_images_per_s", "inference_images_per_s")  # a run's `cost`
TRAINING_KEYS = ("train_steps", "train_tflops", "cost_multiplier")  # what a run at matched cost trained


@dataclass(frozen=True)
class Paired:
    """``b - a`` per seed, over the seeds both arms have the metric for."""

    a: str
    b: str
    metric: str
    seeds: tuple[int, ...]
    diffs: tuple[float, ...]
    left_out: Mapping[str, tuple[int, ...]] = field(default_factory=dict)  # label -> seeds only it has
    matched: str = "none"  # every run of both arms trained at this matched cost (`comparison.cost`)

    @property
    def mean(self) -> float:
        return float(np.mean(self.diffs)) if self.diffs else math.nan

    @property
    def _spread(self) -> float:
        return float(np.std(self.diffs, ddof=1)) if len(self.diffs) > 1 else math.nan

    @property
    def ci95(self) -> tuple[float, float]:
        n = len(self.diffs)
        if n < 2:
            return (math.nan, math.nan)
        half = float(stats.t.ppf(0.975, n - 1)) * self._spread / math.sqrt(n)
        return (self.mean - half, self.mean + half)

    @property
    def detectable(self) -> float:
        """The smallest true mean difference this many seeds detect with 80% power (paired
        two-sided t-test at the 5% level, noncentral t), given the spread of the differences."""
        n = len(self.diffs)
        if n < 2 or self._spread == 0:
            return math.nan
        from scipy.optimize import brentq

        critical = stats.t.ppf(0.975, n - 1)

        def power(effect: float) -> float:
            shift = effect * math.sqrt(n)
            lower = stats.nct.cdf(-critical, n - 1, shift)  # NaN where it underflows
            return float(stats.nct.sf(critical, n - 1, shift) + (0.0 if math.isnan(lower) else lower))

        effect = brentq(lambda e: power(e) - 0.8, 1e-6, 50.0)
        return float(effect) * self._spread

    @property
    def effect_size(self) -> float:
        """Cohen's d_z: the mean difference over the differences' standard deviation."""
        if len(self.diffs) < 2 or self._spread == 0:
            return math.nan
        return self.mean / self._spread

    @property
    def p_value(self) -> float:
        if len(self.diffs) < 2 or self._spread == 0:
            return math.nan
        return float(stats.ttest_1samp(self.diffs, 0.0).pvalue)  # = paired t-test of b against a

    def outcome(self) -> PairOutcome:
        """The fixed seeds' outcome: no decision, the paired t interval and test."""
        return PairOutcome(self.a, self.b, self.metric, self.seeds, self.diffs, self.mean, self.ci95, self.p_value,
                           detectable=self.detectable, left_out=self.left_out, matched=self.matched)


def paired(a: Arm, b: Arm, metric: str = "dice") -> Paired:
    """The paired difference `b - a` of one metric, matched by seed.

    Seeds where only one arm has `metric` (a test score, say) are left out and named.

    Args:
        a: The baseline arm.
        b: The arm compared with it.
        metric: A score both arms' records hold (`dice`, `miou`, `test_dice`, ...).

    Returns:
        The differences per seed; `.outcome()` gives the 95% t interval and p-value, which
            `line()` renders.
    """
    va, vb = a.values(metric), b.values(metric)
    seeds = tuple(s for s in b.seeds if s in va and s in vb)
    left_out = {arm.label: tuple(s for s in arm.seeds if s in values and s not in seeds)
                for arm, values in ((a, va), (b, vb))}
    modes = {str(r.cost.get("match_cost", "none")) for arm in (a, b) for r in arm.records} - {"none"}
    return Paired(a.label, b.label, metric, seeds, tuple(vb[s] - va[s] for s in seeds),
                  {k: v for k, v in left_out.items() if v}, modes.pop() if len(modes) == 1 else "none")


def pair_outcomes(arms: Sequence[Arm], outcomes: Sequence[PairOutcome] = ()) -> list[PairOutcome]:
    """The pairs as a parent run shows them: the rule's outcomes where there are some, else each
    arm against the first over the fixed seeds on the deciding metric (never called a decision)."""
    if outcomes:
        return list(outcomes)
    metric = deciding_metric(all_scored_on_test(arms))
    return [p.outcome() for other in arms[1:] if (p := paired(arms[0], other, metric)).diffs]


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values (family-wise error over the comparisons); NaN stays NaN."""
    order = sorted((p, i) for i, p in enumerate(p_values) if not math.isnan(p))
    adjusted = [math.nan] * len(p_values)
    running = 0.0
    for rank, (p, i) in enumerate(order):
        running = max(running, min(1.0, (len(order) - rank) * p))
        adjusted[i] = running
    return adjusted


def deciding_metric(has_test: bool, requested: str | None = None) -> str:
    """What a comparison is decided on: `requested`, else test Dice where a held-out test
    split is scored, else validation Dice. A test metric without test scores is refused."""
    if requested is not None and requested not in METRICS:
        raise UsageError(f"--metric {requested}: expected one of {', '.join(METRICS)}")
    metric = requested or ("test_dice" if has_test else "dice")
    if metric.startswith("test_") and not has_test:
        raise UsageError(f"--metric {metric} needs a test split (test_split=...; the data's test/ folder)")
    return metric


def all_scored_on_test(arms: Sequence[Arm]) -> bool:
    return bool(arms) and all(a.has("test_dice") for a in arms)


def paired_metrics(arms: Sequence[Arm]) -> tuple[str, ...]:
    """The metrics a table pairs: test Dice too where any arm was scored on a test split."""
    return PAIRED_METRICS if any(a.has("test_dice") for a in arms) else PAIRED_METRICS[:2]


def cost_means(arm: Arm) -> dict[str, float]:
    """The mean of each cost figure over the arm's runs that logged it."""
    out = {}
    for key in COST_KEYS + TRAINING_KEYS:
        values = [v for r in arm.records if (v := r.cost.get(key)) is not None]
        if values:
            out[key] = float(np.mean(values))
    return out


def per_class(arm: Arm) -> dict[str, list[float]]:
    """Each class's validation Dice over the arm's runs (the finite values)."""
    values: dict[str, list[float]] = {}
    for record in arm.records:
        for name, v in record.val.per_class_dice.items():
            if v is not None and math.isfinite(v):
                values.setdefault(name, []).append(v)
    return values
