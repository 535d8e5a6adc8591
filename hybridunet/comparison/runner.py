"""The one loop over seeds: every arm trains (or is read back from a journal) seed by seed,
so the arms stay paired wherever a comparison stops; with a `Rule`, the rule looks after
every seed and the loop ends when every pair is decided, at the cap or at the budget.

`compare`, `demo`, `tune --confirm` and benchmarks/quality.py all run through `run`.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from hybridunet.comparison.cost import Budget, MatchCost, as_journal, check_match_cost, match, matched_label, with_budget
from hybridunet.comparison.events import BudgetStop, Event, Looked, OldRule, RunDone
from hybridunet.comparison.outcome import PairOutcome
from hybridunet.comparison.rule import PairKey, Rule, look
from hybridunet.comparison.stats import deciding_metric
from hybridunet.config import ExperimentConfig
from hybridunet.engine import fit
from hybridunet.errors import UsageError
from hybridunet.results import Arm, Journal, RunRecord, check_seeds, scores_of

if TYPE_CHECKING:
    from hybridunet.comparison.tracked import TrackedComparison

Configs = Sequence[tuple[str, ExperimentConfig]]  # (label, config) per arm; the first is the baseline
Planned = tuple[str, ExperimentConfig, int]  # a run to train: label, config, seed
TrainRound = Callable[[Sequence[Planned]], None]  # trains the runs a journal lacks into it (e.g. in processes)
Curves = dict[str, dict[int, list[float]]]  # label -> seed -> validation Dice per epoch, of runs trained here


@dataclass(frozen=True)
class Comparison:
    """What a comparison ends with: each arm's runs, and the rule's outcome per pair (empty
    over fixed seeds: `report.summary` then pairs each arm with the first)."""

    arms: list[Arm]
    outcomes: list[PairOutcome] = field(default_factory=list)
    rule: Rule | None = None  # the rule it ran under: a journal recorded by the earlier rule keeps that one


def run(
    configs: Configs,
    seeds: Sequence[int],
    *,
    rule: Rule | None = None,
    pairs: Sequence[PairKey] | None = None,
    seeds_per_round: int = 1,
    train_round: TrainRound | None = None,
    only_open: bool = False,
    out_dir: str | Path | None = None,
    tracking: bool = True,
    journal: str | Path | None = None,
    test_split: str | None = None,
    on_event: Callable[[Event], None] | None = None,
    match_cost: MatchCost = "none",
) -> Comparison:
    """Train every (label, config) with each of `seeds`, in order, a round of `seeds_per_round`
    seeds at a time; every arm within a seed, so a cut-off comparison still pairs.

    Args:
        rule: decide instead of fixing the seeds: after every seed (from `rule.first`)
            the rule looks at each pair of `pairs` (default: every arm against the first,
            `b - a`); the loop ends when all are decided, after `rule.max_seeds` of `seeds`,
            or before a round that would pass `rule.budget_minutes`.
        seeds_per_round: seeds trained before the rule looks at them one by one; more than
            one is worth it only with `train_round` (seeds past a decision are trained anyway).
        train_round: trains a round's runs that the journal lacks into it (quality's
            `--jobs` processes); what it leaves missing trains here.
        only_open: train only the arms of pairs still open (else every arm, every seed).
        tracking: one parent MLflow run holds every training as a nested run, and the
            comparison's table, pictures and decisions (`comparison.tracked`).
        journal: a JSONL file (`results.Journal`): every finished run is appended, and a run
            already there (same label, seed and recipe; with test scores where `test_split`
            is asked for) is read back instead of trained. With a rule it records the rule.
        test_split: each run's best checkpoint (chosen on val) is also scored there.
        on_event: receives each `RunDone`, `Looked` and `BudgetStop` as it happens.
        match_cost: `flops` or `time`: the cheaper arms train longer (`train.steps`) so every
            arm spends what the costliest does (`comparison.cost`); a journal records each
            mode's budgets once and reuses them, and refuses them for another recipe.

    Returns:
        The arms and, with a rule, its outcome per pair.
    """
    seeds = list(seeds)
    check_seeds(seeds)
    if rule is not None:
        seeds = seeds[: rule.max_seeds]
    labels = [label for label, _ in configs]
    family = list(pairs) if pairs is not None else [(labels[0], label) for label in labels[1:]]
    unknown = sorted({label for pair in family for label in pair} - set(labels))
    if unknown:
        raise UsageError(f"pairs name {unknown}, which are not among the arms {labels}")
    metric = deciding_metric(test_split is not None, rule.metric) if rule is not None else None
    book = Journal(journal) if journal is not None else None
    if train_round is not None and book is None:
        raise ValueError("train_round trains into a journal: give journal=")
    budgets: dict[str, Budget] = {}
    match_cost = check_match_cost(match_cost)
    if match_cost != "none":
        budgets = match(configs, match_cost, book.match(match_cost) if book is not None else None)
        if book is not None:
            book.keep_match(match_cost, as_journal(budgets))
        # a matched arm is another recipe: its label shows its multiplier, and its pairs follow it
        renamed = {label: matched_label(label, budgets[label]) for label, _ in configs}
        configs = [(renamed[label], with_budget(config, budgets[label])) for label, config in configs]
        budgets = {renamed[label]: b for label, b in budgets.items()}
        labels = [renamed[label] for label in labels]
        family = [(renamed[a], renamed[b]) for a, b in family]
    if rule is not None and book is not None:
        rule = rule.as_recorded(book.rule())
        if rule.method == "bonferroni" and on_event is not None:
            on_event(OldRule(book.path))
        book.keep_rule(rule.journal_entry())
    session = _Session(list(configs), book, test_split, on_event, len(configs) * len(seeds),
                       Path(out_dir or Path("outputs") / f"compare-{datetime.now():%Y%m%d-%H%M%S}"), budgets)
    with _tracked(session, tracking, None if rule is not None else seeds) as tracker:
        session.tracker = tracker
        outcomes: dict[PairKey, PairOutcome] = {}
        open_pairs = list(family)
        start, done = time.perf_counter(), 0
        while done < len(seeds) and (rule is None or open_pairs):
            first = rule.first - done if rule is not None else 1
            round_ = seeds[done: done + max(seeds_per_round, first)]
            if rule is not None and rule.budget_minutes is not None and done >= rule.first:
                spent = time.perf_counter() - start  # the first look is always reached
                if spent + spent / done * len(round_) > rule.budget_minutes * 60:
                    session.tell(BudgetStop(done, rule.budget_minutes))
                    break
            needed = {label for pair in open_pairs for label in pair} if only_open and rule else set(labels)
            session.add_round([(label, config) for label, config in configs if label in needed], round_, train_round)
            for _ in round_:
                done += 1
                if rule is None or done < rule.first:
                    continue
                assert metric is not None
                arms = session.by_label()
                outcomes = look([(arms[a], arms[b]) for a, b in family], rule, metric, seeds[:done], outcomes,
                                matched=match_cost)
                session.tell(Looked(tuple(seeds[:done]), tuple(outcomes[p] for p in open_pairs if p in outcomes)))
                open_pairs = [p for p in family if not (p in outcomes and outcomes[p].decided)]
                if not open_pairs:
                    break
        result = Comparison(session.arms, [outcomes[p] for p in family if p in outcomes], rule)
        if tracker is not None:
            tracker.finish(result.arms, result.outcomes, session.curves)
    return result


def run_comparison(configs: Configs, seeds: Sequence[int], out_dir: str | Path | None = None, tracking: bool = True,
                   *, on_event: Callable[[Event], None] | None = None, journal: str | Path | None = None,
                   test_split: str | None = None, match_cost: MatchCost = "none") -> list[Arm]:
    """Train every config with every one of `seeds`: a fixed-seed comparison (see `run`).

    Args:
        configs: `(label, config)` pairs; the first is the baseline every other arm is
            paired against.
        seeds: The seeds, each at most once; every arm trains each with the same data order
            and augmentation.
        out_dir: The comparison's folder (runs, journal, pictures); default under outputs/.
        tracking: Log a parent MLflow run with every training nested under it.
        on_event: Receives each `RunDone` as it happens (`describe(event)` renders one).
        journal: A JSONL file: every finished run is appended, and a run already there is
            read back instead of trained, so an interrupted comparison resumes.
        test_split: Also score each run's best checkpoint on this split.
        match_cost: `flops` or `time`: the cheaper arms train more steps, so every arm
            spends what the costliest does.

    Returns:
        One `Arm` per config, holding its `RunRecord`s.

    Example:
        ```python
        from hybridunet.comparison import line, paired, run_comparison, table
        from hybridunet.config import load_config

        unet = load_config("tiny")
        hybrid = load_config("tiny", ["model.name=hybrid_unet"])
        arms = run_comparison([("unet", unet), ("hybrid_unet", hybrid)], seeds=[0, 1], tracking=False)
        print(table(arms))
        print(line(paired(arms[0], arms[1], "dice").outcome()))
        ```
    """
    return run(configs, seeds, out_dir=out_dir, tracking=tracking, on_event=on_event, journal=journal,
               test_split=test_split, match_cost=match_cost).arms


def run_sequential(configs: Configs, rule: Rule, out_dir: str | Path | None = None, tracking: bool = True,
                   *, on_event: Callable[[Event], None] | None = None, journal: str | Path | None = None,
                   test_split: str | None = None, seeds: Sequence[int] | None = None,
                   match_cost: MatchCost = "none") -> tuple[list[Arm], list[PairOutcome]]:
    """Add paired seeds (`seeds`, default 0, 1, 2, ...) until every config is decided against
    the first (better, worse or equivalent within `rule.margin`, at `rule.level` split over
    the pairs), or the cap or budget is reached; the open pairs are then undecided. The rule
    is `hybridunet.sequential`'s; its p-values and intervals are valid under this stopping."""
    found = run(configs, range(rule.max_seeds) if seeds is None else seeds, rule=rule, out_dir=out_dir,
                tracking=tracking, on_event=on_event, journal=journal, test_split=test_split, match_cost=match_cost)
    return found.arms, found.outcomes


@dataclass
class _Session:
    """The arms as they fill, the journal's runs, and the curves of the runs trained here."""

    configs: list[tuple[str, ExperimentConfig]]
    journal: Journal | None
    test_split: str | None
    on_event: Callable[[Event], None] | None
    total: int
    out_dir: Path
    budgets: dict[str, Budget] = field(default_factory=dict)  # label -> its matched budget, if matched
    tracker: TrackedComparison | None = None
    arms: list[Arm] = field(init=False)
    curves: Curves = field(default_factory=dict)
    done: int = 0

    def __post_init__(self) -> None:
        self.arms = [Arm(label) for label, _ in self.configs]
        self.finished = self.journal.records() if self.journal is not None else {}

    def tell(self, event: Event) -> None:
        if self.on_event is not None:
            self.on_event(event)

    def by_label(self) -> dict[str, Arm]:
        return {arm.label: arm for arm in self.arms}

    def resumed(self, label: str, config: ExperimentConfig, seed: int) -> RunRecord | None:
        return Journal.resumes(self.finished.get((label, seed, config.result_hash())), self.test_split)

    def add_round(self, configs: Sequence[tuple[str, ExperimentConfig]], seeds: Sequence[int],
                  train_round: TrainRound | None) -> None:
        """Every config with every seed of the round, seed by seed; `train_round` first trains
        what the journal lacks (elsewhere), and those runs are read back from it."""
        planned = [(label, config, seed) for seed in seeds for label, config in configs]
        by_round: set[tuple[str, int]] = set()
        if train_round is not None and self.journal is not None:
            todo = [run for run in planned if self.resumed(*run) is None]
            if todo:
                train_round(todo)
                self.finished = self.journal.records()
                by_round = {(label, seed) for label, _, seed in todo}
        for label, config, seed in planned:
            source: Literal["trained", "journal", "round"]
            record = self.resumed(label, config, seed)
            if record is None:
                record, curve = self.train(label, config, seed)
                self.curves.setdefault(label, {})[seed] = curve
                if self.journal is not None:
                    self.journal.append(record)
                source = "trained"
            else:
                source = "round" if (label, seed) in by_round else "journal"
            index = [lb for lb, _ in self.configs].index(label)
            self.arms[index] = self.arms[index].add(record)
            self.done += 1
            self.tell(RunDone(record, source, self.done, self.total,
                              self.journal.path if self.journal is not None else None))

    def train(self, label: str, config: ExperimentConfig, seed: int) -> tuple[RunRecord, list[float]]:
        """Train `config` with `seed` into ``out_dir/<label>-s<seed>``; with a test split, its
        best checkpoint is scored there too. Returns its record and validation Dice curve."""
        run_config = config.model_copy(deep=True)
        run_config.seed = seed
        run_config.train.out_dir = str(self.out_dir / f"{label}-s{seed}")
        run_config.tracking.run_name = f"{label}-s{seed}"
        run_config.tracking.log_model = "none"  # the arm's best seed logs its model at the end (`tracked`)
        callbacks = self.tracker.callbacks(run_config, label) if self.tracker is not None else []
        start = time.perf_counter()
        result = fit(run_config, callbacks=callbacks)  # timed whole: cost figures and tracking included
        record = replace(result.record, label=label, config_hash=config.result_hash(), seconds=time.perf_counter() - start)
        if label in self.budgets:
            entries = self.budgets[label].record()
            record = replace(record, cost={**record.cost, **entries})
            if self.tracker is not None:
                self.tracker.log_match(record.run_id, entries, run_config)
        if self.test_split:
            from hybridunet.engine import evaluate_checkpoint

            test = evaluate_checkpoint(result["checkpoint"], data=run_config.data.root, split=self.test_split)
            record = record.with_test(scores_of(test))
            if self.tracker is not None:
                self.tracker.log_test(record.run_id, test, run_config)
        return record, result.curve("val_dice")


@contextlib.contextmanager
def _tracked(session: _Session, tracking: bool, seeds: Sequence[int] | None) -> Iterator[TrackedComparison | None]:
    if not tracking:
        yield None
        return
    from hybridunet.comparison.tracked import tracked_comparison

    with tracked_comparison(session.configs, seeds, session.out_dir) as tracker:
        yield tracker
