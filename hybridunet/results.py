"""One record per finished training run, the arms that group them, and the journal they persist in.

Training (through `hybridunet.comparison`), the journal, the MLflow read-back (`tracking.runs`),
the comparison statistics, the protocol benchmark and the demo all read and write `RunRecord`:
one frozen type, as timm's `PretrainedCfg` is for pretrained weights. An `Arm` holds its
records; values are looked up by seed, never by position.
"""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from hybridunet.errors import DataError, UsageError

# The metrics a comparison can be decided on: validation Dice / mIoU of the best epoch, and
# the same scores of that checkpoint on a held-out test split (where one was scored).
METRICS = ("dice", "miou", "test_dice", "test_miou")


@dataclass(frozen=True)
class Scores:
    """Hard Dice and mIoU of one checkpoint on one split, with Dice per class."""

    dice: float
    miou: float
    per_class_dice: Mapping[str, float | None] = field(default_factory=dict)


@dataclass(frozen=True)
class RunRecord:
    """What one finished training run showed: its arm's label, its seed, the recipe and data
    it saw (hashes), its best epoch's validation scores and, where asked, test scores."""

    label: str
    seed: int
    val: Scores
    test: Scores | None = None
    config_hash: str | None = None  # ExperimentConfig.result_hash(): equal for one recipe's runs
    data_fingerprint: str | None = None
    seconds: float | None = None
    run_id: str | None = None  # MLflow, when tracking was on
    checkpoint: str | None = None
    cost: Mapping[str, Any] = field(default_factory=dict)  # params_m, gflops, images/s; matched: mode, steps

    @property
    def key(self) -> tuple[str, int, str | None]:
        """What a journal resumes by: the same label, seed and recipe is the same run."""
        return (self.label, self.seed, self.config_hash)

    def value(self, metric: str) -> float | None:
        """`dice`, `miou` (validation) or `test_dice`, `test_miou`; None where not scored."""
        if metric not in METRICS:
            raise UsageError(f"metric {metric!r}: expected one of {', '.join(METRICS)}")
        split, _, name = metric.rpartition("_")
        scores = self.test if split == "test" else self.val
        value = getattr(scores, name) if scores is not None else None
        return None if value is None or not math.isfinite(value) else float(value)

    def with_test(self, test: Scores) -> RunRecord:
        return replace(self, test=test)

    def to_json(self) -> dict[str, Any]:
        """A journal line: flat, as the journals in benchmarks/reference/ are."""
        line: dict[str, Any] = {"label": self.label, "seed": self.seed, "config_hash": self.config_hash,
                                "dice": self.val.dice, "miou": self.val.miou,
                                "per_class_dice": dict(self.val.per_class_dice)}
        if self.test is not None:
            line.update(test_dice=self.test.dice, test_miou=self.test.miou,
                        test_per_class_dice=dict(self.test.per_class_dice))
        line.update(data_fingerprint=self.data_fingerprint, seconds=self.seconds, run_id=self.run_id,
                    checkpoint=self.checkpoint)
        if self.cost:
            line["cost"] = dict(self.cost)
        return line

    @classmethod
    def from_json(cls, line: Mapping[str, Any]) -> RunRecord:
        """A journal line of any version: v1 lines have no config hash, older lines no test
        scores, and an arm of the old quality.py syntax (`unet:skip=x`) reads as its label."""
        test = None
        if line.get("test_dice") is not None:
            test = Scores(float(line["test_dice"]), _float(line.get("test_miou")),
                          line.get("test_per_class_dice") or {})
        return cls(
            label=legacy_label(str(line["label"])), seed=int(line["seed"]),
            val=Scores(float(line["dice"]), _float(line.get("miou")), line.get("per_class_dice") or {}),
            test=test, config_hash=line.get("config_hash"), data_fingerprint=line.get("data_fingerprint"),
            seconds=line.get("seconds"), run_id=line.get("run_id"), checkpoint=line.get("checkpoint"),
            cost=line.get("cost") or {},
        )


def _float(value: Any) -> float:
    return math.nan if value is None else float(value)


def legacy_label(label: str, typed: bool = False) -> str:
    """`unet:skip=x,bottleneck=y` (quality.py before 0.2) -> `unet+skip=x+bottleneck=y`.
    `typed`: a user wrote it (not a journal recorded it), who is told of the new form
    with a DeprecationWarning."""
    name, sep, swaps = label.partition(":")
    if not sep or "+" in name or "=" in name:  # the new form, a value of which holds a ':'
        return label
    new = "+".join([name, *filter(None, swaps.split(","))])
    if typed:
        warnings.warn(f"the label {label!r} uses the old 'model:key=value,...' form: write {new!r}; the old form "
                      "goes in a later release", DeprecationWarning, stacklevel=2)
    return new


def scores_of(metrics: Mapping[str, Any]) -> Scores:
    """Scores from a metrics dict (`fit`'s result, `evaluate`'s)."""
    return Scores(float(metrics["dice"]), _float(metrics.get("miou")), dict(metrics.get("per_class_dice") or {}))


@dataclass(frozen=True)
class Arm:
    """One label's runs, at most one per seed, in the order they were added."""

    label: str
    records: tuple[RunRecord, ...] = ()

    def __post_init__(self) -> None:
        seeds = [r.seed for r in self.records]
        repeated = sorted({s for s in seeds if seeds.count(s) > 1})
        if repeated:
            raise UsageError(f"arm {self.label!r} holds seed(s) {repeated} more than once: pairing needs each once")
        other = sorted({r.label for r in self.records} - {self.label})
        if other:
            raise UsageError(f"arm {self.label!r} was given records labelled {other}")

    def add(self, record: RunRecord) -> Arm:
        return Arm(self.label, (*self.records, record))

    @property
    def seeds(self) -> list[int]:
        return [r.seed for r in self.records]

    def values(self, metric: str) -> dict[int, float]:
        """Seed -> value for the seeds that have `metric`."""
        found = {r.seed: r.value(metric) for r in self.records}
        return {seed: v for seed, v in found.items() if v is not None}

    def has(self, metric: str) -> bool:
        return bool(self.values(metric))

    @property
    def seconds(self) -> list[float]:
        return [r.seconds for r in self.records if r.seconds is not None]


def group(records: Iterable[RunRecord], labels: Sequence[str] | None = None) -> list[Arm]:
    """Records as arms: in `labels`' order where given (those without records are empty),
    else in the order each label first appears."""
    arms: dict[str, Arm] = {label: Arm(label) for label in labels or ()}
    for record in records:
        if labels is not None and record.label not in arms:
            continue
        arms[record.label] = arms.get(record.label, Arm(record.label)).add(record)
    return list(arms.values())


# -- the journal: one JSON line per finished run, and the rule it continues under ------------

class Journal:
    """A JSONL file of finished runs that a stopped comparison continues from.

    Each line is a `RunRecord` (`RunRecord.to_json`); a sequential comparison's file also holds
    one rule line, `{"rule": {...}}`, so it is never continued under another rule. Every caller
    (compare, demo, tune --confirm, the quality protocol) resumes through `resumes`.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"Journal({str(self.path)!r})"

    def records(self) -> dict[tuple[str, int, str | None], RunRecord]:
        """Finished runs by (label, seed, config hash); the last line of a key wins."""
        runs = {}
        for number, data in self._lines():
            if _is_header(data, "rule") or _is_header(data, "match"):
                continue
            try:
                record = RunRecord.from_json(data)
            except (ValueError, KeyError, TypeError, AttributeError) as err:
                raise self._bad(number, err) from None
            runs[record.key] = record
        return runs

    def rule(self) -> dict[str, Any] | None:
        """The rule the journal's sequence runs under, or None (a new journal, or fixed seeds)."""
        return next((dict(data["rule"]) for _, data in self._lines() if _is_header(data, "rule")), None)

    def match(self, mode: str) -> dict[str, Any] | None:
        """The budgets (label -> `comparison.cost.Budget` fields) its runs at matched `mode`
        trained under, or None. One journal holds several modes: the costliest arm's runs
        are the same in each, and are shared."""
        lines = (data["match"] for _, data in self._lines() if _is_header(data, "match"))
        return next((dict(line["arms"]) for line in lines if line.get("mode") == mode), None)

    def keep_match(self, mode: str, arms: Mapping[str, Any]) -> None:
        """Record the budgets of `mode` (measured once, before the first seed)."""
        if self.match(mode) is None:
            self._write({"match": {"mode": mode, "arms": dict(arms)}})

    def keep_rule(self, rule: Mapping[str, Any]) -> None:
        """Record `rule` in a journal that has none; refuse to continue one recorded under
        another (the spending over the looks, so every earlier look, depends on it)."""
        recorded, wanted = self.rule(), dict(rule)
        if recorded is None:
            self._write({"rule": wanted})
        elif recorded != wanted:
            raise UsageError(f"{self.path} continues a sequence under {recorded}; this one asks for {wanted}: "
                             "use the same --max-seeds, --min-seeds and --margin, or another journal")

    def append(self, record: RunRecord) -> None:
        self._write(record.to_json())

    @staticmethod
    def resumes(record: RunRecord | None, test_split: str | None) -> RunRecord | None:
        """The one resume check: a journalled run counts when it has what this comparison
        scores (test scores where a test split is asked for); otherwise it trains again."""
        if record is None or (test_split and record.test is None):
            return None
        return record

    def _lines(self) -> Iterator[tuple[int, Any]]:
        if not self.path.exists():
            return
        for number, line in enumerate(self.path.read_text().splitlines(), 1):
            if line.strip():
                try:
                    yield number, json.loads(line)
                except ValueError as err:
                    raise self._bad(number, err) from None

    def _bad(self, number: int, err: Exception) -> DataError:
        return DataError(f"{self.path}, line {number}: not a run of this journal ({type(err).__name__}: {err}); "
                         "expected a JSON object with label, seed, dice and config_hash")

    def _write(self, line: Mapping[str, Any]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a") as f:
            f.write(json.dumps(line) + "\n")


def _is_header(data: Any, kind: str) -> bool:
    """A journal's rule line (`{"rule": {...}}`) or match line (`{"match": {...}}`), and nothing else."""
    return isinstance(data, dict) and set(data) == {kind}


# -- seeds ---------------------------------------------------------------------------------------

def check_seeds(seeds: Sequence[int], where: str = "") -> None:
    """Fail when a seed is listed twice: a paired comparison needs each seed once."""
    repeated = sorted({s for s in seeds if list(seeds).count(s) > 1})
    if repeated:
        raise UsageError(f"{where}seed(s) {repeated} listed more than once: a paired comparison needs each seed once")
