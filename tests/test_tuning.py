import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
import yaml
from mlflow.tracking import MlflowClient
from optuna.trial import TrialState

from hybridunet.config import ConfigError
from hybridunet.tuning import FINISHED, load_search_space, tune
from tests.conftest import TINY, tiny_config

SPACE = {
    "sampler": {"seed": 0, "n_startup_trials": 2},
    "pruner": {"name": "none"},
    "params": {
        "optim.lr": {"type": "float", "low": 1e-3, "high": 1e-2, "log": True},
        "model.widths": {"type": "categorical", "choices": [[8, 16, 32], [8, 16, 32, 64]]},
        "model.skip": {"type": "categorical", "choices": ["concat", "attention_gate"]},
    },
}


def write_space(tmp_path: Path, space: dict = SPACE) -> Path:
    path = tmp_path / "space.yaml"
    path.write_text(yaml.safe_dump(space))
    return path


def finished(storage: str, name: str) -> list:
    return optuna.load_study(study_name=name, storage=storage).get_trials(states=FINISHED)


def test_a_three_trial_study_completes_with_nested_mlflow_runs(tiny_data, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    base = tiny_config(tiny_data, tmp_path / "unused", "train.epochs=1", "tracking.enabled=true",
                       f"tracking.uri=sqlite:///{tmp_path / 'mlflow.db'}", "tracking.experiment=study")
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    study = tune(base, load_search_space(write_space(tmp_path), base), trials=3, storage=storage, study_name="s3")
    assert len(study.get_trials(states=(TrialState.COMPLETE,))) == 3
    client = MlflowClient(base.tracking.uri)
    parent_id = study.user_attrs["mlflow_parent_run_id"]
    experiment = client.get_experiment_by_name("study").experiment_id
    children = client.search_runs([experiment], f"tags.mlflow.parentRunId = '{parent_id}'")
    assert len(children) == 3
    assert {c.data.tags["optuna.state"] for c in children} == {"COMPLETE"}
    assert all("trial.optim.lr" in c.data.params for c in children)
    assert client.get_run(parent_id).info.status == "FINISHED"
    best = yaml.safe_load((tmp_path / "outputs" / "tune-s3" / "best.yaml").read_text())
    assert best["optim"]["lr"] == pytest.approx(study.best_params["optim.lr"])
    assert best["model"]["widths"] == json.loads(study.best_params["model.widths"])
    # running it again with the same total does nothing more
    assert len(tune(base, load_search_space(write_space(tmp_path), base), 3, storage, "s3").trials) == 3


def test_a_hopeless_trial_is_pruned(tiny_data, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    base = tiny_config(tiny_data, tmp_path / "unused", "train.epochs=3", "train.batch_size=2",
                       "data.val_split=train", "data.limit_val=16", "sched.name=none", "optim.lr=0.01")
    space = {"pruner": {"name": "median", "n_startup_trials": 1, "n_warmup_steps": 0},
             "params": {"optim.lr": {"type": "categorical", "choices": [0.01, 1.0e-12]}}}
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    study = optuna.create_study(study_name="prune", storage=storage, direction="maximize")
    study.enqueue_trial({"optim.lr": 0.01})
    study.enqueue_trial({"optim.lr": 1.0e-12})  # learns nothing: below the median at its first epoch
    study = tune(base, load_search_space(write_space(tmp_path, space), base), 2, storage, "prune")
    states = [t.state for t in study.trials]
    assert states == [TrialState.COMPLETE, TrialState.PRUNED]
    assert len(study.trials[1].intermediate_values) < 3


def _tune_cmd(tmp_path: Path, space: Path, storage: str, trials: int, study: str) -> list[str]:
    return [sys.executable, "-m", "hybridunet", "tune", "--config", str(TINY), "--search", str(space),
            "--trials", str(trials), "--storage", storage, "--study", study,
            f"data.root={os.environ['TINY_DATA']}", "train.epochs=2", "tracking.enabled=false"]


@pytest.fixture
def env(tiny_data, monkeypatch):
    monkeypatch.setenv("TINY_DATA", str(tiny_data))
    monkeypatch.setenv("PYTHONPATH", str(Path(__file__).parents[1]))


def test_a_killed_study_resumes_without_repeating_finished_trials(env, tmp_path):
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    space = write_space(tmp_path)
    proc = subprocess.Popen(_tune_cmd(tmp_path, space, storage, 4, "killed"), cwd=tmp_path,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 180
    while True:
        time.sleep(0.5)
        try:
            if len(finished(storage, "killed")) >= 1:
                break
        except KeyError:  # study not created yet
            pass
        assert proc.poll() is None and time.time() < deadline, "the first trial never finished"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    before = {t.number: t.params for t in finished(storage, "killed")}
    assert 1 <= len(before) < 4
    subprocess.run(_tune_cmd(tmp_path, space, storage, 4, "killed"), cwd=tmp_path, check=True, capture_output=True)
    after = finished(storage, "killed")
    assert len(after) == 4
    assert all(before[t.number] == t.params for t in after if t.number in before)  # kept, not rerun
    assert len({t.number for t in after}) == 4


def test_two_workers_share_one_study_without_duplicates(env, tmp_path):
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    optuna.create_study(study_name="shared", storage=storage, direction="maximize")
    space = write_space(tmp_path)
    workers = [subprocess.Popen(_tune_cmd(tmp_path, space, storage, 4, "shared"), cwd=tmp_path,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) for _ in range(2)]
    for w in workers:
        assert w.wait(timeout=400) == 0, w.stderr.read().decode()[-3000:]
    trials = finished(storage, "shared")
    assert 4 <= len(trials) <= 5  # a worker may start one trial while the other finishes the 4th
    assert len({t.number for t in trials}) == len(trials)
    folders = sorted(p.name for p in (tmp_path / "outputs" / "tune-shared").iterdir() if p.is_dir())
    trained = [t for t in optuna.load_study(study_name="shared", storage=storage).trials
               if "duplicate_of" not in t.user_attrs]  # a repeated combination reuses a result, no folder
    assert folders == sorted(f"trial-{t.number:04d}" for t in trained)


@pytest.mark.parametrize(
    "params,message",
    [
        ({"optim.lrr": {"type": "float", "low": 1e-4, "high": 1e-2}}, r"params\.optim\.lrr = 0\.0001 does not fit.*optim\.lrr: unknown key"),
        ({"optim.lr": {"type": "float", "low": 1, "high": 0.1}}, r"params\.optim\.lr: Value error, a float parameter needs 'low' <= 'high'"),
        ({"model.bottleneck": {"type": "categorical", "choices": ["aspp", "nope"]}}, r"params\.model\.bottleneck = 'nope'.*unknown bottleneck 'nope'"),
        ({"optim.lr": {"type": "uniform", "low": 0, "high": 1}}, r"params\.optim\.lr\.type: Input should be 'float', 'int' or 'categorical'"),
    ],
)
def test_a_bad_search_space_entry_fails_naming_it(params, message, tmp_path):
    base = tiny_config(tmp_path, tmp_path)
    with pytest.raises(ConfigError, match="(?s)" + message):
        load_search_space(write_space(tmp_path, {"params": params}), base)
