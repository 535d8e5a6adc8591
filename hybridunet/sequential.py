"""A stopping rule for paired comparisons: add seeds until the difference is decided.

The method is a group-sequential paired t-test with one look per added seed, from the first
look (`min_seeds`) to the cap (`max_seeds`), with exact boundaries for the t statistic.

- Spending: the error rate alpha is spent over the looks by a Lan-DeMets spending function
  of the information fraction t = n / max_seeds (Lan and DeMets 1983, "Discrete sequential
  boundaries for clinical trials", Biometrika 70:659-663). The default is the
  O'Brien-Fleming type, 2 - 2 Phi(z_{alpha/2} / sqrt(t)): little alpha early, most at the
  cap. `pocock` (alpha log(1 + (e - 1) t)) and the power family `power:RHO` (alpha t^RHO)
  are selectable.
- Boundaries: the critical value c_n of |T_n| at look n is set so that, with no difference,
  the probability that the sequence first crosses at look n equals the spending function's
  increment there. The joint null law of the looks' t statistics does not depend on the
  variance, so these constants are exact for normal differences (Jennison and Turnbull 1991,
  "Exact calculations for sequential t, chi-square and F tests", Biometrika 78:133-141;
  Jennison and Turnbull 2000, "Group Sequential Methods with Applications to Clinical
  Trials", ch. 19). They are computed by simulating that law: one million null sequences
  from a fixed seed, the first look's value from the t distribution itself, and any later
  look whose increment fewer than ten sequences would carry (under 1e-5) from the t quantile
  at the increment (conservative by at most that increment; the next look spends it). The project's designs (caps 3 to 10,
  level 0.05, O'Brien-Fleming) ship as constants in `sequential_designs.json`; others are
  computed once (about a second) and cached in the user's cache folder.
- Intervals: the repeated confidence interval at look n, mean +- c_n sd / sqrt(n), covers the
  true mean difference at every look simultaneously with probability 1 - alpha, so it is
  valid whenever the sequence stops; the rule reports the intersection of the looks' ones.
- p-value: the stage-wise ordering (an earlier crossing is more extreme; at the same look a
  larger |t|): the chance under no difference of crossing before this look, plus of being
  still open here with |T_n| at least the one seen.

Outcomes at a look: `better` (the interval lies above 0: B beats A), `worse` (below 0),
`equivalent` (the repeated interval inside the margin on both sides; the boundaries are
computed for rejecting no-difference alone, so stopping for equivalence only lowers the
error rate), or, at the cap, `undecided`. With several pairs the level is split equally
between them (Bonferroni), so the family's error rate is at most alpha.

`method="bonferroni"` is the earlier Bonferroni rule: each look tested at its spent share of alpha
alone (valid, conservative: its null rate is about half the level at a cap of 10). It stays
so that a journal recorded under it is read under it, never re-decided silently.
"""

from __future__ import annotations

import functools
import json
import math
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal, get_args

import numpy as np
from scipy import stats

from hybridunet.errors import UsageError

Decision = Literal["better", "worse", "equivalent", "undecided"]  # where the rule leaves a pair
Method = Literal["exact", "bonferroni"]  # exact boundaries (the rule), or the earlier Bonferroni rule
METHODS: tuple[Method, ...] = get_args(Method)
SPENDING = "obf"  # the default spending function: Lan-DeMets O'Brien-Fleming type

PATHS = 1_000_000  # simulated null sequences a design is computed from
SEED = 20261206  # their seed: a design is the same on every machine
MIN_CARRIED = 10  # fewer sequences than this at an increment (< 1e-5): the t quantile instead
# tail probabilities at which a design keeps |t| (p-values): log-spaced for small p, evenly near 1
TAIL_GRID = np.unique(np.concatenate([np.logspace(-4, 0, 33), np.linspace(0.05, 1, 20)]))
SHIPPED = Path(__file__).with_name("sequential_designs.json")
ALGORITHM = 2  # names the cached designs' files: a changed computation never reads an older cache


# The first look for each cap: the criterion, stated before it was applied, is the smallest
# expected seeds at stop averaged over d_z 0.5, 1, ..., 3 (what `plan` shows), taking the later
# first look where looks tie within the simulation's error (0.02 seeds at 40,000 sequences):
# fewer looks, the same power or more. BENCHMARKS.md (the stopping rule) has its table.
DEFAULT_MIN_SEEDS = {3: 2, 4: 3, 5: 3, 6: 4, 7: 4, 8: 4, 9: 4, 10: 4, 11: 5, 12: 5}


def default_min_seeds(max_seeds: int) -> int:
    """The default first look for a cap (the criterion above; 5 past the table's caps, 2 below)."""
    return DEFAULT_MIN_SEEDS.get(max_seeds, 2 if max_seeds < 3 else 5)


def check_design(min_seeds: int, max_seeds: int, level: float, spending: str = SPENDING) -> None:
    """Fail with one line naming the value when (min_seeds, max_seeds, level, spending) makes no design."""
    if min_seeds < 2:
        raise UsageError(f"min_seeds {min_seeds}: the first look needs at least 2 paired seeds (a t statistic)")
    if max_seeds < min_seeds:
        raise UsageError(f"max_seeds {max_seeds}: the cap must be at least min_seeds ({min_seeds})")
    if not 0 < level < 0.5:
        raise UsageError(f"level {level}: expected a two-sided error rate in (0, 0.5)")
    spending_function(spending)


def spending_function(spending: str) -> Callable[[np.ndarray, float], np.ndarray]:
    """alpha(t, level): the cumulative error rate spent by information fraction t in (0, 1]."""
    if spending == "obf":
        return lambda t, a: 2 * stats.norm.sf(stats.norm.isf(a / 2) / np.sqrt(t))
    if spending == "pocock":
        return lambda t, a: a * np.log1p((math.e - 1) * t)
    match = re.fullmatch(r"power:([0-9]*\.?[0-9]+)", spending)
    if match and float(match[1]) > 0:
        rho = float(match[1])
        return lambda t, a: a * np.power(t, rho)
    raise UsageError(f"spending {spending!r}: expected obf, pocock or power:RHO with RHO > 0 (e.g. power:2)")


@dataclass(frozen=True)
class Design:
    """The rule's constants for looks n = min_seeds..max_seeds at a two-sided `level`."""

    min_seeds: int
    max_seeds: int
    level: float
    spending: str
    bounds: tuple[float, ...]  # c_n: the look decides a side when |t| >= c_n
    spent: tuple[float, ...]  # the null chance of having crossed by each look (ends at `level`)
    tails: tuple[tuple[float, ...], ...]  # per look, |t| at TAIL_GRID's first chances of being open with |T_n| >= |t|

    def bound(self, n: int) -> float:
        return self.bounds[n - self.min_seeds]

    def p_values(self, n: int, t_abs: np.ndarray) -> np.ndarray:
        """The stage-wise p-value of stopping at look n with |t| = `t_abs`."""
        i = n - self.min_seeds
        before = self.spent[i - 1] if i else 0.0
        t_abs = np.asarray(t_abs, dtype=np.float64)
        marginal = 2 * stats.t.sf(t_abs, n - 1)
        if i == 0:  # every sequence is still open at the first look: the t distribution itself
            return np.asarray(marginal)
        # knots (|t|, chance of being open here with |T_n| >= |t|): the kept tail, and the boundary
        # itself, whose chance is this look's own spending, so that p <= spent here exactly when |t| >= c_n
        # and |t| = 0, where every sequence still open counts
        xs = np.asarray(self.tails[i] + (self.bounds[i], 0.0))
        gs = np.concatenate([TAIL_GRID[: len(self.tails[i])], [self.spent[i] - before, 1.0 - before]])
        keep = gs > 0
        order = np.argsort(xs[keep])
        xs, logs = xs[keep][order], np.log(gs[keep])[order]  # |t| rising, log chance falling
        inside = np.exp(np.interp(t_abs, xs, logs))
        # past the last knot, the t tail scaled to meet it
        beyond = np.exp(logs[-1]) * marginal / (2 * stats.t.sf(xs[-1], n - 1))
        return np.asarray(np.minimum(1.0, before + np.where(t_abs > xs[-1], beyond, inside)))


def compute_design(min_seeds: int, max_seeds: int, level: float, spending: str = SPENDING,
                   paths: int = PATHS, seed: int = SEED, digits: int = 17) -> Design:
    """Compute a design's boundaries by simulating the looks' null t statistics (see the module),
    kept to `digits` significant digits."""
    check_design(min_seeds, max_seeds, level, spending)
    rng = np.random.default_rng(seed)
    looks = np.arange(min_seeds, max_seeds + 1)
    target = spending_function(spending)(looks / max_seeds, level)
    target[-1] = level
    # the first look's sum and sum of squares about the mean, drawn directly; later ones added a seed at a time
    total = rng.standard_normal(paths) * math.sqrt(min_seeds)
    squares = rng.chisquare(min_seeds - 1, paths)
    open_ = np.ones(paths, bool)
    crossed = 0
    bounds: list[float] = []
    spent: list[float] = []
    tails: list[tuple[float, ...]] = []
    for i, n in enumerate(looks):
        if i:
            x = rng.standard_normal(paths)
            squares += (x - total / (n - 1)) ** 2 * (n - 1) / n
            total += x
        t = np.abs(total) / np.sqrt(n * squares / (n - 1))
        carried = int(round((target[i] - crossed / paths) * paths))
        still = -np.sort(-t[open_])  # the open sequences' |t|, largest first
        if i == 0 or carried < MIN_CARRIED:
            c = float(stats.t.isf(max(target[i] - crossed / paths, 1e-300) / 2, n - 1))
        else:
            c = float((still[carried - 1] + still[carried]) / 2)
        if i:  # the first look needs none: every sequence is open there (the t distribution)
            tails.append(tuple(float(still[int(g * paths) - 1]) for g in TAIL_GRID if g * paths <= len(still)))
        else:
            tails.append(())
        bounds.append(c)
        newly = open_ & (t >= c)
        crossed += int(newly.sum())
        open_ &= ~newly
        spent.append(crossed / paths)
    def r(v: float) -> float:
        return float(f"{v:.{digits}g}")

    return Design(min_seeds, max_seeds, level, spending, tuple(map(r, bounds)), tuple(map(r, spent)),
                  tuple(tuple(map(r, row)) for row in tails))


def _key(min_seeds: int, max_seeds: int, level: float, spending: str) -> str:
    return f"{min_seeds}-{max_seeds}-{level:.10g}-{spending}"


def _cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "hybridunet" / "designs"


def _from_json(data: dict[str, Any]) -> Design:
    return Design(data["min_seeds"], data["max_seeds"], data["level"], data["spending"], tuple(data["bounds"]),
                  tuple(data["spent"]), tuple(tuple(row) for row in data["tails"]))


def _to_json(design: Design) -> dict[str, Any]:
    return asdict(design)


@functools.lru_cache(maxsize=1)
def _shipped() -> dict[str, Any]:
    """The project's designs, read once."""
    return json.loads(SHIPPED.read_text()) if SHIPPED.exists() else {}


@functools.lru_cache(maxsize=64)
def design(min_seeds: int, max_seeds: int, level: float, spending: str = SPENDING) -> Design:
    """The design for these looks: shipped, cached, or computed now (and cached)."""
    check_design(min_seeds, max_seeds, level, spending)
    key = _key(min_seeds, max_seeds, level, spending)
    shipped = _shipped()
    if key in shipped:
        return _from_json(shipped[key])
    path = _cache_dir() / f"{key}-v{ALGORITHM}.json"
    try:
        return _from_json(json.loads(path.read_text()))
    except (OSError, ValueError, KeyError, TypeError):
        pass
    made = compute_design(min_seeds, max_seeds, level, spending)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        part = path.with_suffix(f".{os.getpid()}.part")
        part.write_text(json.dumps(_to_json(made)))
        part.replace(path)
    except OSError:
        pass  # a read-only home: computed again next time, nothing lost
    return made


def write_shipped(path: Path = SHIPPED, caps: Sequence[int] = range(3, 11), level: float = 0.05) -> None:
    """Write the designs the project ships (every first look for each cap, the default spending)."""
    designs = {_key(m, cap, level, SPENDING): _to_json(compute_design(m, cap, level, digits=7))
               for cap in caps for m in range(2, cap + 1)}
    path.write_text(json.dumps(designs, separators=(",", ":")) + "\n")


@dataclass(frozen=True)
class Look:
    """The rule at one look: the decision, the estimate, the rule's interval and p-value."""

    decision: Decision
    n: int  # paired seeds seen
    mean: float
    ci: tuple[float, float]  # at the rule's level, valid under the stopping
    p_value: float  # stage-wise, as if the sequence stopped here: final once decided or at the cap
    equivalence_margin: float  # the smallest margin these seeds could show equivalence within


def decide(diffs: Sequence[float], min_seeds: int = 3, max_seeds: int = 10, margin: float = 0.01,
           level: float = 0.05, *, spending: str = SPENDING, method: Method = "exact") -> Look:
    """Apply the stopping rule to the paired differences (B - A) of the seeds so far.

    Args:
        diffs: One difference per seed, in seed order.
        min_seeds: The first look.
        max_seeds: The cap: the last look.
        margin: Equivalence is shown within ± margin.
        level: The two-sided error rate.
        spending: `obf`, `pocock` or `power:RHO`.
        method: `exact` (the exact t boundaries) or `bonferroni` (the earlier rule).

    Returns:
        The look: its decision (`better`, `worse`, `equivalent`, or `undecided`: go on,
            or stop there at the cap), the mean, the rule's interval and the stage-wise
            p-value.

    Example:
        ```python
        from hybridunet.sequential import decide

        decide([0.077, 0.027, 0.097, 0.076], min_seeds=3, max_seeds=5).decision   # 'better'
        ```
    """
    d = np.asarray(diffs, dtype=np.float64)[None]
    decision, mean, low, high, p, used = decide_many(d, min_seeds, max_seeds, margin, level,
                                                     spending=spending, method=method)
    return Look(decision[0], int(used[0]), float(mean[0]), (float(low[0]), float(high[0])), float(p[0]),
                float(max(abs(low[0]), abs(high[0]))))


def decide_many(diffs: np.ndarray, min_seeds: int = 3, max_seeds: int = 10, margin: float = 0.01,
                level: float = 0.05, *, spending: str = SPENDING, method: Method = "exact") -> tuple[np.ndarray, ...]:
    """`decide` for many sequences at once: `diffs` is (sequences, seeds). The rule runs look by
    look and stops each sequence at its first decision. Returns (decision, mean, CI low, CI high,
    p-value, seeds used) per sequence at the look where it stopped (or the last look given)."""
    diffs = np.asarray(diffs, dtype=np.float64)
    count, seen = diffs.shape
    if seen > max_seeds:
        raise ValueError(f"{seen} paired seeds given, more than the cap of {max_seeds}")
    if method not in METHODS:
        raise UsageError(f"method {method!r}: expected one of {', '.join(METHODS)}")
    exact = design(min_seeds, max_seeds, level, spending) if method == "exact" else None
    weights = None if exact else _bonferroni_weights(min_seeds, max_seeds)
    decision = np.full(count, "undecided", dtype=object)
    open_ = np.ones(count, bool)
    low, high = np.full(count, -np.inf), np.full(count, np.inf)
    p_out = np.ones(count)
    mean_out = np.full(count, np.nan)
    used = np.full(count, seen)
    for n in range(min_seeds, seen + 1):
        x = diffs[:, :n]
        mean = x.mean(1)
        sd = x.std(1, ddof=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            t = np.where(sd > 0, np.abs(mean) / (sd / math.sqrt(n)), np.where(mean == 0, 0.0, np.inf))
        if exact is not None:
            critical, p_n = exact.bound(n), exact.p_values(n, t)
        else:  # each look at its own share of alpha; the p-value the smallest over the looks
            assert weights is not None
            share = weights[n - min_seeds]
            critical = stats.t.isf(level * share / 2, n - 1)
            p_n = np.minimum(p_out, np.minimum(1.0, 2 * stats.t.sf(t, n - 1) / share))
        half = critical * sd / math.sqrt(n)
        # the running intersection of every look's repeated interval (they hold simultaneously)
        low = np.where(open_, np.maximum(low, mean - half), low)
        high = np.where(open_, np.minimum(high, mean + half), high)
        empty = low > high  # only where the looks disagree by chance: keep this look's own interval
        low, high = np.where(empty & open_, mean - half, low), np.where(empty & open_, mean + half, high)
        p_out = np.where(open_, p_n, p_out)
        mean_out = np.where(open_, mean, mean_out)
        better, worse = open_ & (low > 0), open_ & (high < 0)
        equivalent = open_ & ~better & ~worse & (low > -margin) & (high < margin)
        decision[better], decision[worse], decision[equivalent] = "better", "worse", "equivalent"
        used = np.where(better | worse | equivalent, n, used)
        open_ &= ~(better | worse | equivalent)
        if not open_.any():
            break
    return decision, mean_out, low, high, p_out, used


def _bonferroni_weights(min_seeds: int, max_seeds: int) -> np.ndarray:
    """The rule before exact boundaries: the share of alpha each look spends, O'Brien-Fleming-type increments
    at alpha = 0.05, normalised to sum to 1."""
    t = np.arange(min_seeds, max_seeds + 1) / max_seeds
    spent = spending_function("obf")(t, 0.05)
    weights: np.ndarray = np.diff(np.concatenate([[0.0], spent])) / spent[-1]
    return weights


EFFECTS = (0.5, 1.0, 1.5, 2.0, 2.5, 3.0)  # standardised paired effects d_z that `operating` reports by default


def operating(min_seeds: int, max_seeds: int, level: float = 0.05, effects: Sequence[float] = EFFECTS, *,
              spending: str = SPENDING, method: Method = "exact", sims: int = 20_000,
              seed: int = 1) -> list[dict[str, float]]:
    """The rule's operating characteristics by simulation: for each standardised effect d_z (mean
    paired difference over its sd; normal differences, no equivalence stopping), the power
    (the chance of deciding `better`) and the expected seeds at stop."""
    rng = np.random.default_rng(seed)
    null = rng.standard_normal((sims, max_seeds))
    rows = []
    for effect in effects:
        decision, *_, used = decide_many(null + effect, min_seeds, max_seeds, 0.0, level, spending=spending,
                                         method=method)
        rows.append({"d_z": float(effect), "power": float(np.mean(decision == "better")),
                     "expected_seeds": float(used.mean())})
    return rows
