import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import optuna
import pytest
import yaml
from mlflow.tracking import MlflowClient
from optuna.trial import TrialState

from hybridunet.cli import main
from hybridunet.config import ConfigError
from hybridunet.tuning import FINISHED, load_search_space, tune

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


def test_a_three_trial_study_completes_with_nested_mlflow_runs(tiny_config, tiny_data, tmp_path, monkeypatch, mlflow_store):
    monkeypatch.chdir(tmp_path)
    base = tiny_config(tiny_data, tmp_path / "unused", "train.epochs=1", "tracking.enabled=true",
                       f"tracking.uri={mlflow_store}", "tracking.experiment=study")
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    study = tune(base, load_search_space(write_space(tmp_path), base), trials=3, storage=storage, study_name="s3")
    assert len(study.get_trials(states=(TrialState.COMPLETE,))) == 3
    assert study.metric_names == ["val_dice"]  # optuna-dashboard labels the objective
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
    models = client.search_logged_models([experiment])  # tracking.log_model: onnx, for the best trial only
    assert len(models) == 1 and str(models[0].status) == "READY"
    trained = study.best_trial.user_attrs.get("duplicate_of", study.best_trial.number)
    assert client.get_run(models[0].source_run_id).data.tags["optuna.trial"] == str(trained)
    history = {key: client.get_metric_history(parent_id, key) for key in ("trial/val_dice", "trial/best_val_dice",
                                                                           *(f"curve/trial-{n:04d}" for n in range(3)))}
    assert [m.step for m in history["trial/val_dice"]] == [0, 1, 2]  # the parent draws the optimisation history
    values = [t.value for t in sorted(study.trials, key=lambda t: t.number)]
    assert [m.value for m in history["trial/best_val_dice"]] == pytest.approx(np.maximum.accumulate(values))
    assert all([m.step for m in history[f"curve/trial-{n:04d}"]] == [0] for n in range(3))  # one epoch each
    # running it again with the same total does nothing more, and logs nothing twice
    assert len(tune(base, load_search_space(write_space(tmp_path), base), 3, storage, "s3").trials) == 3
    assert len(client.search_logged_models([experiment])) == 1
    assert {key: len(client.get_metric_history(parent_id, key)) for key in history} == {k: len(v) for k, v in history.items()}


def test_a_hopeless_trial_is_pruned(tiny_config, tiny_data, tmp_path, monkeypatch):
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


def _tune_cmd(tiny_yaml: Path, tmp_path: Path, space: Path, storage: str, trials: int, study: str, *extra: str,
              epochs: int = 2) -> list[str]:
    return [sys.executable, "-m", "hybridunet", "tune", "--config", str(tiny_yaml), "--search", str(space),
            "--trials", str(trials), "--storage", storage, "--study", study, *extra,
            f"data.root={os.environ['TINY_DATA']}", f"train.epochs={epochs}", "data.limit_train=8",
            "data.limit_val=4", "data.size=32", "tracking.enabled=false"]


@pytest.fixture
def env(tiny_data, monkeypatch):
    monkeypatch.setenv("TINY_DATA", str(tiny_data))
    monkeypatch.setenv("PYTHONPATH", str(Path(__file__).parents[1]))


def test_a_killed_worker_leaves_a_running_trial_that_the_heartbeat_fails_and_a_rerun_completes(tiny_yaml,
        env, tmp_path, shared_storage):
    storage, space = shared_storage, write_space(tmp_path)
    running = []
    for attempt in range(3):  # the running trial may finish between the look and the kill: try again
        # trials of 6 epochs: a window of seconds to catch one running on a loaded machine
        cmd = _tune_cmd(tiny_yaml, tmp_path, space, storage, 4, f"killed{attempt}", "--heartbeat", "1", epochs=6)
        proc = subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 180
        while proc.poll() is None:  # kill it mid-trial: one trial finished, the next one running
            time.sleep(0.1)
            try:
                trials = optuna.load_study(study_name=f"killed{attempt}", storage=storage).get_trials()
            except KeyError:  # study not created yet
                continue
            finished = [t for t in trials if t.state in FINISHED]
            # a running trial with all its parameters drawn (a kill mid-suggestion leaves fewer)
            if finished and any(t.state == TrialState.RUNNING and set(t.params) == set(finished[0].params)
                                for t in trials):
                break
            assert time.time() < deadline, "no trial was running after a finished one"
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        trials = optuna.load_study(study_name=f"killed{attempt}", storage=storage).get_trials()
        running = [t.number for t in trials if t.state == TrialState.RUNNING]
        if running:
            break
    assert running, "three attempts ended before a trial could be caught running"
    (left,) = running
    before = {t.number: t.params for t in trials if t.state in FINISHED}
    assert 1 <= len(before) < 4
    time.sleep(3.5)  # three heartbeats missed: the trial is stale
    rerun = _tune_cmd(tiny_yaml, tmp_path, space, storage, 4, f"killed{attempt}", "--heartbeat", "1")  # 2 epochs
    subprocess.run(rerun, cwd=tmp_path, check=True, capture_output=True)
    study = optuna.load_study(study_name=f"killed{attempt}", storage=storage)
    assert study.trials[left].state == TrialState.FAIL  # marked by the heartbeat, then run again
    after = study.get_trials(states=FINISHED)
    assert len(after) == 4 and len({t.number for t in after}) == 4
    assert all(before[t.number] == t.params for t in after if t.number in before)  # kept, not rerun
    (retry,) = [t for t in after if t.system_attrs.get("failed_trial") == left]  # its parameters, once more
    assert retry.params == study.trials[left].params


def test_two_workers_together_finish_exactly_the_trials_asked_for(tiny_yaml, env, tmp_path, shared_storage, mlflow_store):
    # (on sqlite the same is checked by benchmarks/tune_workers.py's test)
    storage = shared_storage
    optuna.create_study(study_name="shared", storage=storage, direction="maximize")
    space = write_space(tmp_path)
    tracking = ["tracking.enabled=true", f"tracking.uri={mlflow_store}", f"tracking.experiment=shared-{tmp_path.name}",
                "tracking.log_images=0", "tracking.log_model=none"]
    cmd = [c for c in _tune_cmd(tiny_yaml, tmp_path, space, storage, 4, "shared") if c != "tracking.enabled=false"] + tracking
    workers = [subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
               for _ in range(2)]
    for w in workers:
        assert w.wait(timeout=400) == 0, w.stderr.read().decode()[-3000:]
    study = optuna.load_study(study_name="shared", storage=storage)
    trials = study.get_trials(states=FINISHED)
    assert len(trials) == 4 and len({t.number for t in trials}) == 4
    assert all(t.user_attrs.get("surplus") for t in study.get_trials(states=(TrialState.FAIL,)))
    folders = sorted(p.name for p in (tmp_path / "outputs" / "tune-shared").iterdir() if p.is_dir())
    trained = [t for t in trials if "duplicate_of" not in t.user_attrs]  # a repeat reuses a result: no folder
    assert folders == sorted(f"trial-{t.number:04d}" for t in trained)
    client = MlflowClient(mlflow_store)
    experiment = client.get_experiment_by_name(f"shared-{tmp_path.name}").experiment_id
    (parent,) = client.search_runs([experiment], "tags.study = 'parent'")  # one parent for both workers
    children = client.search_runs([experiment], f"tags.mlflow.parentRunId = '{parent.info.run_id}'")
    assert sorted(int(c.data.tags["optuna.trial"]) for c in children) == sorted(t.number for t in trained)
    assert {c.info.status for c in children} == {"FINISHED"}


def test_an_unreachable_storage_fails_at_once_naming_host_and_port(tiny_yaml, tmp_path, capsys):
    from hybridunet.testing.postgres import free_port

    port = free_port()  # nothing listens there
    start = time.monotonic()
    assert main(["tune", "--config", str(tiny_yaml), "--search", str(write_space(tmp_path)), "--trials", "1",
                 "--storage", f"postgresql://u:secret@127.0.0.1:{port}/optuna"]) == 2
    err = capsys.readouterr().err
    assert time.monotonic() - start < 15
    assert f"cannot reach the Optuna storage postgresql at 127.0.0.1:{port}" in err and "secret" not in err
    assert err.count("\n") == 1


@pytest.mark.parametrize("name", ["o'brien", "../../elsewhere", "a/b", "", ".hidden", 'say "x"'])
def test_a_study_name_that_cannot_be_a_folder_or_an_mlflow_tag_value_fails_naming_it(tiny_yaml, tmp_path, capsys,
                                                                                  monkeypatch, name):
    monkeypatch.chdir(tmp_path)
    assert main(["tune", "--config", str(tiny_yaml), "--search", str(write_space(tmp_path)), "--trials", "1",
                 "--storage", f"sqlite:///{tmp_path / 'optuna.db'}", "--study", name]) == 2
    err = capsys.readouterr().err
    assert f"--study {name!r}: expected up to 128 letters, digits" in err
    assert not (tmp_path / "outputs").exists() and not (tmp_path / "optuna.db").exists()


@pytest.mark.parametrize(
    "params,message",
    [
        ({"optim.lrr": {"type": "float", "low": 1e-4, "high": 1e-2}},
         r"params\.optim\.lrr = 0\.0001 does not fit.*optim\.lrr: unknown key"),
        ({"optim.lr": {"type": "float", "low": 1, "high": 0.1}},
         r"params\.optim\.lr: Value error, a float parameter needs 'low' <= 'high'"),
        ({"model.bottleneck": {"type": "categorical", "choices": ["aspp", "nope"]}},
         r"params\.model\.bottleneck = 'nope'.*unknown bottleneck 'nope'"),
        ({"optim.lr": {"type": "uniform", "low": 0, "high": 1}},
         r"params\.optim\.lr\.type: Input should be 'float', 'int' or 'categorical'"),
    ],
)
def test_a_bad_search_space_entry_fails_naming_it(tiny_config, params, message, tmp_path):
    base = tiny_config(tmp_path, tmp_path)
    with pytest.raises(ConfigError, match="(?s)" + message):
        load_search_space(write_space(tmp_path, {"params": params}), base)


def test_workers_creating_a_new_storage_together_use_the_schema_one_of_them_made(tmp_path, monkeypatch):
    """A worker that loses the race to create the schema (sqlite: "table ... already exists")
    opens the storage again instead of failing; other operational errors still fail."""
    import sqlalchemy.exc

    from hybridunet import tuning
    from hybridunet.errors import UsageError

    real, calls = optuna.storages.RDBStorage, []

    def racing(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise sqlalchemy.exc.OperationalError("CREATE TABLE", {}, Exception("table study_user_attributes already exists"))
        return real(*args, **kwargs)

    monkeypatch.setattr(tuning.storage.time, "sleep", lambda seconds: None)
    monkeypatch.setattr(optuna.storages, "RDBStorage", racing)
    assert isinstance(tuning.open_storage(f"sqlite:///{tmp_path / 'new.db'}"), real) and len(calls) == 2

    def locked(*args, **kwargs):
        raise sqlalchemy.exc.OperationalError("SELECT", {}, Exception("unable to open database file"))

    monkeypatch.setattr(optuna.storages, "RDBStorage", locked)
    with pytest.raises(UsageError, match="cannot reach the Optuna storage sqlite at .*unable to open database file"):
        tuning.open_storage(f"sqlite:///{tmp_path / 'other.db'}")


def test_confirm_trains_the_best_config_against_the_start_until_the_rule_decides(tiny_yaml, tiny_data, tmp_path,
                                                                                  monkeypatch, capsys):
    """A study's best trial on one seed is checked with the stopping rule (training faked
    for the confirmation: the best config scores exactly like the starting one)."""
    from hybridunet.engine import FitResult

    monkeypatch.chdir(tmp_path)
    argv = ["tune", "--config", str(tiny_yaml), "--search", str(write_space(tmp_path)), "--trials", "2",
            "--storage", f"sqlite:///{tmp_path / 'optuna.db'}", "--study", "c", "--confirm", "--confirm-max-seeds", "5",
            f"data.root={tiny_data}", "train.epochs=1", "data.limit_train=8", "data.limit_val=4", "data.size=32",
            "tracking.enabled=false"]
    trained = []

    def same_score(config, callbacks=()):
        trained.append((config.optim.lr, config.seed))
        metrics = {"dice": 0.4 + config.seed / 100, "miou": 0.2, "per_class_dice": {}, "checkpoint": "x"}
        return FitResult(metrics, config, [], None, 1.0)

    monkeypatch.setattr("hybridunet.comparison.runner.fit", same_score)
    assert main(argv) == 0
    out = capsys.readouterr().out.strip().splitlines()
    report = json.loads(out[-1])
    assert report["confirm"]["decision"] == "equivalent" and report["confirm"]["seeds"] == [0, 1, 2]
    assert any(line.startswith("dice c-best - c-start: equivalent within ±0.01") for line in out)
    assert len(trained) == 6 and {lr for lr, _ in trained} == {0.003, report["best_params"]["optim.lr"]}


def test_a_trial_over_seeds_scores_their_mean_with_study_trial_and_seed_runs_nested(tiny_config, tiny_data, tmp_path,
                                                                                    monkeypatch, mlflow_store, capsys):
    monkeypatch.chdir(tmp_path)
    base = tiny_config(tiny_data, tmp_path / "unused", "train.epochs=1", "data.limit_train=8", "data.limit_val=4",
                       "data.size=32", "tracking.enabled=true", f"tracking.uri={mlflow_store}",
                       "tracking.experiment=seeds-per-trial", "tracking.log_images=0", "tracking.log_model=none")
    space = load_search_space(write_space(tmp_path, {**SPACE, "pruner": {"name": "wilcoxon"}}), base)
    assert isinstance(space.make_pruner(), optuna.pruners.WilcoxonPruner)
    study = tune(base, space, trials=2, storage=f"sqlite:///{tmp_path / 'optuna.db'}", study_name="k2",
                 seeds_per_trial=2)
    assert "needs 4 or more seeds per trial to ever prune; with 2 it never prunes" in capsys.readouterr().err
    client = MlflowClient(mlflow_store)
    experiment = client.get_experiment_by_name("seeds-per-trial").experiment_id
    study_run = study.user_attrs["mlflow_parent_run_id"]
    trial_runs = client.search_runs([experiment], f"tags.mlflow.parentRunId = '{study_run}'")
    assert len(trial_runs) == 2 and {r.data.tags["optuna.state"] for r in trial_runs} == {"COMPLETE"}
    for trial_run in trial_runs:
        seeds = client.search_runs([experiment], f"tags.mlflow.parentRunId = '{trial_run.info.run_id}'")
        assert sorted(r.data.tags["seed"] for r in seeds) == ["0", "1"]
        value = study.trials[int(trial_run.data.tags["optuna.trial"])].value
        assert value == pytest.approx(np.mean([r.data.metrics["best_val_dice"] for r in seeds]))
        assert trial_run.data.metrics["mean_val_dice"] == pytest.approx(value)


def test_a_two_objective_study_prints_its_pareto_front_ready_configs_and_importances(tiny_yaml, tiny_data, tmp_path,
                                                                                      monkeypatch, capsys):
    """val_dice against params: Optuna's multi-objective study, unpruned (the space's pruner is
    named: one warning line), the front printed and written as configs, importances at the end."""
    monkeypatch.chdir(tmp_path)
    space = {**SPACE, "pruner": {"name": "median"}}
    argv = ["tune", "--config", str(tiny_yaml), "--search", str(write_space(tmp_path, space)), "--trials", "6",
            "--storage", f"sqlite:///{tmp_path / 'optuna.db'}", "--study", "mo", "--objectives", "val_dice", "params",
            f"data.root={tiny_data}", "train.epochs=1", "data.limit_train=8", "data.limit_val=4"]
    assert main(argv) == 0
    captured = capsys.readouterr()
    assert captured.err.count("cannot prune a study with several objectives") == 1
    report = json.loads(captured.out.strip().splitlines()[-1])
    study = optuna.load_study(study_name="mo", storage=f"sqlite:///{tmp_path / 'optuna.db'}")
    assert [d.name for d in study.directions] == ["MAXIMIZE", "MINIMIZE"] and study.metric_names == ["val_dice", "params"]
    front = {t.number for t in study.best_trials}
    assert {row["trial"] for row in report["pareto"]} == front and front
    for t in study.get_trials(states=(TrialState.COMPLETE,)):  # no trial beats a front trial in both objectives
        for row in report["pareto"]:
            best = row["objectives"]
            assert not (t.values[0] > best["val_dice"] and t.values[1] < best["params"])
    written = sorted(p.name for p in (tmp_path / "outputs/tune-mo/pareto").glob("*.yaml"))
    assert written == [f"trial-{n:04d}.yaml" for n in sorted(front)]
    widths = {json.dumps(yaml.safe_load((tmp_path / "outputs/tune-mo/pareto" / name).read_text())["model"]["widths"])
              for name in written}
    assert widths <= {json.dumps(w) for w in SPACE["params"]["model.widths"]["choices"]}
    assert "Pareto front (val_dice, params;" in captured.out
    assert set(report["importances"]) == {"val_dice", "params"}
    assert set(report["importances"]["params"]) == set(SPACE["params"])
    assert any(line.startswith("importance for params (fANOVA): ") for line in captured.out.splitlines())
    one = [*argv[:argv.index("--objectives")], "--objectives", "val_dice", *argv[argv.index("params") + 1:]]
    assert main(one) == 2  # the same study asked for one objective
    assert "optimises 2 objective(s); --objectives val_dice asks for 1" in capsys.readouterr().err


def test_importances_name_the_parameter_that_moves_the_objective_and_wait_for_enough_trials(monkeypatch):
    from hybridunet.tuning.study import MIN_TRIALS_FOR_IMPORTANCE, importance_evaluator, importances

    rng = np.random.default_rng(0)
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(seed=0))
    study.set_metric_names(["val_dice"])
    study.optimize(lambda t: t.suggest_float("lr", 0, 1) + 0.01 * t.suggest_float("noise", 0, 1), n_trials=3)
    assert importances(study) == {}  # fewer than MIN_TRIALS_FOR_IMPORTANCE
    study.optimize(lambda t: t.suggest_float("lr", 0, 1) + 0.01 * rng.random() * t.suggest_float("noise", 0, 1),
                   n_trials=37)
    assert MIN_TRIALS_FOR_IMPORTANCE <= 40
    scores = importances(study)["val_dice"]
    assert set(scores) == {"lr", "noise"} and scores["lr"] > 0.8 > scores["noise"]
    monkeypatch.setitem(sys.modules, "sklearn", None)  # without scikit-learn: PED-ANOVA, maximised Dice negated
    assert importance_evaluator()[0] == "PED-ANOVA"
    scores = importances(study)["val_dice"]
    assert scores["lr"] > 0.8 > scores["noise"]
