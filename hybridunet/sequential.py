"""A stopping rule for paired comparisons: add seeds until the difference is decided.

The method is a group-sequential paired t-test with one look per added seed, from the first
look (`min_seeds`) to the cap (`max_seeds`). The error rate alpha is spent over the looks
with the shape of Lan & DeMets' O'Brien-Fleming-type spending function (Lan and DeMets
1983, "Discrete sequential boundaries for clinical trials", Biometrika 70:659-663): little
alpha at the early looks, most of it at the cap. Each look k tests at its spent share
alpha * w_k, and the rule's confidence interval at a look is the intersection of the t
intervals at levels 1 - alpha * w_j of every look j so far. By the union bound (Bonferroni
over looks) the chance that any look's interval misses the true mean difference is at most
alpha, whatever the looks' correlation and whenever the sequence stops: the rule's p-value,
its interval and its decisions stay valid under this data-dependent stopping (for normal
paired differences; conservative, as Bonferroni is). The simulation test in
tests/test_sequential.py checks the rates, including heavy-tailed differences.

Outcomes at a look: `better` (the interval lies above 0: B beats A), `worse` (below 0),
`equivalent` (inside the margin on both sides: two one-sided tests, each at least at the
rule's level), or, at the cap, `undecided`. With several pairs the level is split equally
between them (Bonferroni), so the family's error rate is at most alpha.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, get_args

import numpy as np
from scipy import stats

Decision = Literal["better", "worse", "equivalent", "undecided"]  # where the rule leaves a pair
DECISIONS: tuple[Decision, ...] = get_args(Decision)


def spending_weights(min_seeds: int, max_seeds: int) -> np.ndarray:
    """The share of alpha each look from `min_seeds` to `max_seeds` spends (they sum to 1):
    increments of the O'Brien-Fleming-type spending function 2 - 2 Phi(z / sqrt(t)) at
    information fractions t = n / max_seeds, taken at alpha = 0.05 and normalised."""
    if not 2 <= min_seeds <= max_seeds:
        raise ValueError(f"need 2 <= min_seeds <= max_seeds, got {min_seeds} and {max_seeds}")
    z = stats.norm.isf(0.025)
    t = np.arange(min_seeds, max_seeds + 1) / max_seeds
    spent = 2 * stats.norm.sf(z / np.sqrt(t))
    weights: np.ndarray = np.diff(np.concatenate([[0.0], spent])) / spent[-1]
    return weights


@dataclass(frozen=True)
class Look:
    """The rule at one look: the decision, the estimate, the rule's interval and p-value."""

    decision: Decision
    n: int  # paired seeds seen
    mean: float
    ci: tuple[float, float]  # at the rule's level, valid under the stopping
    p_value: float  # the rule's own: the smallest level at which it would have declared a side by now
    equivalence_margin: float  # the smallest margin these seeds could show equivalence within


def decide(diffs: Sequence[float], min_seeds: int = 3, max_seeds: int = 10, margin: float = 0.01,
           level: float = 0.05) -> Look:
    """Apply the rule to the paired differences (B - A) of the seeds so far, in seed order."""
    d = np.asarray(diffs, dtype=np.float64)[None]
    decision, mean, low, high, p, used = decide_many(d, min_seeds, max_seeds, margin, level)
    return Look(decision[0], int(used[0]), float(mean[0]), (float(low[0]), float(high[0])), float(p[0]),
                float(max(abs(low[0]), abs(high[0]))))


def decide_many(diffs: np.ndarray, min_seeds: int = 3, max_seeds: int = 10, margin: float = 0.01,
                level: float = 0.05) -> tuple[np.ndarray, ...]:
    """`decide` for many sequences at once: `diffs` is (sequences, seeds). The rule runs look by
    look and stops each sequence at its first decision. Returns (decision, mean, CI low, CI high,
    p-value, seeds used) per sequence at the look where it stopped (or the last look given)."""
    diffs = np.asarray(diffs, dtype=np.float64)
    count, seen = diffs.shape
    if seen > max_seeds:
        raise ValueError(f"{seen} paired seeds given, more than the cap of {max_seeds}")
    weights = spending_weights(min_seeds, max_seeds)
    decision = np.full(count, "undecided", dtype=object)
    open_ = np.ones(count, bool)
    low, high = np.full(count, -np.inf), np.full(count, np.inf)
    p_seq = np.ones(count)
    mean_out = np.full(count, np.nan)
    used = np.full(count, seen)
    for n in range(min_seeds, seen + 1):
        x = diffs[:, :n]
        mean = x.mean(1)
        sd = x.std(1, ddof=1)
        alpha_k = level * weights[n - min_seeds]
        half = stats.t.isf(alpha_k / 2, n - 1) * sd / math.sqrt(n)
        with np.errstate(divide="ignore", invalid="ignore"):
            t = np.where(sd > 0, np.abs(mean) / (sd / math.sqrt(n)), np.where(mean == 0, 0.0, np.inf))
        p_k = 2 * stats.t.sf(t, n - 1)
        # the running intersection of every look's interval (each valid at its spent level)
        low = np.where(open_, np.maximum(low, mean - half), low)
        high = np.where(open_, np.minimum(high, mean + half), high)
        empty = low > high  # only where the looks disagree by chance: keep this look's own interval
        low, high = np.where(empty & open_, mean - half, low), np.where(empty & open_, mean + half, high)
        p_seq = np.where(open_, np.minimum(p_seq, np.minimum(1.0, p_k / weights[n - min_seeds])), p_seq)
        mean_out = np.where(open_, mean, mean_out)
        better, worse = open_ & (low > 0), open_ & (high < 0)
        equivalent = open_ & ~better & ~worse & (low > -margin) & (high < margin)
        decision[better], decision[worse], decision[equivalent] = "better", "worse", "equivalent"
        used = np.where(better | worse | equivalent, n, used)
        open_ &= ~(better | worse | equivalent)
        if not open_.any():
            break
    return decision, mean_out, low, high, p_seq, used
