"""A tracking server that goes away: training goes on, nothing is lost, nothing lands twice.

A real `mlflow server` on 127.0.0.1 (the session's); the outage is a TCP proxy in front of it that the
tests close (connections refused, open ones cut) and open again. MLflow's own retries are
off here (hybridunet's default is 2, see tracking/__init__.py), so an outage of a second
outlasts them.
"""

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from hybridunet.cli import main
from hybridunet.testing.proxy import TcpProxy

REPO = Path(__file__).parents[2]


SHORT_RETRIES = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": "5"}


@pytest.fixture
def proxy(mlflow_server_url, monkeypatch):
    from hybridunet.tracking import worker

    for key, value in SHORT_RETRIES.items():
        monkeypatch.setenv(key, value)  # here, and in the trainings started from here
    monkeypatch.setattr(worker, "RETRY_MAX", 0.5)  # in this process: try again soon after the server is back
    with TcpProxy(int(mlflow_server_url.rsplit(":", 1)[1])) as found:
        yield found


def train_args(tiny_yaml: Path, tiny_data: Path, out: Path, url: str, experiment: str, *extra: str) -> list[str]:
    return ["train", "--config", str(tiny_yaml), f"data.root={tiny_data}", f"train.out_dir={out}",
            "tracking.enabled=true", f"tracking.uri={url}", f"tracking.experiment={experiment}", "tracking.flush_secs=0",
            "tracking.log_images=1", "tracking.log_model=none", "data.limit_train=8", *extra]


def epoch_done(out: Path) -> int:
    try:
        return json.loads((out / "last.json").read_text())["epoch"]
    except (OSError, ValueError, KeyError):
        return -1


def wait_for_epoch(out: Path, epoch: int, running=lambda: True, limit: float = 180) -> None:
    deadline = time.time() + limit
    while epoch_done(out) < epoch:
        assert running(), "training ended before that epoch"
        assert time.time() < deadline, "no checkpoint appeared"
        time.sleep(0.02)


def kept_calls(out: Path) -> int:
    try:
        return len((out / "mlflow-outbox" / "calls.jsonl").read_text().splitlines()) - 1
    except OSError:
        return 0


def kept_epoch(out: Path) -> int:
    """The last epoch whose val_dice the outbox holds (-1: none)."""
    try:
        lines = (out / "mlflow-outbox" / "calls.jsonl").read_text().splitlines()[1:]
    except OSError:
        return -1
    calls = [json.loads(line) for line in lines if line.endswith("}")]
    return max((row[3] for c in calls for row in c.get("metrics", ()) if row[0] == "val_dice"), default=-1)


def at_epochs(out: Path, *steps: tuple[int, object]) -> threading.Thread:
    """A thread that, as training in this process passes each (epoch, action), runs the action;
    the server comes back (`open`) only once the worker has met the outage and kept calls."""
    def run() -> None:
        for epoch, action in steps:
            wait_for_epoch(out, epoch)
            while getattr(action, "__name__", "") == "open" and not kept_calls(out):
                time.sleep(0.02)
            action()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def the_run(url: str, experiment: str):
    client = MlflowClient(url)
    (run,) = client.search_runs([client.get_experiment_by_name(experiment).experiment_id])
    return client, run


def steps(client: MlflowClient, run_id: str, key: str = "val_dice") -> list[int]:
    return sorted(m.step for m in client.get_metric_history(run_id, key))


def test_a_training_outlives_an_outage_longer_than_mlflows_retries_and_every_epoch_lands_once(
        tiny_yaml, tiny_data, tmp_path, proxy, capsys):
    out = tmp_path / "run"
    at_epochs(out, (0, proxy.close), (3, proxy.open))  # away for three epochs
    assert main(train_args(tiny_yaml, tiny_data, out, proxy.url, "outage", "train.epochs=6")) == 0
    stdout, stderr = capsys.readouterr()
    assert stderr.count("training goes on") == 1, stderr
    assert json.loads(stdout.strip().splitlines()[-1])["tracking"] == "complete"
    client, run = the_run(proxy.url, "outage")
    assert run.info.status == "FINISHED"
    for key in ("val_dice", "train_loss", "lr"):
        assert steps(client, run.info.run_id, key) == list(range(6)), key
    pictures = [a.path for a in client.list_artifacts(run.info.run_id, "images") if a.path.endswith(".png")]
    assert len(pictures) == 2 * 6  # val_panels and val/sample_00, each epoch once
    assert not (out / "mlflow-outbox").exists()


def test_a_server_away_from_start_to_end_leaves_an_outbox_that_sync_sends_model_included(
        tiny_yaml, tiny_data, tmp_path, proxy, capsys):
    out = tmp_path / "run"
    proxy.close()  # away before the run can even be created
    assert main(train_args(tiny_yaml, tiny_data, out, proxy.url, "away", "train.epochs=3", "tracking.flush_timeout=1",
                           "tracking.log_model=onnx")) == 0
    stdout, stderr = capsys.readouterr()
    result = json.loads(stdout.strip().splitlines()[-1])
    assert result["tracking"] == "partial" and result["run_id"] is None
    assert f"hybridunet sync {out}" in stderr.splitlines()[-1]
    assert list((out / "mlflow-outbox" / "files").rglob("model.onnx"))  # the model, kept as a file

    assert main(["sync", str(out)]) == 2  # still away: one line, nothing lost
    assert "does not answer" in capsys.readouterr().err
    assert (out / "mlflow-outbox" / "calls.jsonl").is_file()

    proxy.open()
    assert main(["sync", str(out)]) == 0
    assert "KILLED" not in capsys.readouterr().out  # the training had ended: its own status stands
    client, run = the_run(proxy.url, "away")
    assert run.info.status == "FINISHED" and run.info.run_name == "run"
    assert steps(client, run.info.run_id) == [0, 1, 2]
    assert json.loads((out / "mlflow-run.json").read_text())["run_id"] == run.info.run_id
    (model,) = run.outputs.model_outputs
    linked = {m.key for m in client.get_logged_model(model.model_id).metrics}
    assert "best_val_dice" in linked
    assert not (out / "mlflow-outbox").exists()
    assert main(["sync", str(out)]) == 2
    assert "nothing to send" in capsys.readouterr().err


def test_sigkill_during_an_outage_keeps_the_outbox_and_sync_lands_it_and_marks_the_run_killed(
        tiny_yaml, tiny_data, tmp_path, proxy, capsys):
    out = tmp_path / "run"
    args = train_args(tiny_yaml, tiny_data, out, proxy.url, "killed", "train.epochs=8")
    proc = subprocess.Popen([sys.executable, "-m", "hybridunet", *args], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(REPO)})
    wait_for_epoch(out, 0, lambda: proc.poll() is None)
    proxy.close()
    wait_for_epoch(out, 3, lambda: proc.poll() is None)
    while kept_epoch(out) < 3:  # the worker has met the outage and written its backlog out
        assert proc.poll() is None, proc.communicate()[1][-2000:]
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    epoch = kept_epoch(out)
    proxy.open()
    assert main(["sync", str(out)]) == 0
    assert "marked KILLED" in capsys.readouterr().out
    client, run = the_run(proxy.url, "killed")
    assert run.info.status == "KILLED"
    landed = steps(client, run.info.run_id)
    assert landed == sorted(set(landed)) and set(range(epoch + 1)) <= set(landed)  # each once, none lost

    assert main([*args, "--resume"]) == 0  # and the same run goes on to its end
    client, again = the_run(proxy.url, "killed")
    assert again.info.run_id == run.info.run_id and again.info.status == "FINISHED"
    assert steps(client, run.info.run_id) == list(range(8))


def test_sync_stops_at_a_call_the_server_refuses_and_keeps_the_rest_and_a_held_outbox_is_left_alone(mlflow_store, tmp_path,
                                                                                        capsys):
    from hybridunet.tracking.calls import metric_rows
    from hybridunet.tracking.outbox import Outbox

    outbox = Outbox(tmp_path / "run")
    outbox.acquire(mlflow_store)
    outbox.append({"call": "log_batch", "metrics": metric_rows({"a": 1.0})})
    outbox.append({"call": "set_terminated", "status": "FINISHED"})
    outbox.keep_run_id("0" * 32, mlflow_store)  # a run the store does not hold: 404
    outbox.release()
    assert main(["sync", str(outbox.folder)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "refused log_batch" in err[0] and "--skip-refused" in err[0]
    assert Outbox(outbox.folder).pending_count() == 2

    holder = Outbox(outbox.folder)
    holder.acquire(mlflow_store)  # held, as by a second sync or the training itself
    assert main(["sync", str(outbox.folder)]) == 2
    assert "held by a live process" in capsys.readouterr().err
    holder.release()


def test_sync_skips_refused_calls_when_told(mlflow_store, tmp_path, capsys):
    from hybridunet.tracking.calls import metric_rows
    from hybridunet.tracking.outbox import Outbox

    outbox = Outbox(tmp_path / "run")
    outbox.acquire(mlflow_store)
    outbox.append({"call": "log_batch", "metrics": metric_rows({"a": 1.0})})
    outbox.append({"call": "set_terminated", "status": "FINISHED"})
    outbox.keep_run_id("0" * 32, mlflow_store)
    outbox.release()
    assert main(["sync", str(outbox.folder), "--skip-refused"]) == 0
    assert capsys.readouterr().err.count("is dropped") == 2
    assert not outbox.exists()


def test_sync_says_what_is_wrong_in_one_line(tmp_path, capsys):
    assert main(["sync", str(tmp_path / "nowhere")]) == 2
    assert main(["sync", str(tmp_path)]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 2 and "no such run folder" in lines[0] and "nothing to send" in lines[1]


def test_a_comparison_across_an_outage_still_decides_and_every_run_lands(tracked, tiny_data, tmp_path, proxy):
    from hybridunet.comparison import Rule, RunDone, run_sequential

    configs = [(label, tracked(tiny_data, tmp_path, proxy.url, "tracking.experiment=outage-compare",
                               "train.epochs=1", "tracking.log_images=0", "data.limit_train=4", *more))
               for label, more in (("unet", ("tracking.log_model=onnx",)), ("wide", ("model.widths=[16,32,64,128,256]",)))]
    done = []

    def told(event) -> None:  # the server is away from the start until three seeds have trained
        done.append(event)
        if sum(isinstance(e, RunDone) for e in done) == 3:
            proxy.open()

    proxy.close()
    arms, (outcome,) = run_sequential(configs, Rule(max_seeds=2, metric="dice"), out_dir=tmp_path / "cmp",
                                      on_event=told)
    assert [len(arm.records) for arm in arms] == [2, 2]
    assert outcome.decision in ("better", "worse", "equivalent", "undecided")  # the rule looked at 2 seeds
    client = MlflowClient(proxy.url)
    experiment = client.get_experiment_by_name("outage-compare").experiment_id
    (parent,) = client.search_runs([experiment], "tags.compare = 'parent'")
    children = client.search_runs([experiment], f"tags.mlflow.parentRunId = '{parent.info.run_id}'")
    assert parent.info.status == "FINISHED" and len(children) == 4
    assert [(c.info.status, steps(client, c.info.run_id)) for c in children] == [("FINISHED", [0])] * 4
    models = [c.data.tags["seed"] for c in children if c.outputs.model_outputs]
    best = max(arms[0].records, key=lambda r: r.val.dice).seed
    assert models == [str(best)]  # unet's best seed logged its model (its run created late or not); wide logs none
    assert {a.path for a in client.list_artifacts(parent.info.run_id, "compare")} >= {"compare/table.txt"}
    assert not list((tmp_path / "cmp").rglob("mlflow-outbox"))


def test_a_study_across_an_outage_fails_no_trial_and_sync_lands_its_runs_nested(tiny_config, tiny_data, tmp_path,
                                                                                proxy, capsys):
    import yaml

    from hybridunet.tuning import load_search_space, study_dir, tune

    base = tiny_config(tiny_data, tmp_path / "unused", "train.epochs=1", "data.limit_train=4", "data.limit_val=4",
                       "data.size=32", "tracking.enabled=true", f"tracking.uri={proxy.url}",
                       "tracking.experiment=outage-tune", "tracking.log_images=0", "tracking.flush_timeout=1")
    space = tmp_path / "space.yaml"
    space.write_text(yaml.safe_dump({"sampler": {"seed": 0}, "pruner": {"name": "none"},
                                     "params": {"optim.lr": {"type": "float", "low": 1e-3, "high": 1e-2}}}))
    proxy.close()  # away for the whole study: its run, its trials' runs, its summary wait
    study = tune(base, load_search_space(space, base), trials=2, storage=f"sqlite:///{tmp_path / 'optuna.db'}",
                 study_name="away")
    assert len([t for t in study.trials if t.state.name == "COMPLETE"]) == 2  # no trial failed for tracking
    assert "hybridunet sync" in capsys.readouterr().err
    proxy.open()
    assert main(["sync", str(study_dir("away"))]) == 0
    client = MlflowClient(proxy.url)
    experiment = client.get_experiment_by_name("outage-tune").experiment_id
    (parent,) = client.search_runs([experiment], "tags.study = 'parent'")
    trials = client.search_runs([experiment], f"tags.mlflow.parentRunId = '{parent.info.run_id}'")
    assert parent.info.status == "FINISHED"
    assert sorted(r.data.tags["optuna.trial"] for r in trials) == ["0", "1"]
    assert all(r.info.status == "FINISHED" and "best_val_dice" in r.data.metrics for r in trials)
    assert not list(study_dir("away").rglob("mlflow-outbox"))
