"""The stopping rule's error control, checked by simulation rather than assumed."""

import math

import numpy as np
import pytest

from hybridunet.sequential import decide, decide_many, spending_weights

N = 20_000  # simulated comparisons per scenario
LEVEL, MARGIN, FIRST = 0.05, 0.01, 3


def bound(rate_limit: float) -> float:
    """The limit plus twice the Monte-Carlo standard error of a rate at that limit."""
    return rate_limit + 2 * math.sqrt(rate_limit * (1 - rate_limit) / N)


def draws(kind: str, rng, shape):
    if kind == "normal":
        return rng.standard_normal(shape)
    return rng.standard_t(3, shape) / math.sqrt(3)  # heavy tails, unit variance


@pytest.mark.parametrize("cap", [4, 10])
@pytest.mark.parametrize("kind", ["normal", "t3"])
@pytest.mark.parametrize("scale", [0.005, 0.02, 0.08])
def test_no_difference_is_declared_a_winner_and_the_margin_is_not_declared_equivalent_too_often(cap, kind, scale):
    rng = np.random.default_rng([cap, int(scale * 1e4), len(kind)])
    null = draws(kind, rng, (N, cap)) * scale
    decision = decide_many(null, FIRST, cap, MARGIN, LEVEL)[0]
    assert np.mean((decision == "better") | (decision == "worse")) <= bound(LEVEL)
    at_margin = draws(kind, rng, (N, cap)) * scale + MARGIN
    assert np.mean(decide_many(at_margin, FIRST, cap, MARGIN, LEVEL)[0] == "equivalent") <= bound(LEVEL)


def test_the_rule_decides_real_effects_and_tight_equivalence():
    rng = np.random.default_rng(1)
    effect = rng.standard_normal((N, 10)) * 0.03 + 2.0 * 0.03  # standardised effect 2, cap 10
    assert np.mean(decide_many(effect, FIRST, 10, MARGIN, LEVEL)[0] == "better") >= 0.9
    assert np.mean(decide_many(-effect, FIRST, 10, MARGIN, LEVEL)[0] == "worse") >= 0.9
    tight = rng.standard_normal((N, 10)) * MARGIN / 3  # sd a third of the margin, no difference
    assert np.mean(decide_many(tight, FIRST, 10, MARGIN, LEVEL)[0] == "equivalent") >= 0.9


def test_identical_arms_are_equivalent_at_the_first_look_with_no_nan():
    look = decide([0.0, 0.0, 0.0], FIRST, 10, MARGIN, LEVEL)
    assert look.decision == "equivalent" and look.n == 3 and look.ci == (0.0, 0.0)
    assert not any(math.isnan(v) for v in (look.mean, *look.ci, look.p_value, look.equivalence_margin))


def test_one_look_agrees_with_the_t_interval_at_its_spent_level():
    from scipy import stats

    diffs = [0.05, 0.02, 0.07, 0.04]
    share = spending_weights(FIRST, 6)
    assert share.sum() == pytest.approx(1) and np.all(np.diff(share) > 0)  # little alpha early
    look = decide(diffs[:3], FIRST, 6, MARGIN, LEVEL)
    expected = stats.t.interval(1 - LEVEL * share[0], 2, loc=np.mean(diffs[:3]), scale=stats.sem(diffs[:3]))
    assert look.ci == pytest.approx(expected)
    assert look.decision == "undecided" and look.p_value == pytest.approx(
        min(1, stats.ttest_1samp(diffs[:3], 0).pvalue / share[0]))
