"""The stopping rule applied to a family of pairs: `hybridunet.sequential` at each look,
the level split over the pairs (Bonferroni), a decided pair kept as it was decided."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from hybridunet.comparison.outcome import PairOutcome
from hybridunet.comparison.stats import paired
from hybridunet.errors import UsageError
from hybridunet.results import Arm
from hybridunet.sequential import SPENDING, Method, decide, default_min_seeds, spending_function

PairKey = tuple[str, str]  # (a, b) labels: the pair `b - a`


@dataclass(frozen=True)
class Rule:
    """When a sequential comparison stops: at the first decision of every pair (see
    `hybridunet.sequential`), at `max_seeds`, or when the next round of seeds would pass
    `budget_minutes` of training in this call (only when a budget is given: without one the
    answer depends on no clock). `min_seeds` defaults to `sequential.default_min_seeds(max_seeds)`."""

    max_seeds: int = 10
    min_seeds: int | None = None
    margin: float = 0.01
    level: float = 0.05
    metric: str | None = None  # default: test_dice with a test split, else dice (`stats.deciding_metric`)
    budget_minutes: float | None = None
    spending: str = SPENDING
    method: Method = "exact"  # "bonferroni": the earlier Bonferroni rule, for a journal recorded under it

    @property
    def first(self) -> int:
        """The first look: `min_seeds`, or the default for the cap."""
        return self.min_seeds if self.min_seeds is not None else default_min_seeds(self.max_seeds)

    def __post_init__(self) -> None:
        if self.max_seeds < 2:
            raise UsageError(f"--max-seeds {self.max_seeds}: the cap needs at least 2 paired seeds (a t statistic)")
        if not 2 <= self.first <= self.max_seeds:
            raise UsageError(f"--min-seeds {self.first} --max-seeds {self.max_seeds}: "
                             "need 2 <= min-seeds <= max-seeds")
        if not 0 < self.margin:
            raise UsageError(f"--margin {self.margin}: expected a positive difference of the metric")
        if not 0 < self.level < 0.5:
            raise UsageError(f"level {self.level}: expected a two-sided error rate in (0, 0.5)")
        spending_function(self.spending)
        if self.method not in ("exact", "bonferroni"):
            raise UsageError(f"method {self.method!r}: expected exact or bonferroni")
        if self.budget_minutes is not None and self.budget_minutes <= 0:
            raise UsageError(f"--budget {self.budget_minutes}: expected minutes > 0")

    def journal_entry(self) -> dict[str, Any]:
        """What a journal records of the rule: a continued sequence must use the same. The rule
        before exact boundaries wrote no method (`as_recorded` reads such a line as it)."""
        entry = {"max_seeds": self.max_seeds, "min_seeds": self.first, "margin": self.margin, "level": self.level}
        if self.method == "bonferroni":
            return entry
        return {**entry, "method": self.method, "spending": self.spending}

    def as_recorded(self, recorded: Mapping[str, Any] | None) -> Rule:
        """This rule as a journal's rule line continues it: its first look where none was asked
        for, and its method: a line with no method was written by the earlier Bonferroni rule and is
        continued and decided under it, never silently under another."""
        if recorded is None:
            return self
        rule = self
        if self.min_seeds is None and isinstance(recorded.get("min_seeds"), int):
            rule = replace(rule, min_seeds=recorded["min_seeds"])
        if "method" not in recorded:
            rule = replace(rule, method="bonferroni", spending=SPENDING)
        return rule

    @property
    def described(self) -> str:
        """The method in words, for the output."""
        if self.method == "bonferroni":
            return "the earlier Bonferroni rule (each look at its own share of the level), as the journal records"
        return f"exact group-sequential t boundaries, {self.spending} spending"

    def pair_level(self, pairs: int) -> float:
        """Each pair's share of the level: the family's error rate stays at most `level`."""
        return self.level / pairs


def look(pairs: Sequence[tuple[Arm, Arm]], rule: Rule, metric: str, seen: Sequence[int],
         before: Mapping[PairKey, PairOutcome] | None = None, matched: str = "none") -> dict[PairKey, PairOutcome]:
    """One look of the rule at the seeds `seen` so far, for every pair of the family (`b - a`)
    not decided `before`; each is tested at its share of the level, so its interval holds
    simultaneously over the family and its p-value is the family's. Returns every pair's
    outcome (a pair with fewer than `rule.min_seeds` paired seeds has none yet)."""
    level = rule.pair_level(len(pairs))
    outcomes = dict(before or {})
    seen_set = set(seen)
    for a, b in pairs:
        key = (a.label, b.label)
        if key in outcomes and outcomes[key].decided:
            continue
        d = paired(a, b, metric)
        used = [i for i, s in enumerate(d.seeds) if s in seen_set]
        if len(used) < rule.first:
            continue
        diffs = tuple(d.diffs[i] for i in used)
        result = decide(diffs, rule.first, rule.max_seeds, rule.margin, level, spending=rule.spending,
                        method=rule.method)
        used = used[:result.n]  # where the rule stopped: seeds after a decision do not count
        outcomes[key] = PairOutcome(
            a.label, b.label, metric, tuple(d.seeds[i] for i in used), diffs[:result.n], result.mean, result.ci,
            min(1.0, result.p_value * rule.level / level),  # against the family's level, as the decision is
            decision=result.decision, margin=rule.margin, equivalence_margin=result.equivalence_margin,
            cap=rule.max_seeds, method=rule.method, matched=matched)
    return outcomes
