"""Golden files: what a comparison prints (the table and the JSON last line) is pinned byte for
byte, for `compare --experiment` on a store and for a comparison read back from a journal.

The store is built here from the committed journal (tests/golden/journal.jsonl) through
MlflowClient, so no committed database has to survive MLflow's schema migrations; run ids are
masked. To write the outputs anew (a change of output made on purpose, in a commit of its own):
`HYBRIDUNET_GOLDEN_OUT=/tmp/golden pytest tests/test_golden.py`, then copy them into tests/golden/.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
from mlflow.entities import Metric
from mlflow.tracking import MlflowClient

GOLDEN = Path(__file__).parent / "golden"
LABELS = ("a", "b", "c")


def journal_lines() -> list[dict]:
    return [json.loads(line) for line in (GOLDEN / "journal.jsonl").read_text().splitlines()]


def check(name: str, text: str) -> None:
    text = re.sub(r"\b[0-9a-f]{32}\b", "<run_id>", text)
    out = os.environ.get("HYBRIDUNET_GOLDEN_OUT")
    if out:
        Path(out).mkdir(parents=True, exist_ok=True)
        (Path(out) / name).write_text(text)
    assert text == (GOLDEN / name).read_text(), f"{name} changed"


def printed(capsys) -> str:
    return capsys.readouterr().out


@pytest.fixture
def golden_store(mlflow_store) -> str:
    """The journal's runs as FINISHED training runs of a fresh experiment, oldest first."""
    client = MlflowClient(mlflow_store)
    name = f"golden-{os.getpid()}-{len(client.search_experiments())}"
    experiment = client.create_experiment(name)
    start = 1_700_000_000_000
    for line in journal_lines()[1:]:
        tags = {"label": line["label"], "seed": str(line["seed"]), "config.hash": line["config_hash"],
                "data.fingerprint": line["data_fingerprint"]}
        run = client.create_run(experiment, start_time=start, tags=tags).info.run_id
        values = {"best_val_dice": line["dice"], "best_val_miou": line["miou"], "test_dice": line["test_dice"],
                  "test_miou": line["test_miou"],
                  **{f"best_val_dice/{k}": v for k, v in line["per_class_dice"].items()},
                  **{f"test_dice/{k}": v for k, v in line["test_per_class_dice"].items()},
                  **{f"cost/{k}": v for k, v in (line.get("cost") or {}).items()}}
        client.log_batch(run, metrics=[Metric(k, v, start, 0) for k, v in values.items() if v is not None])
        client.set_terminated(run, "FINISHED", end_time=start + round(line["seconds"] * 1000))
        start += 60_000
    return name


def test_compare_experiment_prints_the_golden_table_and_json(golden_store, mlflow_store, monkeypatch, capsys):
    from hybridunet.cli import main

    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_store)
    assert main(["compare", "--experiment", golden_store]) == 0
    check("compare_experiment.txt", printed(capsys))


@pytest.fixture
def journalled(tiny_config, tiny_data, tmp_path):
    """Three configs and a copy of the journal whose lines carry their hashes: every run is there."""
    base = tiny_config(tiny_data, tmp_path / "unused", "tracking.enabled=false")
    configs = [(label, base.model_copy(update={"optim": base.optim.model_copy(update={"lr": lr})}))
               for label, lr in zip(LABELS, (0.001, 0.002, 0.003))]
    text = (GOLDEN / "journal.jsonl").read_text()
    for label, config in configs:
        text = text.replace(f'"HASH:{label}"', json.dumps(config.result_hash()))
    journal = tmp_path / "journal.jsonl"
    journal.write_text(text)
    return configs, journal


def test_a_sequential_comparison_read_back_from_its_journal_prints_the_golden_outcome(journalled, tmp_path,
                                                                                      monkeypatch, capsys):
    from hybridunet.comparison import Rule, run_sequential, summary, table
    from hybridunet.jsonsafe import json_safe

    configs, journal = journalled
    monkeypatch.setattr("hybridunet.comparison.runner.fit", _no_training)
    arms, decisions = run_sequential(configs, Rule(max_seeds=6), out_dir=tmp_path / "cmp", tracking=False,
                                     journal=journal, test_split="test")
    print(table(arms, decisions))
    print(json.dumps(json_safe(summary(arms, decisions))))
    check("journal_sequential.txt", printed(capsys))


def test_fixed_seeds_read_back_from_a_journal_print_the_golden_table(journalled, tmp_path, monkeypatch, capsys):
    from hybridunet.comparison import run_comparison, summary, table
    from hybridunet.jsonsafe import json_safe

    configs, journal = journalled
    monkeypatch.setattr("hybridunet.comparison.runner.fit", _no_training)
    arms = run_comparison(configs, range(6), out_dir=tmp_path / "cmp", tracking=False, journal=journal,
                          test_split="test")
    print(table(arms))
    print(json.dumps(json_safe(summary(arms))))
    check("journal_fixed.txt", printed(capsys))


def _no_training(*args, **kwargs):
    raise AssertionError("every run of the golden journal is read back, none is trained")
