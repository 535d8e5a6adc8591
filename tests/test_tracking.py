"""Tracking read back through MlflowClient: a sqlite store, and once a real MLflow server on 127.0.0.1."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from mlflow.tracking import MlflowClient

import hybridunet
from hybridunet.comparison import COST_KEYS, arms_from_mlflow, cost_means, run_comparison
from hybridunet.engine import fit
from hybridunet.tracking import MLflowCallback


@pytest.fixture
def server(mlflow_server_url) -> str:
    return mlflow_server_url


def check_training_run(uri: str, result: dict) -> None:
    """What every tracked training logs, read back through MlflowClient."""
    client = MlflowClient(uri)
    run = client.get_run(result["run_id"])
    assert run.info.status == "FINISHED"
    assert run.data.params["train.epochs"] == "2" and run.data.params["model.name"] == "unet"
    assert run.data.params["resolved.amp"] in {"none", "bf16"}
    assert run.data.tags["model"] == "unet" and run.data.tags["seed"] == "0" and run.data.tags["label"] == "unet"
    assert run.data.tags["hybridunet_version"] == hybridunet.__version__
    for key in ("data.fingerprint", "precision.amp", "hardware", "config.hash", "version.torch", "version.timm",
                "version.segmentation-models-pytorch"):
        assert run.data.tags[key] not in ("", "not installed"), key
    assert client.get_experiment(run.info.experiment_id).tags["mlflow.experimentKind"] == "custom_model_development"
    head = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True)
    if head.returncode == 0:  # the tests run from a checkout: its commit is tagged
        assert run.data.tags["git_commit"] == run.data.tags["mlflow.source.git.commit"] == head.stdout.strip()
    for key in ("train_loss", "val_loss", "val_dice", "val_miou", "val_pixel_acc", "lr", "images_per_s"):
        assert [m.step for m in client.get_metric_history(run.info.run_id, key)] == [0, 1], key
    history = client.get_metric_history(run.info.run_id, "val_dice")
    assert run.data.metrics["best_val_dice"] == max(m.value for m in history) == pytest.approx(result["dice"])
    assert [m.step for m in client.get_metric_history(run.info.run_id, "val_dice/road")] == [0, 1]
    cost = {k.removeprefix("cost/"): v for k, v in run.data.metrics.items() if k.startswith("cost/")}
    assert cost == pytest.approx(result["cost"]) and set(cost) == set(COST_KEYS)  # Dice against cost in the charts
    assert all(v > 0 for v in cost.values())
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"checkpoint", "plots", "config.yaml", "images"} <= artifacts
    images = [a.path for a in client.list_artifacts(run.info.run_id, "images")]
    assert len([p for p in images if p.endswith(".png") and "val_panels" in p]) >= 2  # one per epoch
    for sample in ("val~sample_00", "val~sample_01"):  # tracked() logs 2 images: each its own key, every epoch
        assert len([p for p in images if p.endswith(".png") and p.startswith(f"images/{sample}+step+")]) == 2, sample
    assert not any("sample_02" in p for p in images)
    assert {a.path for a in client.list_artifacts(run.info.run_id, "checkpoint")} == {
        "checkpoint/best.safetensors", "checkpoint/best.json"}
    assert {a.path for a in client.list_artifacts(run.info.run_id, "plots")} == {
        "plots/confusion_matrix.png", "plots/learning_curves.png"}


def test_a_server_on_postgresql_records_a_training_and_a_comparison(tracked, tiny_data, tmp_path, server):
    config = tracked(tiny_data, tmp_path / "train", server)
    check_training_run(server, fit(config, callbacks=[MLflowCallback(config.tracking)]))
    check_comparison(tracked, server, tiny_data, tmp_path / "compare")


@pytest.mark.parametrize("background", ["true", "false"])
def test_a_training_is_one_finished_run_with_params_metrics_and_images(tracked, tiny_data, tmp_path, mlflow_store, background):
    config = tracked(tiny_data, tmp_path, mlflow_store, f"tracking.background={background}")
    check_training_run(mlflow_store, fit(config, callbacks=[MLflowCallback(config.tracking)]))


@pytest.mark.parametrize("error,status", [(RuntimeError, "FAILED"), (KeyboardInterrupt, "KILLED")])
def test_a_run_that_stops_is_never_left_running(crash_after, tracked, tiny_data, tmp_path, mlflow_store, error, status):
    config = tracked(tiny_data, tmp_path, mlflow_store)
    tracker = MLflowCallback(config.tracking)
    with pytest.raises(error):
        fit(config, callbacks=[tracker, crash_after(0, error)])
    run = MlflowClient(mlflow_store).get_run(tracker.run_id)
    assert run.info.status == status and "simulated crash" in run.data.tags["error"]


def check_comparison(tracked, server: str, tiny_data: Path, tmp_path: Path) -> None:
    """A two-arm, two-seed comparison is a parent run with every training nested under it."""
    configs = [
        ("unet", tracked(tiny_data, tmp_path, server, "tracking.experiment=cmp", "train.epochs=1")),
        ("hybrid", tracked(tiny_data, tmp_path, server, "tracking.experiment=cmp", "train.epochs=1",
                           "model.name=hybrid_unet", "model.bottleneck_kwargs={heads: 4}")),
    ]
    events = []
    arms = run_comparison(configs, [0, 1], out_dir=tmp_path / "cmp", on_event=events.append)
    assert [(e.done, e.total, e.record.label, e.record.seed, e.source) for e in events][0] == (1, 4, "unet", 0, "trained")
    assert len(events) == 4
    client = MlflowClient(server)
    for arm in arms:
        assert arm.seeds == [0, 1]
        children = [client.get_run(r.run_id) for r in arm.records]
        parents = {c.data.tags["mlflow.parentRunId"] for c in children}
        assert len(parents) == 1
        assert [c.data.metrics["best_val_dice"] for c in children] == pytest.approx([r.val.dice for r in arm.records], abs=0)
        assert [c.data.metrics["best_val_miou"] for c in children] == pytest.approx([r.val.miou for r in arm.records], abs=0)
    parent = client.get_run(parents.pop())
    assert parent.info.status == "FINISHED"
    assert {a.path for a in client.list_artifacts(parent.info.run_id, "compare")} == {
        "compare/table.txt", "compare/summary.json", "compare/dice.png", "compare/comparison.png"}
    read_back = arms_from_mlflow("cmp", server)
    from_mlflow = {a.label: a.values("dice") for a in read_back}
    assert from_mlflow == {"unet": arms[0].values("dice"), "hybrid_unet": arms[1].values("dice")}
    for arm, again in zip(arms, sorted(read_back, key=lambda a: a.label != "unet")):
        assert cost_means(again) == pytest.approx(cost_means(arm)) and set(cost_means(arm)) == set(COST_KEYS)
    text = client.download_artifacts(parent.info.run_id, "compare/table.txt", str(tmp_path))
    head, unet_row = Path(text).read_text().splitlines()[:2]
    assert "GFLOPs" in head and "infer img/s" in head
    assert f"{cost_means(arms[0])['params_m']:.2f}" in unet_row.split()


class FakeSender:
    """Stands in for `calls.Sender`: records each call it makes; `away` raises what MLflow
    raises for a server that does not answer; a "refuse" call gets a 400 answer."""

    uri = "http://tracking.invalid"
    client = None

    def __init__(self) -> None:
        self.made, self.checked, self.away = [], [], False
        self.lose_answer = 0  # the next N calls land, but their answer is lost

    def send(self, call, run_id, check=False):
        from mlflow.exceptions import MlflowException
        from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE

        if self.away:
            raise MlflowException("API request failed: Max retries exceeded ([Errno 111] Connection refused)")
        self.checked.append(check)
        if call["call"] == "refuse":
            raise MlflowException("bad value", error_code=INVALID_PARAMETER_VALUE)
        if "fn" in call:
            call["fn"]()
        self.made.append(call["n"])
        if self.lose_answer:
            self.lose_answer -= 1
            raise ConnectionError("connection reset while reading the answer")
        return run_id

    def forget(self):
        pass


def numbered(n: int, **more) -> dict:
    return {"call": "log_batch", "n": n, **more}


@pytest.mark.parametrize("background", [True, False])
def test_a_call_the_server_refuses_is_reported_and_dropped_and_the_rest_keep_their_order(background, tmp_path, capsys):
    from hybridunet.tracking import LogWorker

    sender = FakeSender()
    log = LogWorker(sender, tmp_path, background=background)
    log.submit(numbered(1))
    log.submit({"call": "refuse", "n": 0})
    log.submit(numbered(2))
    assert log.close() is True
    assert sender.made == [1, 2]
    assert capsys.readouterr().err.count("refused refuse") == 1
    assert not (tmp_path / "mlflow-outbox").exists()  # nothing left: no outbox


@pytest.mark.parametrize("background", [True, False])
def test_an_outage_keeps_every_call_in_the_outbox_then_sends_them_in_order_once(background, tmp_path, capsys,
                                                                                monkeypatch):
    from hybridunet.tracking import LogWorker, worker

    monkeypatch.setattr(worker, "RETRY_FIRST", 0.05)
    sender = FakeSender()
    log = LogWorker(sender, tmp_path, background=background)
    log.submit(numbered(0))
    while not sender.made:
        time.sleep(0.01)
    sender.away = True
    for n in range(1, 6):
        log.submit(numbered(n))
    while not log.away:
        time.sleep(0.01)
    stored = [json.loads(line) for line in (tmp_path / "mlflow-outbox" / "calls.jsonl").read_text().splitlines()[1:]]
    assert [c["n"] for c in stored] == [1, 2, 3, 4, 5]  # on disk before they are sent: a SIGKILL loses none
    sender.away = False
    assert log.close(timeout=10) is True
    assert sender.made == [0, 1, 2, 3, 4, 5]
    err = capsys.readouterr().err
    assert err.count("training goes on") == 1 and "calls kept in" in err and "answers again" in err
    assert not (tmp_path / "mlflow-outbox").exists()


def test_past_the_memory_bound_calls_wait_in_the_file_and_still_land_in_order(tmp_path, monkeypatch):
    from hybridunet.tracking import LogWorker, worker

    monkeypatch.setattr(worker, "MEMORY_BOUND", 3)
    monkeypatch.setattr(worker, "RETRY_FIRST", 0.05)
    sender = FakeSender()
    sender.away = True
    log = LogWorker(sender, tmp_path)
    for n in range(20):
        log.submit(numbered(n))
    while not log.away:
        time.sleep(0.01)
    assert len(log._pending) <= 3 and log.kept == 20
    sender.away = False
    assert log.close(timeout=10) is True
    assert sender.made == list(range(20))


def test_a_call_whose_answer_was_lost_is_sent_again_with_a_check_of_what_landed(tmp_path, monkeypatch):
    from hybridunet.tracking import LogWorker, worker

    monkeypatch.setattr(worker, "RETRY_FIRST", 0.05)
    sender = FakeSender()
    sender.lose_answer = 1
    log = LogWorker(sender, tmp_path)
    log.submit(numbered(1))
    log.submit(numbered(2))
    assert log.close(timeout=10) is True
    assert sender.made == [1, 1, 2] and sender.checked == [False, True, False]  # the resend looks first


def test_a_server_still_away_at_close_leaves_the_calls_in_the_outbox(tmp_path):
    from hybridunet.tracking import LogWorker
    from hybridunet.tracking.outbox import Outbox

    sender = FakeSender()
    sender.away = True
    log = LogWorker(sender, tmp_path)
    for n in range(3):
        log.submit(numbered(n))
    start = time.monotonic()
    assert log.close(timeout=0.5) is False
    assert 0.4 < time.monotonic() - start < 5
    outbox = Outbox(tmp_path)
    assert outbox.pending_count() == 3 and [c["n"] for c in outbox.calls()] == [0, 1, 2]
    again = LogWorker(FakeSender(), tmp_path)  # a resumed training sends them first
    again.submit(numbered(3))
    assert again.close() is True and again.sender.made == [0, 1, 2, 3]
    assert again.sender.checked[:2] == [True, False]  # the dead process may have been making the first


def test_the_same_metric_points_and_picture_sent_twice_with_a_check_land_once(mlflow_store):
    from hybridunet.tracking import experiment_id
    from hybridunet.tracking.calls import Sender, metric_rows

    sender = Sender(mlflow_store)
    client = MlflowClient(mlflow_store)
    run = client.create_run(experiment_id("resend", mlflow_store)).info.run_id
    batch = {"call": "log_batch", "metrics": metric_rows({"a": 1.0, "b": 2.0}, step=3)}
    picture = {"call": "log_image", "image": np.zeros((8, 8, 3), np.uint8), "key": "val/x", "step": 3,
               "timestamp": 1}
    for check in (False, True, True):
        sender.send(batch, run, check=check)
        sender.send(picture, run, check=check)
    assert [(m.step, m.value) for m in client.get_metric_history(run, "a")] == [(3, 1.0)]
    assert len([a for a in client.list_artifacts(run, "images") if a.path.endswith(".png")]) == 1


def test_log_counts_the_cpu_time_of_its_calls_not_their_waiting(tmp_path):
    from hybridunet.tracking import LogWorker

    def burn(seconds: float) -> None:
        start = time.thread_time()
        while time.thread_time() - start < seconds:
            pass

    log = LogWorker(FakeSender(), tmp_path)
    log.submit(numbered(1, fn=lambda: time.sleep(0.3)))  # waiting, as for a store's fsync: no CPU
    log.submit(numbered(2, fn=lambda: burn(0.05)))
    log.close()
    assert 0.05 <= log.cpu_seconds < 0.2


@pytest.mark.skipif(sys.platform != "linux", reason="a thread's own scheduling policy is a Linux feature")
def test_background_log_runs_at_idle_priority_and_leaves_the_caller_alone(tmp_path):
    from hybridunet.tracking import LogWorker

    before = os.sched_getscheduler(0)
    log, policies = LogWorker(FakeSender(), tmp_path), []
    log.submit(numbered(1, fn=lambda: policies.append(os.sched_getscheduler(0))))
    log.close()
    assert policies == [os.SCHED_IDLE]
    assert os.sched_getscheduler(0) == before  # training's own threads keep their priority


def test_a_default_tracked_training_logs_an_onnx_model_with_linked_metrics_and_its_two_datasets(
        tracked, tiny_data, tmp_path, mlflow_store):
    """tracking.log_model's default: the best checkpoint as an ONNX LoggedModel that
    mlflow.pyfunc loads (no unpickling) and runs at another batch and size, equal to the
    checkpoint's logits; the validation scores linked to it with the validation dataset; the
    training and validation data as the run's datasets, digests their data fingerprints."""
    import mlflow
    import torch
    import yaml

    from hybridunet.checkpoint import load_model, read_meta
    from hybridunet.config import load_config
    from hybridunet.data.fingerprint import data_fingerprint
    from hybridunet.engine.build import open_split

    config = tracked(tiny_data, tmp_path, mlflow_store, "tracking.experiment=models", "model.widths=[4, 8]")
    config.tracking.log_model = load_config(None).tracking.log_model  # the default, whatever tracked() sets
    assert config.tracking.log_model == "onnx"
    result = fit(config, callbacks=[MLflowCallback(config.tracking)])
    client = MlflowClient(mlflow_store)
    run = client.get_run(result["run_id"])
    assert run.info.status == "FINISHED" and "log_model.error" not in run.data.tags
    model = client.get_logged_model(result["model_id"])
    assert result["model_uri"] == f"models:/{model.model_id}" and str(model.status) == "READY"
    assert model.source_run_id == run.info.run_id and model.experiment_id == run.info.experiment_id
    assert model.name == "unet"  # the run's label: how the Models tab tells models apart
    assert [o.model_id for o in run.outputs.model_outputs] == [model.model_id]

    mlflow.set_tracking_uri(mlflow_store)
    loaded = mlflow.pyfunc.load_model(result["model_uri"])
    assert loaded.metadata.flavors["python_function"]["loader_module"] == "mlflow.onnx"
    folder = Path(mlflow.artifacts.download_artifacts(result["model_uri"], dst_path=str(tmp_path / "model")))
    assert not [p for p in folder.rglob("*") if p.suffix in (".pkl", ".pickle", ".pt", ".pth")]  # nothing to unpickle
    assert yaml.safe_load((folder / "MLmodel").read_text())["signature"]
    batch = np.random.default_rng(1).standard_normal((3, 3, 40, 56)).astype(np.float32)  # trained: batch 4, 64x64
    net, _ = load_model(result["checkpoint"])
    with torch.no_grad():
        expected = net(torch.from_numpy(batch)).numpy()
    np.testing.assert_allclose(loaded.predict(batch)["logits"], expected, atol=1e-4, rtol=1e-4)

    train, val = open_split(config, "train", train=True), open_split(config, "val", train=False)
    datasets = {i.tags[0].value: i.dataset for i in run.inputs.dataset_inputs}
    assert set(datasets) == {"training", "validation"}
    assert datasets["training"].digest == data_fingerprint([train], tiny_data) != datasets["validation"].digest
    assert datasets["validation"].digest == data_fingerprint([val], tiny_data)
    assert datasets["validation"].name == f"{tiny_data.name}-val" and str(tiny_data) in datasets["validation"].source

    linked = {m.key: m for m in model.metrics}
    assert linked["best_val_dice"].value == pytest.approx(result["dice"])
    assert (linked["best_val_dice"].dataset_name, linked["best_val_dice"].dataset_digest) == (
        datasets["validation"].name, datasets["validation"].digest)
    assert {"best_val_miou", "cost/params_m", "cost/inference_images_per_s"} <= set(linked)
    best_epoch = read_meta(result["checkpoint"])["epoch"]
    assert linked["val_dice"].step == best_epoch and linked["val_dice"].value == pytest.approx(result["dice"])
    assert len(client.get_metric_history(run.info.run_id, "best_val_dice")) == 1  # linked, not logged twice

    from hybridunet.tracking.models import CHECKPOINT_TAG, checkpoint_digest

    assert model.tags[CHECKPOINT_TAG] == checkpoint_digest(result["checkpoint"])
    again = fit(config, callbacks=[MLflowCallback(config.tracking)], resume=True)  # a finished run resumed
    assert (again["run_id"], again["model_id"]) == (run.info.run_id, model.model_id)  # its model, not a second one
    assert [o.model_id for o in client.get_run(run.info.run_id).outputs.model_outputs] == [model.model_id]


def test_a_dataset_two_workers_add_at_once_is_logged_by_the_next_attempt(tiny_config, tiny_data, tmp_path,
                                                                        mlflow_store, monkeypatch):
    """MLflow adds a new dataset by check-then-insert: a study's second worker can lose that
    race (a UNIQUE constraint error, seen in the two-worker test) and then finds it there."""
    from mlflow.exceptions import MlflowException

    from hybridunet.engine.build import open_split
    from hybridunet.tracking.datasets import log_datasets, split_dataset
    from hybridunet.tracking.store import experiment_id

    config = tiny_config(tiny_data, tmp_path)
    datasets = {"validation": split_dataset(open_split(config, "val", train=False), tiny_data, "val")}
    client = MlflowClient(mlflow_store)
    experiment = experiment_id("datasets-race", mlflow_store)
    winner, loser = (client.create_run(experiment).info.run_id for _ in range(2))
    real, calls = client.log_inputs, []

    def lose_the_race_once(run_id, datasets=None, models=None):
        calls.append(run_id)
        if len(calls) == 1:  # the other worker inserts the same dataset first
            real(winner, datasets=datasets)
            raise MlflowException("(sqlite3.IntegrityError) UNIQUE constraint failed: datasets.experiment_id, ...")
        return real(run_id, datasets=datasets)

    monkeypatch.setattr(client, "log_inputs", lose_the_race_once)
    log_datasets(client, loser, datasets)
    assert calls == [loser, loser]
    for run_id in (winner, loser):
        assert [i.dataset.digest for i in client.get_run(run_id).inputs.dataset_inputs] == [datasets["validation"].digest]


def test_a_model_that_fails_to_export_is_reported_and_the_run_still_finishes(tracked, tiny_data, tmp_path,
                                                                             mlflow_store, monkeypatch, capsys):
    import hybridunet.export

    def broken(*args, **kwargs):
        raise RuntimeError("an operator ONNX has no symbol for")

    monkeypatch.setattr(hybridunet.export, "export_onnx", broken)
    config = tracked(tiny_data, tmp_path, mlflow_store, "tracking.experiment=models", "train.epochs=1",
                     "model.widths=[4, 8]", "tracking.log_model=onnx", "tracking.log_images=0")
    result = fit(config, callbacks=[MLflowCallback(config.tracking)])
    assert "model_uri" not in result
    run = MlflowClient(mlflow_store).get_run(result["run_id"])
    assert run.info.status == "FINISHED" and run.data.metrics["best_val_dice"] == pytest.approx(result["dice"])
    assert "an operator ONNX has no symbol for" in run.data.tags["log_model.error"]
    assert "was not logged as onnx" in capsys.readouterr().err


def test_the_pytorch_flavour_and_an_exported_onnx_file_log_as_models_too(tracked, tiny_data, tmp_path, mlflow_store,
                                                                        capsys):
    """tracking.log_model=pt2: the pytorch flavour with its signature, loaded back by
    mlflow.pyfunc and equal to the checkpoint's logits; `export --mlflow-run` the ONNX flavour."""
    import mlflow
    import torch

    from hybridunet.checkpoint import load_model
    from hybridunet.cli import main

    config = tracked(tiny_data, tmp_path, mlflow_store, "tracking.experiment=models", "train.epochs=1",
                     "tracking.log_model=pt2", "model.widths=[4, 8]", "tracking.log_images=0")
    result = fit(config, callbacks=[MLflowCallback(config.tracking)])
    mlflow.set_tracking_uri(mlflow_store)
    loaded = mlflow.pyfunc.load_model(result["model_uri"])
    assert loaded.metadata.get_input_schema().inputs[0].shape == (1, 3, 64, 64)
    image = np.random.default_rng(0).standard_normal((1, 3, 64, 64)).astype(np.float32)
    model, _ = load_model(result["checkpoint"])
    with torch.no_grad():
        expected = model(torch.from_numpy(image)).numpy()
    np.testing.assert_allclose(np.asarray(loaded.predict(image)), expected, atol=1e-5)
    assert MlflowClient(mlflow_store).get_run(result["run_id"]).info.status == "FINISHED"

    onnx_path = tmp_path / "model.onnx"
    env = {"MLFLOW_TRACKING_URI": mlflow_store}
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        assert main(["export", "--checkpoint", result["checkpoint"], "--out", str(onnx_path),
                     "--mlflow-run", result["run_id"]]) == 0
    finally:
        for k, v in old.items():
            os.environ.pop(k) if v is None else os.environ.__setitem__(k, v)
    uri = capsys.readouterr().out.strip().splitlines()[-1].split(" as ")[1].split()[0]
    batch = np.random.default_rng(1).standard_normal((2, 3, 40, 56)).astype(np.float32)  # any batch and size
    with torch.no_grad():
        expected = model(torch.from_numpy(batch)).numpy()
    np.testing.assert_allclose(mlflow.pyfunc.load_model(uri).predict(batch)["logits"], expected, atol=1e-4, rtol=1e-4)


# Variables by which MLflow switches its telemetry off by itself (pytest, CI services): a user's
# shell has none of them, so the test removes them to see what a user's run writes.
TELEMETRY_QUIET = ("PYTEST_", "CI", "GITHUB_ACTIONS", "CIRCLECI", "GITLAB_CI", "JENKINS_URL", "TRAVIS", "TF_BUILD",
                   "BITBUCKET_BUILD_NUMBER", "CODEBUILD_BUILD_ARN", "BUILDKITE", "TEAMCITY_VERSION",
                   "CLOUD_RUN_EXECUTION", "RUNBOT_", "MLFLOW_DISABLE_TELEMETRY", "DO_NOT_TRACK", "XDG_")


def test_a_tracked_training_writes_no_mlflow_telemetry_or_config_into_home(tiny_yaml, tiny_data, mlflow_store,
                                                                           tmp_path, monkeypatch):
    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(TELEMETRY_QUIET)}
    env.update(HOME=str(home), PYTHONPATH=str(Path(__file__).parents[1]))
    proc = subprocess.run([sys.executable, "-m", "hybridunet", "train", "--config", str(tiny_yaml),
                           f"data.root={tiny_data}", f"train.out_dir={tmp_path / 'run'}", "train.epochs=1",
                           "tracking.enabled=true", f"tracking.uri={mlflow_store}",
                           "tracking.log_images=0"], env=env, cwd=tmp_path, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads(proc.stdout.strip().splitlines()[-1])["run_id"]
    written = sorted(str(p.relative_to(home)) for p in home.rglob("*") if p.is_file()
                     and not p.relative_to(home).parts[0] == ".cache")  # libraries' caches (matplotlib fonts) are fine
    assert written == [], written
    # a user who wants telemetry keeps the choice: the package's first lines run again (a fresh
    # process would pay 6 s of imports to show the same)
    import importlib

    import hybridunet.tracking

    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "false")
    importlib.reload(hybridunet.tracking)
    assert os.environ["MLFLOW_DISABLE_TELEMETRY"] == "false"


def test_a_compare_parent_shows_each_arms_curve_the_difference_and_the_decision(tracked, tiny_data, tmp_path,
                                                                                 mlflow_store):
    """The parent alone draws the comparison: one point per epoch per arm (the mean over
    seeds), the paired difference and its interval, the decision as a tag and in its name."""
    from hybridunet.comparison import Rule, run_sequential

    configs = [(label, tracked(tiny_data, tmp_path, mlflow_store, "tracking.experiment=glance", "train.epochs=2",
                               "data.limit_train=8", "data.limit_val=4", "tracking.log_images=0",
                               "tracking.log_model=onnx"))
               for label in ("unet", "same")]
    arms, [decision] = run_sequential(configs, Rule(max_seeds=4, min_seeds=2), out_dir=tmp_path / "cmp")
    assert decision.decision == "equivalent" and arms[0].seeds == [0, 1]
    client = MlflowClient(mlflow_store)
    parent = client.get_run(client.get_run(arms[0].records[0].run_id).data.tags["mlflow.parentRunId"])
    for arm in arms:
        children = [client.get_metric_history(r.run_id, "val_dice") for r in arm.records]
        means = client.get_metric_history(parent.info.run_id, f"curve/{arm.label}")
        assert [m.step for m in means] == [0, 1]  # one point per epoch
        assert [m.value for m in sorted(means, key=lambda m: m.step)] == pytest.approx(
            [np.mean([h[e].value for h in children]) for e in (0, 1)])
        assert f"spread/{arm.label}" in parent.data.metrics
        assert parent.data.metrics[f"dice_mean/{arm.label}"] == pytest.approx(np.mean(list(arm.values("dice").values())))
    assert parent.data.metrics["decision/same-unet/difference"] == 0.0
    assert parent.data.metrics["decision/same-unet/seeds"] == 2
    assert parent.data.tags["compare.decision.same"] == "equivalent"
    assert parent.info.run_name == "same vs unet: equivalent +0.000 (2 seeds)"
    images = {a.path for a in client.list_artifacts(parent.info.run_id, "images")}
    for name in ("curves", "per_class", "per_seed"):  # image keys: the chart view draws them
        assert any(path.startswith(f"images/comparison~{name}+") for path in images), (name, images)
    assert "compare/comparison.png" in {a.path for a in client.list_artifacts(parent.info.run_id, "compare")}
    for arm in arms:  # each arm's best seed logs its model, the other seeds none
        best = max(arm.records, key=lambda r: r.val.dice)
        with_model = [r.run_id for r in arm.records if client.get_run(r.run_id).outputs.model_outputs]
        assert with_model == [best.run_id], arm.label
    assert not client.get_run(parent.info.run_id).outputs.model_outputs


@pytest.mark.parametrize("size", [48, 512])
def test_each_sample_picture_is_photo_truth_prediction_at_the_thumbnails_256_pixels(size):
    import torch

    from hybridunet.tracking.callback import sample_pictures

    x = torch.rand(3, 3, size, size)
    truth = torch.randint(0, 19, (3, size, size))
    pictures = sample_pictures((x, truth, truth.clone()), "unit")
    assert len(pictures) == 3 and all(p.shape == (85, 255, 3) and p.dtype == np.uint8 for p in pictures)
    assert (pictures[0][:, 85:170] == pictures[0][:, 170:]).all()  # truth and prediction agree here, pixel for pixel


def test_system_metrics_are_off_by_default_and_sampled_when_asked(tracked, tiny_data, tmp_path, mlflow_store,
                                                                 monkeypatch):
    monkeypatch.setenv("MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL", "0.5")
    plain = tracked(tiny_data, tmp_path / "off", mlflow_store, "train.epochs=1")
    sampled = tracked(tiny_data, tmp_path / "on", mlflow_store, "train.epochs=3", "tracking.system_metrics=true")
    client = MlflowClient(mlflow_store)
    off = client.get_run(fit(plain, callbacks=[MLflowCallback(plain.tracking)])["run_id"])
    on = client.get_run(fit(sampled, callbacks=[MLflowCallback(sampled.tracking)])["run_id"])
    assert not any(k.startswith("system/") for k in off.data.metrics)
    assert {"system/cpu_utilization_percentage", "system/system_memory_usage_megabytes"} <= set(on.data.metrics)
    assert on.info.status == "FINISHED"


def test_an_experiment_another_process_creates_between_the_lookup_and_the_create_is_used(mlflow_store, monkeypatch):
    """Two tune workers start at once: the second's create fails (it exists now) and it takes
    the first's experiment instead of failing the worker."""
    from mlflow.tracking import MlflowClient

    from hybridunet.tracking import store

    name = "raced-experiment"
    created = MlflowClient(mlflow_store).create_experiment(name)
    real = MlflowClient.get_experiment_by_name
    calls = []

    def first_lookup_misses(self, wanted):
        calls.append(wanted)
        return None if len(calls) == 1 else real(self, wanted)

    monkeypatch.setattr(MlflowClient, "get_experiment_by_name", first_lookup_misses)
    assert store.experiment_id(name, mlflow_store) == created and len(calls) == 2
