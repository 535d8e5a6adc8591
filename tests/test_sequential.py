"""The stopping rule's error control and power, checked by simulation rather than assumed, and
its constants against independent calculations (the t distribution, normal theory)."""

import math

import numpy as np
import pytest
from scipy import stats

from hybridunet.errors import UsageError
from hybridunet.sequential import compute_design, decide, decide_many, design, operating

N = 20_000  # simulated comparisons per scenario, drawn independently of the designs' own paths
LEVEL, MARGIN = 0.05, 0.01


def se(rate: float) -> float:
    """The Monte-Carlo standard error of a rate over N comparisons."""
    return math.sqrt(rate * (1 - rate) / N)


def draws(kind: str, rng, shape):
    if kind == "normal":
        return rng.standard_normal(shape)
    return rng.standard_t(3, shape) / math.sqrt(3)  # heavy tails, unit variance


@pytest.mark.parametrize("first, cap", [(3, 5), (4, 10)])
def test_with_no_difference_a_side_is_declared_at_the_level_neither_more_nor_less(first, cap):
    """Normal differences with an sd far above the margin (no equivalence stops): the null rate is
    the level within 3 standard errors, so needless conservatism fails too; t3 differences at most
    the level + 2 SE."""
    rng = np.random.default_rng([7, cap])
    decision = decide_many(draws("normal", rng, (N, cap)) * 0.08, first, cap, MARGIN, LEVEL)[0]
    rate = np.mean((decision == "better") | (decision == "worse"))
    assert abs(rate - LEVEL) <= 3 * se(LEVEL), rate
    decision = decide_many(draws("t3", rng, (N, cap)) * 0.08, first, cap, MARGIN, LEVEL)[0]
    assert np.mean((decision == "better") | (decision == "worse")) <= LEVEL + 2 * se(LEVEL)


@pytest.mark.parametrize("kind", ["normal", "t3"])
def test_a_difference_at_the_margin_is_not_declared_equivalent_too_often(kind):
    rng = np.random.default_rng([11, len(kind)])
    at_margin = draws(kind, rng, (N, 10)) * 0.005 + MARGIN
    assert np.mean(decide_many(at_margin, 4, 10, MARGIN, LEVEL)[0] == "equivalent") <= LEVEL + 2 * se(LEVEL)


def test_power_regression_values_and_the_old_rule_below_them():
    rows = {(cap, r["d_z"]): r for cap, effect in ((10, 1.0), (5, 2.5))
            for r in operating(4 if cap == 10 else 3, cap, LEVEL, (effect,), sims=N, seed=3)}
    assert rows[(10, 1.0)]["power"] >= 0.72
    assert rows[(5, 2.5)]["power"] >= 0.93
    old = operating(4, 10, LEVEL, (1.0,), method="bonferroni", sims=N, seed=3)[0]
    assert old["power"] < rows[(10, 1.0)]["power"] - 0.1  # what the exact boundaries buy


def test_the_rule_decides_real_effects_both_ways_and_tight_equivalence():
    rng = np.random.default_rng(1)
    effect = rng.standard_normal((N, 10)) * 0.03 + 2.0 * 0.03  # standardised effect 2, cap 10
    assert np.mean(decide_many(effect, 4, 10, MARGIN, LEVEL)[0] == "better") >= 0.95
    assert np.mean(decide_many(-effect, 4, 10, MARGIN, LEVEL)[0] == "worse") >= 0.95
    tight = rng.standard_normal((N, 10)) * MARGIN / 3  # sd a third of the margin, no difference
    assert np.mean(decide_many(tight, 4, 10, MARGIN, LEVEL)[0] == "equivalent") >= 0.9


def test_identical_arms_are_equivalent_at_the_first_look_with_no_nan():
    look = decide([0.0, 0.0, 0.0, 0.0], 4, 10, MARGIN, LEVEL)
    assert look.decision == "equivalent" and look.n == 4 and look.ci == (0.0, 0.0)
    assert not any(math.isnan(v) for v in (look.mean, *look.ci, look.p_value, look.equivalence_margin))


def test_one_look_is_the_t_test_and_the_first_look_is_its_t_quantile_at_the_spent_alpha():
    diffs = [0.05, 0.02, 0.07, 0.04, 0.03]
    alone = decide(diffs, 5, 5, MARGIN, LEVEL)
    expected = stats.t.interval(1 - LEVEL, 4, loc=np.mean(diffs), scale=stats.sem(diffs))
    assert alone.ci == pytest.approx(expected) and alone.p_value == pytest.approx(stats.ttest_1samp(diffs, 0).pvalue)
    d = design(3, 6, LEVEL)
    spent = 2 * stats.norm.sf(stats.norm.isf(LEVEL / 2) / math.sqrt(3 / 6))  # O'Brien-Fleming type at t = 1/2
    assert d.bounds[0] == pytest.approx(stats.t.isf(spent / 2, 2), rel=1e-6)
    assert d.spent[-1] == pytest.approx(LEVEL, abs=1e-4) and np.all(np.diff(d.bounds) < 0)


def test_at_many_seeds_the_boundaries_approach_normal_theory():
    """Looks at 300, 301 and 302 seeds, spending alpha t^40: the t statistics are nearly normal,
    so the second boundary solves P(|Z1| < c1, |Z2| >= c2) = its increment for Z with
    correlation sqrt(300/301) (scipy's multivariate normal), to within simulation error."""
    d = compute_design(300, 302, LEVEL, "power:40", paths=400_000)
    spent = LEVEL * (np.array([300, 301]) / 302) ** 40
    c1 = stats.norm.isf(spent[0] / 2)
    rho = math.sqrt(300 / 301)
    mvn = stats.multivariate_normal([0, 0], [[1, rho], [rho, 1]])

    def increment(c2: float) -> float:  # P(|Z1| < c1) - P(|Z1| < c1, |Z2| < c2)
        return (1 - spent[0]) - mvn.cdf([c1, c2], lower_limit=[-c1, -c2])

    from scipy.optimize import brentq

    c2 = brentq(lambda c: increment(c) - (spent[1] - spent[0]), 1.0, 6.0)
    assert d.bounds[0] == pytest.approx(c1, rel=0.005)
    assert d.bounds[1] == pytest.approx(c2, rel=0.01)


@pytest.mark.parametrize("look, t_abs", [(7, 3.0), (7, 0.2), (10, 0.0), (10, 1.5), (5, 6.5)])
def test_the_stage_wise_p_value_matches_a_direct_simulation(look, t_abs):
    """p at a look of (4, 10) with |t| = t_abs: the chance of crossing before, plus of being open
    there with |t| at least that, counted on null sequences independent of the design's."""
    d = design(4, 10, LEVEL)
    rng = np.random.default_rng([5, look])
    x = rng.standard_normal((200_000, look))
    crossed = np.zeros(len(x), bool)
    for n in range(4, look):
        t = np.abs(x[:, :n].mean(1)) / (x[:, :n].std(1, ddof=1) / math.sqrt(n))
        crossed |= t >= d.bound(n)
    t_look = np.abs(x.mean(1)) / (x.std(1, ddof=1) / math.sqrt(look))
    direct = np.mean(crossed) + np.mean(~crossed & (t_look >= t_abs))
    found = float(d.p_values(look, np.array([t_abs]))[0])
    assert found == pytest.approx(direct, abs=4 * math.sqrt(direct * (1 - direct) / 200_000) + 2e-4)


def test_the_simulated_bound_of_a_look_after_one_that_spends_nothing_is_the_t_quantile():
    """Spending alpha t^60 over looks at 3 and 4 seeds: the look at 3 spends 3e-8, so the look at
    4 carries the whole level alone and its bound must be the t quantile, from the simulation."""
    d = compute_design(3, 4, LEVEL, "power:60")
    assert d.bounds[1] == pytest.approx(stats.t.isf(LEVEL / 2, 3), rel=0.01)


def test_a_crossings_p_value_is_at_most_the_level_its_look_has_spent():
    d = design(4, 10, LEVEL)
    assert float(d.p_values(7, np.array([d.bound(7)]))[0]) <= d.spent[3] + 1e-9
    assert float(d.p_values(10, np.array([d.bound(10)]))[0]) == pytest.approx(LEVEL, abs=5e-4)


def test_a_p_value_below_the_level_is_a_decision_and_above_it_is_not():
    rng = np.random.default_rng(9)
    diffs = rng.standard_normal((N, 10)) * 0.03 + 0.02
    decision, _, _, _, p, _ = decide_many(diffs, 4, 10, 1e-9, LEVEL)
    sided = (decision == "better") | (decision == "worse")
    assert np.all(p[sided] <= LEVEL + 1e-9) and np.all(p[~sided] > LEVEL - 1e-9)


def test_the_shipped_designs_are_what_the_simulation_computes():
    assert design(4, 10, LEVEL) == compute_design(4, 10, LEVEL, digits=7)


def test_a_new_design_is_cached_outside_the_tree_and_read_back(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    design.cache_clear()
    made = design(3, 8, 0.02, "pocock")
    assert list((tmp_path / "hybridunet" / "designs").glob("*.json"))
    design.cache_clear()
    assert design(3, 8, 0.02, "pocock") == made  # read back from the cache
    assert abs(made.bounds[0] - made.bounds[-1]) < abs(design(3, 8, 0.02).bounds[0] - design(3, 8, 0.02).bounds[-1])
    design.cache_clear()


@pytest.mark.parametrize("args, named", [((1, 10, 0.05), "min_seeds 1"), ((5, 4, 0.05), "max_seeds 4"),
                                         ((3, 10, 0.5), "level 0.5"), ((3, 10, 0.0), "level 0.0")])
def test_a_design_that_cannot_be_is_refused_naming_the_value(args, named):
    with pytest.raises(UsageError, match=named):
        design(*args)
    with pytest.raises(UsageError, match="spending 'wild'"):
        design(3, 10, 0.05, "wild")
