"""`PairOutcome`: the one shape of a pair's result, fixed seeds or the stopping rule's."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from hybridunet.sequential import Decision, Method


@dataclass(frozen=True)
class PairOutcome:
    """Where a comparison left one pair, `b - a` on `metric`.

    Over fixed seeds `decision` is None: `interval` is the paired t interval and `p` the paired
    t-test's. Under the stopping rule `decision` is the rule's and `interval` and `p` are the
    rule's own, valid under its stopping and adjusted for the number of pairs.
    """

    a: str
    b: str
    metric: str
    seeds: tuple[int, ...]
    diffs: tuple[float, ...]
    estimate: float
    interval: tuple[float, float]
    p: float
    decision: Decision | None = None
    margin: float | None = None  # the rule's equivalence margin
    equivalence_margin: float | None = None  # the smallest margin these seeds could show equivalence within
    detectable: float | None = None  # fixed seeds: the smallest mean difference found with 80% power
    left_out: Mapping[str, tuple[int, ...]] = field(default_factory=dict)  # label -> seeds only it has
    cap: int | None = None  # the rule's max_seeds
    method: Method | None = None  # the rule's method (`sequential.METHODS`)
    matched: str = "none"  # the arms trained at matched cost: none, flops or time (`comparison.cost`)

    @property
    def interim(self) -> bool:
        """An open pair before the cap: its interval is the repeated one, its p-value not yet final."""
        return self.decision == "undecided" and self.cap is not None and self.n < self.cap

    @property
    def n(self) -> int:
        return len(self.seeds)

    @property
    def decided(self) -> bool:
        return self.decision is not None and self.decision != "undecided"

    @property
    def winner(self) -> str:
        """The decision in words: which arm is better, equivalent, or undecided."""
        if self.decision is None:
            return "fixed seeds"
        return {"better": f"{self.b} better", "worse": f"{self.a} better"}.get(self.decision, self.decision)

    def as_dict(self) -> dict[str, Any]:
        """The JSON of compare's last line, with the keys of its context: `decisions` for the
        rule's outcomes, `paired` for fixed seeds; `match_cost` where the arms were matched."""
        out = self._as_dict()
        return out if self.matched == "none" else {**out, "match_cost": self.matched}

    def _as_dict(self) -> dict[str, Any]:
        if self.decision is not None:
            return {"a": self.a, "b": self.b, "metric": self.metric, "decision": self.decision,
                    "seeds": list(self.seeds), "estimate": self.estimate, "ci95": list(self.interval),
                    "p_value": None if self.interim else self.p,  # stage-wise: final once stopped
                    "margin": self.margin, "equivalence_margin": self.equivalence_margin}
        return {"a": self.a, "b": self.b, "metric": self.metric, "seeds": list(self.seeds),
                "mean_diff": self.estimate, "ci95": list(self.interval), "p_value": self.p,
                "diffs": list(self.diffs), "detectable": self.detectable,
                "left_out": {k: list(v) for k, v in self.left_out.items()}}
