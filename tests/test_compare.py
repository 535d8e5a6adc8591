"""compare: result records, pairing by seed, the journal, the statistics, the CLI and the demo."""

import json
import warnings

import numpy as np
import pytest
from mlflow.tracking import MlflowClient

from hybridunet.cli import main
from hybridunet.comparison import arms_from_mlflow, run_comparison
from hybridunet.engine import fit
from hybridunet.errors import DataError
from hybridunet.tracking import MLflowCallback


def test_a_failed_comparison_leaves_its_parent_failed(tracked, tiny_data, tmp_path, mlflow_store, monkeypatch):
    from hybridunet.comparison import runner

    def broken(config, callbacks=()):
        raise RuntimeError("simulated crash")

    monkeypatch.setattr(runner, "fit", broken)
    config = tracked(tiny_data, tmp_path, mlflow_store, "tracking.experiment=cmp-failed")
    with pytest.raises(RuntimeError, match="simulated crash"):
        run_comparison([("a", config), ("b", config)], [0], out_dir=tmp_path / "cmp")
    client = MlflowClient(mlflow_store)
    (parent,) = client.search_runs([client.get_experiment_by_name("cmp-failed").experiment_id])
    assert parent.info.status == "FAILED" and parent.data.tags["compare"] == "parent"


def test_compare_experiment_groups_by_label_keeps_the_newest_run_per_seed_and_warns(tracked, tiny_data, tmp_path,
                                                                                   mlflow_store):
    runs = iter(range(100))

    def train(seed: int, *overrides: str) -> dict:
        config = tracked(tiny_data, tmp_path / f"run{next(runs)}", mlflow_store, "tracking.experiment=by-label",
                         "train.epochs=1", "tracking.log_images=0", f"seed={seed}", *overrides)
        return fit(config, callbacks=[MLflowCallback(config.tracking)])

    train(0)
    newest = train(0)  # the same label and seed again: only the newer counts
    other_recipe = train(1, "optim.lr=0.01")  # same label, another recipe
    variant = train(0, "model.decoder_block=residual")
    notes: list[str] = []
    arms = {a.label: a for a in arms_from_mlflow("by-label", mlflow_store, notes=notes.append)}
    assert set(arms) == {"unet", "unet+decoder_block=residual"}
    assert sorted(r.run_id for r in arms["unet"].records) == sorted([newest["run_id"], other_recipe["run_id"]])
    assert arms["unet+decoder_block=residual"].values("dice") == {0: variant["dice"]}
    assert "unet: skipped 1 older run(s) of a seed that has a newer one" in notes
    assert any(n.startswith("warning: runs labelled unet differ in their result-changing config") for n in notes)
    assert not any("labelled unet+decoder_block" in n for n in notes)


def test_a_seed_listed_twice_fails_before_any_training(tiny_config, tiny_data, tmp_path):
    from hybridunet.errors import UsageError
    from hybridunet.results import Arm, RunRecord, Scores

    config = tiny_config(tiny_data, tmp_path)
    with pytest.raises(UsageError, match=r"seed\(s\) \[1\] listed more than once"):
        run_comparison([("a", config), ("b", config)], [0, 1, 1], tracking=False)
    assert not (tmp_path / "outputs").exists()
    with pytest.raises(UsageError, match=r"arm 'b' holds seed\(s\) \[0\] more than once"):
        Arm("b", (RunRecord("b", 0, Scores(0.3, 0.2)), RunRecord("b", 0, Scores(0.4, 0.3))))


def test_demo_generates_missing_data_and_prints_the_comparison(tmp_path, monkeypatch, capsys):
    from hybridunet import demo

    monkeypatch.setattr(demo, "DATA", tmp_path / "synthetic")
    monkeypatch.setattr(demo, "RECIPE", {
        **demo.RECIPE,
        "data": {**demo.RECIPE["data"], "root": str(tmp_path / "synthetic"), "size": 32,
                 "limit_train": 4, "limit_val": 4},
        "model": {"widths": [4, 8, 16]},
        "train": {**demo.RECIPE["train"], "epochs": 1},
    })
    monkeypatch.setattr(demo, "SYNTHETIC", {"train": 4, "val": 4, "size": 32, "seed": 0})
    monkeypatch.chdir(tmp_path)
    rules = []
    real = demo.run_sequential
    monkeypatch.setattr(demo, "run_sequential", lambda configs, rule, **kw: rules.append(rule) or real(configs, rule, **kw))
    summary = demo.run_demo(tracking=False, max_seeds=3)
    assert rules[0].budget_minutes is None and rules[0].max_seeds == 3  # a cap in seeds, no clock
    out = capsys.readouterr().out
    assert "generating synthetic street scenes" in out and "dice hybrid_unet_resdec - unet: " in out
    assert set(summary["arms"]) == {"unet", "hybrid_unet_resdec"} and len(summary["arms"]["unet"]["dice"]) == 3
    (decision,) = summary["decisions"]
    assert decision["decision"] in ("better", "worse", "equivalent", "undecided") and decision["seeds"] == [0, 1, 2]
    assert "3 seeds in " in out


def test_a_journaled_comparison_continues_where_it_stopped_and_scores_a_held_out_split(tiny_config, tmp_path, monkeypatch):
    """Runs go seed by seed; each finished one is a JSON line; a rerun reads those back
    and trains only what is missing. The test split is scored on the best checkpoint."""
    from hybridunet.comparison import RunDone, runner
    from hybridunet.data.synthetic import synthesize

    data = synthesize(tmp_path / "data", train=4, val=2, test=3, size=32)
    config = tiny_config(data, tmp_path / "unused", "tracking.enabled=false", "train.epochs=1")
    configs = [("a", config), ("b", config.model_copy(update={"optim": config.optim.model_copy(update={"lr": 0.01})}))]
    journal = tmp_path / "runs.jsonl"
    real, calls = runner.fit, []

    def stop_at_third(run_config, callbacks=()):
        calls.append(run_config.tracking.run_name)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(run_config, callbacks)

    monkeypatch.setattr(runner, "fit", stop_at_third)
    with pytest.raises(KeyboardInterrupt):
        run_comparison(configs, [0, 1], out_dir=tmp_path / "cmp", tracking=False, journal=journal, test_split="test")
    assert calls == ["a-s0", "b-s0", "a-s1"]
    lines = [json.loads(line) for line in journal.read_text().splitlines()]
    assert [(r["label"], r["seed"]) for r in lines] == [("a", 0), ("b", 0)]
    monkeypatch.setattr(runner, "fit", real)
    events: list[RunDone] = []
    arms = run_comparison(configs, [0, 1], out_dir=tmp_path / "cmp2", tracking=False, journal=journal,
                          test_split="test", on_event=events.append)
    assert [e.source for e in events] == ["journal", "journal", "trained", "trained"]
    assert [(e.done, e.total, e.record.label, e.record.seed) for e in events] == [
        (1, 4, "a", 0), (2, 4, "b", 0), (3, 4, "a", 1), (4, 4, "b", 1)]
    fingerprints = {r.data_fingerprint for arm in arms for r in arm.records}
    assert len(fingerprints) == 1 and None not in fingerprints  # fit's result carries it: one data set
    assert arms[0].values("dice")[0] == lines[0]["dice"] and len(journal.read_text().splitlines()) == 4
    from hybridunet.engine import evaluate_checkpoint

    best = tmp_path / "cmp2" / "b-s1" / "best.safetensors"
    assert arms[1].values("test_dice")[1] == pytest.approx(evaluate_checkpoint(best, data=data, split="test")["dice"],
                                                           abs=1e-9)
    assert all(len(a.values("test_dice")) == 2 for a in arms)
    journal.write_text(journal.read_text() + "not json\n")
    with pytest.raises(DataError, match=r"runs\.jsonl, line 5: not a run of this journal"):
        run_comparison(configs, [0], tracking=False, journal=journal)


def test_paired_statistics_agree_with_scipy_and_statsmodels():
    """The paired t-test, the detectable difference at 80% power and Holm's correction,
    each against an independent implementation."""
    from scipy import stats
    from statsmodels.stats.multitest import multipletests
    from statsmodels.stats.power import TTestPower

    from hybridunet.comparison import holm, paired
    from hybridunet.results import Arm, RunRecord, Scores

    def arm(label, seeds, dice):
        return Arm(label, tuple(RunRecord(label, s, Scores(d, d)) for s, d in zip(seeds, dice)))

    a = arm("a", [0, 1, 2, 3], [0.50, 0.55, 0.52, 0.58])
    b = arm("b", [3, 1, 0, 2], [0.61, 0.57, 0.56, 0.55])  # seeds out of order: paired by seed
    d = paired(a, b)
    assert d.diffs == pytest.approx([0.03, 0.02, 0.06, 0.03])
    assert d.p_value == pytest.approx(stats.ttest_rel([0.56, 0.57, 0.55, 0.61], [0.50, 0.55, 0.52, 0.58]).pvalue)
    effect = TTestPower().solve_power(nobs=4, alpha=0.05, power=0.8, alternative="two-sided")
    assert d.detectable == pytest.approx(effect * np.std(d.diffs, ddof=1), rel=1e-4)
    p_values = [0.01, 0.04, 0.03, 0.005, float("nan")]
    expected = multipletests(p_values[:4], method="holm")[1]
    assert holm(p_values)[:4] == pytest.approx(list(expected)) and np.isnan(holm(p_values)[4])


def test_compare_refuses_a_repeated_seed_and_a_zero_count(tiny_yaml, capsys):
    assert main(["compare", "--configs", str(tiny_yaml), str(tiny_yaml), "--seeds", "1", "2", "1"]) == 2
    assert "seed(s) [1] listed more than once" in capsys.readouterr().err
    assert main(["compare", "--configs", str(tiny_yaml), str(tiny_yaml), "--seeds", "0"]) == 2
    assert "--seeds 0" in capsys.readouterr().err


def record(label, seed, dice, test=None):
    from hybridunet.results import RunRecord, Scores

    return RunRecord(label, seed, Scores(dice, dice / 2), None if test is None else Scores(test, test / 2),
                     config_hash="abc")


def test_a_record_round_trips_through_a_journal_line_and_reads_old_lines(tmp_path):
    from hybridunet.results import Journal, RunRecord

    full = record("unet+skip=attention_gate", 3, 0.5, test=0.4)
    Journal(tmp_path / "j.jsonl").append(full)
    old = {"label": "unet:skip=attention_gate,bottleneck=aspp", "seed": 1, "dice": 0.3, "miou": 0.2,
           "per_class_dice": {"road": 0.9}, "seconds": 4.0}  # quality.py's old arm syntax, no hash, no test
    with (tmp_path / "j.jsonl").open("a") as f:
        f.write(json.dumps(old) + "\n")
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)  # a recorded label is read back quietly
        runs = Journal(tmp_path / "j.jsonl").records()
    assert runs[full.key] == full
    legacy = runs[("unet+skip=attention_gate+bottleneck=aspp", 1, None)]
    assert legacy.value("dice") == 0.3 and legacy.value("test_dice") is None and legacy.val.per_class_dice == {
        "road": 0.9}
    assert RunRecord.from_json(full.to_json()) == full


def test_pairing_goes_by_seed_and_names_the_seeds_a_missing_test_score_leaves_out(tmp_path, tiny_config):
    """A journal that mixes records with and without test scores pairs only the seeds both
    arms have, and says which were left out."""
    from hybridunet.comparison import line, paired, table
    from hybridunet.results import Journal, group

    journal = Journal(tmp_path / "mixed.jsonl")
    for r in [record("a", 0, 0.50, 0.40), record("b", 0, 0.60, 0.45), record("a", 1, 0.52),
              record("b", 1, 0.58, 0.47), record("a", 2, 0.51, 0.42), record("b", 2, 0.61, 0.50)]:
        journal.append(r)
    a, b = group(journal.records().values())
    val, test = paired(a, b, "dice"), paired(a, b, "test_dice")
    assert val.seeds == (0, 1, 2) and val.diffs == pytest.approx((0.10, 0.06, 0.10))
    assert test.seeds == (0, 2) and test.diffs == pytest.approx((0.05, 0.08))  # never seed 1's 0.47 against seed 2
    assert test.left_out == {"b": (1,)}
    assert "seeds [1] of b left out" in line(test.outcome())
    assert "test_dice b - a: +0.0650" in table([a, b])


def test_an_arm_refuses_a_second_record_of_a_seed_and_records_of_another_label():
    from hybridunet.errors import UsageError
    from hybridunet.results import Arm

    with pytest.raises(UsageError, match=r"arm 'a' holds seed\(s\) \[0\] more than once"):
        Arm("a").add(record("a", 0, 0.1)).add(record("a", 0, 0.2))
    with pytest.raises(UsageError, match=r"arm 'a' was given records labelled \['b'\]"):
        Arm("a", (record("b", 0, 0.1),))


@pytest.mark.parametrize("argv,seeds,epochs", [
    (["--seeds", "2", "train.epochs=1"], [0, 1], 1),  # a count, then overrides
    (["--seeds", "0", "2", "train.epochs=1"], [0, 2], 1),  # several seeds, then overrides
    (["train.epochs=1", "--seeds", "1:3"], [1, 2], 1),  # overrides before the flag, a range
])
def test_compare_seeds_take_a_count_a_range_or_several_and_overrides_around_them(argv, seeds, epochs, tiny_yaml,
                                                                              monkeypatch, capsys):
    trained = []

    def fake_fit(config, callbacks=()):
        trained.append((config.seed, config.train.epochs, config.data.root))
        return fake_result(config, 0.5 + config.seed / 100)

    monkeypatch.setattr("hybridunet.comparison.runner.fit", fake_fit)
    assert main(["compare", "--configs", str(tiny_yaml), str(tiny_yaml), *argv, "data.root=syn",
                 "tracking.enabled=false"]) == 0
    assert [t[0] for t in trained] == [s for s in seeds for _ in range(2)]
    assert {t[1:] for t in trained} == {(epochs, "syn")}
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["arms"]["tiny-1"]["seeds"] == seeds


def test_two_identical_configs_are_decided_equivalent_at_the_first_look_through_the_cli(tiny_yaml, tiny_data, tmp_path,
                                                                                       capsys):
    """Training is deterministic per seed: the paired differences are exactly 0."""
    argv = ["compare", "--configs", str(tiny_yaml), str(tiny_yaml), "--max-seeds", "6", "--min-seeds", "3",
            f"data.root={tiny_data}",
            "train.epochs=1", "data.limit_train=8", "data.limit_val=4", "tracking.enabled=false",
            f"train.out_dir={tmp_path / 'unused'}"]
    assert main(argv) == 0
    out = capsys.readouterr().out.strip().splitlines()
    summary = json.loads(out[-1])
    (decision,) = summary["decisions"]
    assert decision["decision"] == "equivalent" and decision["seeds"] == [0, 1, 2]
    assert decision["estimate"] == 0 and decision["ci95"] == [0, 0]
    assert any(line.startswith("dice tiny-2 - tiny-1: equivalent within ±0.01, +0.0000") and
               line.endswith("decided at 3 seeds") for line in out)
    assert "nan" not in "\n".join(out).lower()


def fake_result(config, dice: float):
    """What fit returns, without training: `dice` at one epoch."""
    from hybridunet.engine import FitResult

    metrics = {"dice": dice, "miou": 0.3, "per_class_dice": {}, "checkpoint": "x"}
    return FitResult(metrics, config, [{"val_dice": dice}], "0123456789ab", 1.0)


def fake_training(monkeypatch, dice_of):
    """The runner's fit replaced: Dice as `dice_of(label_lr, seed)`; returns the (lr, seed) trained."""
    trained = []

    def fit(config, callbacks=()):
        trained.append((config.optim.lr, config.seed))
        return fake_result(config, dice_of(config.optim.lr, config.seed))

    monkeypatch.setattr("hybridunet.comparison.runner.fit", fit)
    return trained


def test_a_sequence_stops_at_its_first_decision_and_a_journal_keeps_its_rule(tiny_config, tiny_data, tmp_path,
                                                                             monkeypatch):
    from hybridunet.comparison import Rule, line, run_sequential
    from hybridunet.errors import UsageError

    noise = [0.01, -0.02, 0.015, 0.0, -0.01, 0.02, 0.005, -0.015, 0.01, 0.0]
    trained = fake_training(monkeypatch, lambda lr, seed: 0.5 + (0.1 if lr == 0.01 else 0) + noise[seed] * (lr == 0.01))
    a = tiny_config(tiny_data, tmp_path, "tracking.enabled=false")
    b = tiny_config(tiny_data, tmp_path, "tracking.enabled=false", "optim.lr=0.01")
    journal = tmp_path / "sequence.jsonl"
    arms, (decision,) = run_sequential([("a", a), ("b", b)], Rule(max_seeds=10), tracking=False, journal=journal)
    assert decision.decision == "better" and 3 <= decision.n < 10
    assert len(trained) == 2 * decision.n and arms[1].seeds == list(range(decision.n))
    assert decision.interval[0] > 0 and "b better, +0.10" in line(decision)
    # the same journal under another rule is refused; under the same rule nothing is trained again
    with pytest.raises(UsageError, match=r"continues a sequence under .*max_seeds': 10"):
        run_sequential([("a", a), ("b", b)], Rule(max_seeds=6), tracking=False, journal=journal)
    trained.clear()
    again = run_sequential([("a", a), ("b", b)], Rule(max_seeds=10), tracking=False, journal=journal)[1]
    assert trained == [] and again[0] == decision


def test_an_undecided_sequence_stops_at_the_cap_and_says_so(tiny_config, tiny_data, tmp_path, monkeypatch):
    from hybridunet.comparison import Rule, line, run_sequential

    noise = [0.03, -0.05, 0.04, -0.02, 0.05]
    fake_training(monkeypatch, lambda lr, seed: 0.5 + noise[seed] * (lr == 0.01))
    a = tiny_config(tiny_data, tmp_path, "tracking.enabled=false")
    b = tiny_config(tiny_data, tmp_path, "tracking.enabled=false", "optim.lr=0.01")
    c = tiny_config(tiny_data, tmp_path, "tracking.enabled=false", "optim.lr=0.02")
    arms, decisions = run_sequential([("a", a), ("b", b), ("c", c)], Rule(max_seeds=5), tracking=False)
    assert [d.b for d in decisions] == ["b", "c"] and all(len(arm.seeds) == 5 for arm in arms)
    assert decisions[0].decision == "undecided" and decisions[0].n == 5
    assert "undecided, " in line(decisions[0]) and "equivalence could be shown within ±" in line(decisions[0])
    assert decisions[1].decision == "equivalent" and decisions[1].n == 3  # lr 0.02: identical to a


def test_a_budget_stops_before_a_seed_that_would_pass_it_and_leaves_the_pair_undecided(tiny_config, tiny_data,
                                                                                      tmp_path, monkeypatch):
    from hybridunet.comparison import BudgetStop, Rule, run_sequential, runner

    noise = [0.03, -0.05, 0.04, -0.02, 0.05, 0.01, -0.03]
    now = [0.0]  # a run "takes" 45 s of the runner's clock: a seed pair 90 s

    def dice(lr, seed):
        now[0] += 45
        return 0.5 + noise[seed] * (lr == 0.01)

    fake_training(monkeypatch, dice)
    monkeypatch.setattr(runner.time, "perf_counter", lambda: now[0])
    a = tiny_config(tiny_data, tmp_path, "tracking.enabled=false")
    b = tiny_config(tiny_data, tmp_path, "tracking.enabled=false", "optim.lr=0.01")
    events = []
    arms, (decision,) = run_sequential([("a", a), ("b", b)], Rule(max_seeds=7, budget_minutes=8), tracking=False,
                                       on_event=events.append)
    assert 3 <= len(arms[0].seeds) < 7 and decision.decision == "undecided"
    assert decision.n == len(arms[0].seeds)
    assert events[-1] == BudgetStop(seeds=5, minutes=8) and len(arms[0].seeds) == 5  # 450 s + 90 s > 480 s


def test_a_look_over_a_family_reports_the_p_value_against_the_familys_level():
    """With two pairs each is tested at half the level, so its p-value is doubled (Bonferroni):
    a printed p below the rule's level always means a decision."""
    from hybridunet.comparison import Rule, look
    from hybridunet.results import Arm, RunRecord, Scores
    from hybridunet.sequential import decide

    diffs = [0.05, 0.07, 0.04, 0.06, 0.08]
    base = Arm("a", tuple(RunRecord("a", s, Scores(0.2, 0.1)) for s in range(5)))
    other = Arm("b", tuple(RunRecord("b", s, Scores(0.2 + d, 0.1)) for s, d in enumerate(diffs)))
    twin = Arm("c", other.records and tuple(RunRecord("c", r.seed, r.val) for r in other.records))
    rule = Rule(max_seeds=5)
    outcomes = look([(base, other), (base, twin)], rule, "dice", range(5))
    alone = decide([other.values("dice")[s] - 0.2 for s in range(5)], 3, 5, 0.01, rule.level / 2)
    assert outcomes[("a", "b")].p == pytest.approx(min(1.0, 2 * alone.p_value))
    assert outcomes[("a", "b")].interval == alone.ci and outcomes[("a", "b")].decision == alone.decision
    assert look([(base, other)], rule, "dice", range(2)) == {}  # below the first look: no outcome yet


def test_the_runner_takes_any_seeds_looks_after_each_and_trains_only_open_pairs_in_rounds(tiny_config, tiny_data,
                                                                                         tmp_path, monkeypatch):
    """Seeds 20.. in rounds of two, a hook that trains each round into the journal (as quality's
    --jobs processes do), one look per seed, and a decided pair's arms no longer trained."""
    from hybridunet.comparison import Looked, Rule, RunDone, run
    from hybridunet.results import Journal, RunRecord, Scores

    a = tiny_config(tiny_data, tmp_path, "tracking.enabled=false")
    configs = [(label, a.model_copy(update={"optim": a.optim.model_copy(update={"lr": lr})}))
               for label, lr in (("a", 0.001), ("b", 0.002), ("c", 0.003))]
    noise = {s: v for s, v in zip(range(20, 30), [0.03, -0.05, 0.04, -0.02, 0.05, 0.01, -0.03, 0.02, 0.0, 0.01])}
    dice = {"a": lambda s: 0.5, "b": lambda s: 0.6 + noise[s] / 10, "c": lambda s: 0.5 + noise[s]}
    journal, rounds, events = Journal(tmp_path / "j.jsonl"), [], []

    def hook(todo):
        rounds.append(sorted({seed for _, _, seed in todo}))
        for label, config, seed in todo:
            journal.append(RunRecord(label, seed, Scores(dice[label](seed), 0.3), config_hash=config.result_hash()))

    monkeypatch.setattr("hybridunet.comparison.runner.fit", lambda *a, **k: pytest.fail("the hook trains"))
    found = run(configs, range(20, 30), rule=Rule(max_seeds=8, min_seeds=3), pairs=[("a", "b"), ("a", "c")], seeds_per_round=2,
                train_round=hook, only_open=True, tracking=False, journal=journal.path, on_event=events.append)
    b, c = found.outcomes
    assert b.decision == "better" and b.seeds[0] == 20 and c.decision == "undecided" and c.n == 8
    assert rounds[0] == [20, 21, 22] and all(len(r) <= 2 for r in rounds[1:])  # the first look needs 3
    looks = [e for e in events if isinstance(e, Looked)]
    assert [len(e.seen) for e in looks] == list(range(3, 9))  # one look per seed
    assert {e.source for e in events if isinstance(e, RunDone)} == {"round"}
    trained_b = [r.seed for r in found.arms[1].records]
    assert max(trained_b) < 27 and found.arms[2].seeds == list(range(20, 28))  # b stops training once decided


def test_nothing_in_the_repository_imports_the_deprecated_module_and_it_still_works():
    import importlib
    import re
    import sys
    import warnings
    from pathlib import Path

    repo = Path(__file__).resolve().parents[1]
    pattern = re.compile(r"^\s*(from hybridunet\.compare\b|import hybridunet\.compare\b|from hybridunet import compare\b)",
                         re.M)
    users = [str(p.relative_to(repo)) for folder in ("hybridunet", "benchmarks", "experiments", "tests")
             for p in (repo / folder).rglob("*.py") if pattern.search(p.read_text()) and p.name != "compare.py"]
    assert users == []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        sys.modules.pop("hybridunet." + "compare", None)  # spelled so the scan above skips it
        shim = importlib.import_module("hybridunet." + "compare")
    assert [w.category for w in caught] == [DeprecationWarning] and "hybridunet.comparison" in str(caught[0].message)
    from hybridunet import comparison

    assert shim.run_sequential is comparison.run_sequential and shim.PairOutcome is comparison.PairOutcome


def test_a_journal_recorded_under_the_earlier_rule_is_continued_and_decided_under_it(tiny_config, tiny_data,
                                                                                     tmp_path, monkeypatch):
    """A rule line with no method was written before the exact boundaries: the sequence goes on
    under the Bonferroni rule, an event says so, and the journal's rule line stays as it was."""
    from hybridunet.comparison import OldRule, Rule, run_sequential
    from hybridunet.sequential import decide

    noise = [0.01, -0.02, 0.015, 0.0, -0.01, 0.02, 0.005, -0.015, 0.01, 0.0]
    fake_training(monkeypatch, lambda lr, seed: 0.5 + (0.03 + noise[seed]) * (lr == 0.01))
    a = tiny_config(tiny_data, tmp_path, "tracking.enabled=false")
    b = tiny_config(tiny_data, tmp_path, "tracking.enabled=false", "optim.lr=0.01")
    journal = tmp_path / "old.jsonl"
    old_line = '{"rule": {"max_seeds": 10, "min_seeds": 3, "margin": 0.01, "level": 0.05}}'
    journal.write_text(old_line + "\n")
    events = []
    _, (outcome,) = run_sequential([("a", a), ("b", b)], Rule(max_seeds=10), tracking=False, journal=journal,
                                   on_event=events.append)
    assert events[0] == OldRule(journal) and outcome.method == "bonferroni"
    old = decide(outcome.diffs, 3, 10, 0.01, 0.05, method="bonferroni")
    assert (outcome.decision, outcome.n, outcome.interval) == (old.decision, old.n, old.ci)
    assert journal.read_text().splitlines()[0] == old_line
    assert sum('"rule"' in line for line in journal.read_text().splitlines()) == 1
    # the exact rule on the same differences is another rule: it is not what this journal decided
    assert decide(outcome.diffs[:old.n], 3, 10, 0.01, 0.05).ci != old.ci


def test_plan_prints_the_design_with_power_and_expected_seeds_and_refuses_a_design_that_cannot_be(capsys):
    assert main(["plan", "--max-seeds", "10", "--sims", "4000"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    plan = json.loads(out[-1])
    assert plan["min_seeds"] == 4 and [look["seeds"] for look in plan["looks"]] == list(range(4, 11))
    assert plan["looks"][-1]["alpha_spent"] == pytest.approx(0.05, abs=1e-4)
    bounds = [look["t_bound"] for look in plan["looks"]]
    assert bounds == sorted(bounds, reverse=True)  # O'Brien-Fleming type: strict early, near the t-test late
    power = {row["d_z"]: row for row in plan["operating"]}
    assert sorted(power) == [0.5, 1.0, 1.5, 2.0, 2.5, 3.0]
    assert power[1.0]["power"] >= 0.7 and power[1.0]["fixed_n_power"] == pytest.approx(0.80, abs=0.01)
    assert power[3.0]["expected_seeds"] < power[1.0]["expected_seeds"] < 10
    for argv, named in ((["--max-seeds", "3", "--min-seeds", "4"], "max_seeds 3"),
                        (["--max-seeds", "10", "--level", "0.7"], "level 0.7"),
                        (["--max-seeds", "10", "--spending", "nope"], "spending 'nope'")):
        assert main(["plan", *argv]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and named in err[0]


def test_an_interim_look_shows_its_repeated_interval_and_no_p_value_until_the_pair_stops():
    from hybridunet.comparison import Rule, line, look
    from hybridunet.results import Arm, RunRecord, Scores

    diffs = [0.05, 0.01, 0.08, -0.02, 0.06, 0.03]
    base = Arm("a", tuple(RunRecord("a", s, Scores(0.2, 0.1)) for s in range(6)))
    other = Arm("b", tuple(RunRecord("b", s, Scores(0.2 + d, 0.1)) for s, d in enumerate(diffs)))
    interim = look([(base, other)], Rule(max_seeds=10), "dice", range(6))[("a", "b")]
    assert interim.interim and interim.decision == "undecided" and interim.as_dict()["p_value"] is None
    assert line(interim).endswith("repeated), at 6 seeds; equivalence could be shown within "
                                  f"±{interim.equivalence_margin:.4f}")
    capped = look([(base, other)], Rule(max_seeds=6), "dice", range(6))[("a", "b")]
    assert not capped.interim and capped.as_dict()["p_value"] == capped.p > 0.05


def test_at_matched_flops_the_cheaper_arm_trains_longer_and_every_record_says_so(tiny_config, tiny_data, tmp_path,
                                                                                  monkeypatch, capsys):
    """unet against a hybrid that costs more per step: unet's steps are its own times the FLOPs
    ratio (within one step), the hybrid keeps its own; the journal records the budgets and
    refuses another mode; the table shows the training amount and the line says so."""
    from hybridunet.comparison import line, run_comparison, table
    from hybridunet.comparison.cost import base_steps, train_flops_per_step
    from hybridunet.errors import UsageError

    trained, looks = {}, {}

    def fit(config, callbacks=()):
        trained[(config.model.name, config.seed)] = config.train.steps
        looks[config.model.name] = config.train.looks
        return fake_result(config, 0.5 + 0.01 * config.seed)

    monkeypatch.setattr("hybridunet.comparison.runner.fit", fit)
    a = tiny_config(tiny_data, tmp_path, "tracking.enabled=false")
    b = tiny_config(tiny_data, tmp_path, "tracking.enabled=false", "model.name=hybrid_unet",
                    "model.bottleneck_kwargs={heads: 4}")
    journal = tmp_path / "matched.jsonl"
    arms = run_comparison([("unet", a), ("hybrid", b)], [0, 1], tracking=False, journal=journal, match_cost="flops")
    ratio = train_flops_per_step(b) / train_flops_per_step(a)
    assert ratio > 1 and trained[("hybrid_unet", 0)] is None  # the costliest arm's recipe as it is
    assert abs(trained[("unet", 0)] - base_steps(a) * ratio) <= 1
    assert looks == {"unet": a.train.epochs, "hybrid_unet": None}  # validated as often as the costliest
    unet, hybrid = arms
    assert unet.label == f"unet@{trained[('unet', 0)] / base_steps(a):.2f}x-flops" and hybrid.label == "hybrid"
    for arm, model, mode in ((unet, "unet", "flops"), (hybrid, "hybrid_unet", "none")):  # the costliest: unmatched
        for r in arm.records:
            assert r.cost["match_cost"] == mode and r.cost["train_steps"] == (trained[(model, r.seed)] or base_steps(b))
    assert arms[0].records[0].cost["cost_multiplier"] == pytest.approx(trained[("unet", 0)] / base_steps(a))
    unet_total = arms[0].records[0].cost["train_tflops"]
    hybrid_total = arms[1].records[0].cost["train_tflops"]
    assert unet_total == pytest.approx(hybrid_total, rel=1 / base_steps(a))  # the same FLOPs, within a step
    text = table(arms)
    assert "train steps" in text.splitlines()[0] and "at matched FLOPs:" in text
    first = json.loads(journal.read_text().splitlines()[0])
    assert first["match"]["mode"] == "flops" and set(first["match"]["arms"]) == {"unet", "hybrid"}
    trained.clear()
    again = run_comparison([("unet", a), ("hybrid", b)], [0, 1], tracking=False, journal=journal, match_cost="flops")
    assert trained == {} and [r.cost for r in again[0].records] == [r.cost for r in arms[0].records]
    # unmatched, the costliest arm's runs are shared; only unet trains again, at its own steps
    run_comparison([("unet", a), ("hybrid", b)], [0, 1], tracking=False, journal=journal)
    assert trained == {("unet", 0): None, ("unet", 1): None}
    with pytest.raises(UsageError, match="budget for unet was measured on recipe"):
        longer = a.model_copy(update={"train": a.train.model_copy(update={"epochs": a.train.epochs + 1})})
        run_comparison([("unet", longer), ("hybrid", b)], [0], tracking=False, journal=journal, match_cost="flops")
    assert main(["compare", "--configs", "a.yaml", "b.yaml", "--match-cost", "wild"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--match-cost 'wild'" in err[0]
    assert "at matched FLOPs" in line(paired_outcome(arms))


def paired_outcome(arms):
    from hybridunet.comparison import paired

    return paired(arms[0], arms[1], "dice").outcome()


def test_at_matched_time_each_arm_is_timed_here_and_the_costliest_keeps_its_steps(tiny_config, tiny_data, tmp_path,
                                                                                  monkeypatch, mlflow_store):
    from hybridunet.comparison import line, run_sequential
    from hybridunet.comparison.cost import base_steps, match
    from hybridunet.comparison.rule import Rule
    from hybridunet.tracking.runs import log_match

    a = tiny_config(tiny_data, tmp_path, "tracking.enabled=false", "model.widths=[4,8,16]")
    b = tiny_config(tiny_data, tmp_path, "tracking.enabled=false", "model.widths=[64,128,256]")  # far costlier
    budgets = match([("a", a), ("b", b)], "time")
    costliest = max(budgets.values(), key=lambda x: x.base_steps * x.per_step)
    assert costliest.multiplier == 1 and all(x.multiplier >= 1 and x.per_step > 0 for x in budgets.values())
    for x in budgets.values():
        assert abs(x.steps * x.per_step - costliest.steps * costliest.per_step) <= x.per_step  # within a step
    fake_training(monkeypatch, lambda lr, seed: 0.5)
    _, (outcome,) = run_sequential([("a", a), ("b", b)], Rule(max_seeds=3), tracking=False, match_cost="time")
    assert outcome.matched == "time" and " at matched time: equivalent" in line(outcome)
    from hybridunet.checkpoint import read_meta
    from hybridunet.engine import fit as real_fit

    real_fit(a.model_copy(update={"train": a.train.model_copy(update={"out_dir": str(tmp_path / "real")})}))
    assert read_meta(tmp_path / "real" / "last.safetensors")["train_state"]["scheduler"]["last_epoch"] == base_steps(a)
    client = MlflowClient(mlflow_store)
    experiment = client.get_experiment_by_name("matched") or client.get_experiment(client.create_experiment("matched"))
    run = client.create_run(experiment.experiment_id)
    cheaper = budgets["a"]
    assert costliest is budgets["b"] and cheaper.multiplier > 1
    log_match(run.info.run_id, cheaper.record(), b.tracking.model_copy(update={"uri": mlflow_store}))
    logged = client.get_run(run.info.run_id).data
    assert logged.params["match_cost"] == "time" and float(logged.params["cost_multiplier"]) == cheaper.multiplier
    assert logged.metrics["train_steps"] == cheaper.steps and logged.metrics["train_tflops"] > 0
