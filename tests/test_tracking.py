"""Tracking against a real MLflow server on 127.0.0.1, read back through MlflowClient."""

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

import hybridunet
from hybridunet.compare import arms_from_mlflow, run_comparison
from hybridunet.engine import fit
from hybridunet.tracking import MLflowCallback
from tests.conftest import tiny_config
from tests.test_engine import CrashAfter


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> str:
    root = tmp_path_factory.mktemp("mlflow")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cmd = [
        sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port),
        "--backend-store-uri", f"sqlite:///{root / 'mlflow.db'}", "--artifacts-destination", str(root / "artifacts"),
        "--workers", "1",
    ]
    log = open(root / "server.log", "w")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    uri = f"http://127.0.0.1:{port}"
    deadline = time.time() + 120
    while True:
        try:
            urllib.request.urlopen(f"{uri}/health", timeout=2)
            break
        except OSError:
            if proc.poll() is not None or time.time() > deadline:
                proc.kill()
                pytest.fail(f"mlflow server did not start: {(root / 'server.log').read_text()[-2000:]}")
            time.sleep(0.5)
    yield uri
    proc.terminate()
    proc.wait(timeout=30)


def tracked(tiny_data: Path, out: Path, uri: str, *overrides: str):
    return tiny_config(tiny_data, out, "tracking.enabled=true", f"tracking.uri={uri}",
                       "tracking.experiment=tests", "tracking.log_images=2", *overrides)


@pytest.mark.parametrize("background", ["true", "false"])
def test_a_training_is_one_finished_run_with_params_metrics_and_images(tiny_data, tmp_path, server, background):
    config = tracked(tiny_data, tmp_path, server, f"tracking.background={background}")
    result = fit(config, callbacks=[MLflowCallback(config.tracking)])
    client = MlflowClient(server)
    run = client.get_run(result["run_id"])
    assert run.info.status == "FINISHED"
    assert run.data.params["train.epochs"] == "2" and run.data.params["model.name"] == "unet"
    assert run.data.tags["model"] == "unet" and run.data.tags["seed"] == "0"
    assert run.data.tags["hybridunet_version"] == hybridunet.__version__
    head = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True)
    if head.returncode == 0:  # the tests run from a checkout: its commit is tagged
        assert run.data.tags["git_commit"] == run.data.tags["mlflow.source.git.commit"] == head.stdout.strip()
    for key in ("train_loss", "val_loss", "val_dice", "val_miou", "val_pixel_acc", "lr", "images_per_s"):
        assert [m.step for m in client.get_metric_history(run.info.run_id, key)] == [0, 1], key
    history = client.get_metric_history(run.info.run_id, "val_dice")
    assert run.data.metrics["best_val_dice"] == max(m.value for m in history) == pytest.approx(result["dice"])
    assert [m.step for m in client.get_metric_history(run.info.run_id, "val_dice/road")] == [0, 1]
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"checkpoint", "plots", "config.yaml", "images"} <= artifacts
    images = [a.path for a in client.list_artifacts(run.info.run_id, "images")]
    assert len([p for p in images if p.endswith(".png") and "val_panels" in p]) >= 2  # one per epoch
    assert {a.path for a in client.list_artifacts(run.info.run_id, "checkpoint")} == {
        "checkpoint/best.safetensors", "checkpoint/best.json"}
    assert {a.path for a in client.list_artifacts(run.info.run_id, "plots")} == {
        "plots/confusion_matrix.png", "plots/learning_curves.png"}


@pytest.mark.parametrize("error,status", [(RuntimeError, "FAILED"), (KeyboardInterrupt, "KILLED")])
def test_a_run_that_stops_is_never_left_running(tiny_data, tmp_path, server, error, status):
    config = tracked(tiny_data, tmp_path, server)
    tracker = MLflowCallback(config.tracking)
    with pytest.raises(error):
        fit(config, callbacks=[tracker, CrashAfter(0, error)])
    run = MlflowClient(server).get_run(tracker.run_id)
    assert run.info.status == status and "simulated crash" in run.data.tags["error"]


def test_compare_nests_seed_runs_and_its_table_equals_the_child_metrics(tiny_data, tmp_path, server):
    configs = [
        ("unet", tracked(tiny_data, tmp_path, server, "tracking.experiment=cmp", "train.epochs=1")),
        ("hybrid", tracked(tiny_data, tmp_path, server, "tracking.experiment=cmp", "train.epochs=1",
                           "model.name=hybrid_unet", "model.bottleneck_kwargs={heads: 4}")),
    ]
    arms = run_comparison(configs, [0, 1], out_dir=tmp_path / "cmp")
    client = MlflowClient(server)
    for arm in arms:
        assert arm.seeds == [0, 1]
        children = [client.get_run(r) for r in arm.run_ids]
        parents = {c.data.tags["mlflow.parentRunId"] for c in children}
        assert len(parents) == 1
        assert [c.data.metrics["best_val_dice"] for c in children] == pytest.approx(arm.dice, abs=0)
        assert [c.data.metrics["best_val_miou"] for c in children] == pytest.approx(arm.miou, abs=0)
    parent = client.get_run(parents.pop())
    assert parent.info.status == "FINISHED"
    assert {a.path for a in client.list_artifacts(parent.info.run_id, "compare")} == {
        "compare/table.txt", "compare/summary.json", "compare/dice.png"}
    from_mlflow = {a.label: sorted(a.dice) for a in arms_from_mlflow("cmp", server)}
    assert from_mlflow == {"unet": sorted(arms[0].dice), "hybrid_unet": sorted(arms[1].dice)}


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
    real = demo.synthesize
    monkeypatch.setattr(demo, "synthesize", lambda out, **kw: real(out, train=4, val=4, size=32))
    monkeypatch.chdir(tmp_path)
    summary = demo.run_demo(seeds=2, tracking=False)
    out = capsys.readouterr().out
    assert "generating synthetic street scenes" in out and "dice hybrid_unet - unet" in out
    assert set(summary["arms"]) == {"unet", "hybrid_unet"} and len(summary["arms"]["unet"]["dice"]) == 2


def test_background_log_keeps_order_and_raises_a_failure_at_close():
    from hybridunet.tracking import LogWorker

    log, seen = LogWorker(background=True), []
    log.submit(seen.append, 1)
    log.submit(lambda: 1 / 0)
    log.submit(seen.append, 2)  # dropped: it came after a failure
    with pytest.raises(RuntimeError, match="MLflow logging failed: ZeroDivisionError"):
        log.close()
    assert seen == [1]


def test_inline_log_raises_a_failure_at_once():
    from hybridunet.tracking import LogWorker

    log, seen = LogWorker(background=False), []
    log.submit(seen.append, 1)
    assert seen == [1]
    with pytest.raises(RuntimeError, match="MLflow logging failed: ZeroDivisionError"):
        log.submit(lambda: 1 / 0)
    log.submit(seen.append, 2)  # the failure was raised to the caller, so logging goes on
    log.close()
    assert seen == [1, 2]


@pytest.mark.parametrize("background", [True, False])
def test_log_counts_the_cpu_time_of_its_calls_not_their_waiting(background):
    from hybridunet.tracking import LogWorker

    def burn(seconds: float) -> None:
        start = time.thread_time()
        while time.thread_time() - start < seconds:
            pass

    log = LogWorker(background=background)
    log.submit(time.sleep, 0.3)  # waiting, as for a store's fsync: no CPU
    log.submit(burn, 0.05)
    log.close()
    assert 0.05 <= log.cpu_seconds < 0.2


@pytest.mark.skipif(sys.platform != "linux", reason="a thread's own scheduling policy is a Linux feature")
def test_background_log_runs_at_idle_priority_and_leaves_the_caller_alone():
    from hybridunet.tracking import LogWorker

    before = os.sched_getscheduler(0)
    log, policies = LogWorker(background=True), []
    log.submit(lambda: policies.append(os.sched_getscheduler(0)))
    log.close()
    assert policies == [os.SCHED_IDLE]
    assert os.sched_getscheduler(0) == before  # training's own threads keep their priority
