"""What a comparison tells as it goes: typed events, rendered to text at the edge
(`report.describe`); nothing parses their wording."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from hybridunet.comparison.outcome import PairOutcome
from hybridunet.results import RunRecord


@dataclass(frozen=True)
class RunDone:
    """One (arm, seed) run is in: `trained` here, read back from the `journal`, or trained
    by the round's hook (`round`, e.g. in other processes) into the journal."""

    record: RunRecord
    source: Literal["trained", "journal", "round"]
    done: int
    total: int
    journal: Path | None = None


@dataclass(frozen=True)
class Looked:
    """The rule looked at the seeds `seen`: the outcome of each pair still open before it."""

    seen: tuple[int, ...]
    outcomes: tuple[PairOutcome, ...]


@dataclass(frozen=True)
class BudgetStop:
    """The comparison stopped at `seeds` seeds: the next round would pass the budget."""

    seeds: int
    minutes: float


@dataclass(frozen=True)
class OldRule:
    """The journal's sequence was recorded under the earlier Bonferroni rule (Bonferroni over looks):
    it is continued and decided under that rule, not re-decided under the exact one."""

    journal: Path


Event = RunDone | Looked | BudgetStop | OldRule
