"""Faults: killed and interrupted runs, non-finite losses, hostile or unwritable files."""

import errno
import json
import os
import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from mlflow.tracking import MlflowClient

from hybridunet import checkpoint
from hybridunet.checkpoint import read_checkpoint, save_checkpoint
from hybridunet.config import load_config
from hybridunet.engine import fit
from hybridunet.models import create_model
from hybridunet.tracking import MLflowCallback
from hybridunet.weights import read_state_dict

REPO = Path(__file__).parents[2]


def train_cmd(tiny_yaml: Path, tiny_data: Path, out: Path, uri: str, *extra: str, experiment: str = "faults") -> list[str]:
    return [sys.executable, "-m", "hybridunet", "train", "--config", str(tiny_yaml), f"data.root={tiny_data}",
            f"train.out_dir={out}", "tracking.enabled=true", f"tracking.uri={uri}", f"tracking.experiment={experiment}",
            "train.epochs=4", "data.limit_train=16", "tracking.log_model=none", "train.ema.decay=0.9", *extra]


def wait_for_epoch(out: Path, epoch: int, proc: subprocess.Popen, limit: float = 180) -> None:
    deadline = time.time() + limit
    while True:
        sidecar = out / "last.json"
        if sidecar.is_file():
            try:
                if json.loads(sidecar.read_text())["epoch"] >= epoch:
                    return
            except (ValueError, KeyError):
                pass
        assert proc.poll() is None, "training ended before it could be stopped"
        assert time.time() < deadline, "no checkpoint appeared"
        time.sleep(0.05)


@pytest.fixture
def env(monkeypatch):
    monkeypatch.setenv("PYTHONPATH", str(REPO))


def test_sigkill_then_resume_continues_and_matches_an_uninterrupted_run(tiny_yaml, env, tiny_data, tmp_path, mlflow_store):
    uri = mlflow_store
    expected = fit(load_config(tiny_yaml, train_cmd(tiny_yaml, tiny_data, tmp_path / "whole", uri)[6:]))  # in this process

    proc = subprocess.Popen(train_cmd(tiny_yaml, tiny_data, tmp_path / "killed", uri), stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL)
    wait_for_epoch(tmp_path / "killed", 1, proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not list((tmp_path / "killed").glob(".*.tmp"))  # a half-written checkpoint never takes a real name

    config = load_config(tiny_yaml, train_cmd(tiny_yaml, tiny_data, tmp_path / "killed", uri)[6:])
    result = fit(config, callbacks=[MLflowCallback(config.tracking)], resume=True)
    for key in ("dice", "miou", "pixel_acc", "loss", "per_class_dice", "soft_dice_study"):
        assert result[key] == expected[key], key
    client = MlflowClient(uri)
    run = client.get_run(result["run_id"])
    assert run.info.status == "FINISHED"
    assert sorted(m.step for m in client.get_metric_history(run.info.run_id, "val_dice")) == [0, 1, 2, 3]


def test_ctrl_c_ends_the_run_killed_keeps_the_last_checkpoint_and_exits_130(tiny_yaml, env, tiny_data, tmp_path, mlflow_store):
    uri = mlflow_store
    # A shell that starts a job in the background makes it ignore SIGINT, and children inherit
    # that; start the training as a terminal's foreground job would be, with SIGINT's default.
    proc = subprocess.Popen(train_cmd(tiny_yaml, tiny_data, tmp_path / "run", uri, "train.epochs=50", experiment="faults-ctrl-c"),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    wait_for_epoch(tmp_path / "run", 0, proc)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err[-2000:]
    assert "interrupted" in err and "--resume" in err
    _, meta = read_checkpoint(tmp_path / "run" / "last.safetensors")
    runs = MlflowClient(uri).search_runs([MlflowClient(uri).get_experiment_by_name("faults-ctrl-c").experiment_id])
    assert [r.info.status for r in runs] == ["KILLED"]
    assert runs[0].info.run_id == meta["info"]["mlflow_run_id"]


def test_non_finite_loss_fails_the_run_and_keeps_the_last_good_checkpoint(tiny_config, tiny_data, tmp_path, monkeypatch,
                                                                         mlflow_store):
    from hybridunet.engine import build
    from hybridunet.engine import training as fit_module

    real = build.build_loss

    class ExplodesInEpoch2(torch.nn.Module):
        def __init__(self, config, class_weights=None):
            super().__init__()
            self.base, self.calls = real(config, class_weights), 0

        def forward(self, logits, target):
            self.calls += 1  # 4 training steps per epoch, then validation calls
            value = self.base(logits, target)
            return value * float("inf") if self.calls > 4 + 2 else value

    loss_that_explodes_in_epoch_2 = ExplodesInEpoch2

    monkeypatch.setattr(fit_module, "build_loss", loss_that_explodes_in_epoch_2)
    config = tiny_config(tiny_data, tmp_path, "tracking.enabled=true", f"tracking.uri={mlflow_store}",
                         "tracking.log_model=none")
    tracker = MLflowCallback(config.tracking)
    with pytest.raises(FloatingPointError, match=r"loss is (inf|nan) at epoch 2, step 1: lower the learning rate"):
        fit(config, callbacks=[tracker])
    assert MlflowClient(config.tracking.uri).get_run(tracker.run_id).info.status == "FAILED"
    assert read_checkpoint(tmp_path / "last.safetensors")[1]["epoch"] == 0


class RunsCode:
    def __reduce__(self):
        return (os.system, (f"touch {MARKER}",))


MARKER = Path("/tmp/hybridunet-pickle-ran")


def test_a_pickle_that_would_run_code_is_refused_without_running_it(tmp_path):
    MARKER.unlink(missing_ok=True)
    evil = tmp_path / "evil.pth"
    evil.write_bytes(pickle.dumps({"conv.weight": RunsCode()}))
    with pytest.raises(ValueError, match="refusing to unpickle"):
        read_state_dict(evil)
    renamed = tmp_path / "evil.safetensors"
    renamed.write_bytes(evil.read_bytes())
    with pytest.raises(ValueError, match="not a readable safetensors file"):
        read_checkpoint(renamed)
    with pytest.raises(ValueError, match="checkpoints are .safetensors files"):
        read_checkpoint(evil)
    assert not MARKER.exists()


def test_a_checkpoint_of_another_architecture_names_the_mismatched_keys(tmp_path):
    save_checkpoint(tmp_path / "c.safetensors", create_model("unet", widths=(8, 16)),
                    {"model": {"name": "unet", "num_classes": 19, "widths": [8, 16, 32]}, "class_names": []})
    with pytest.raises(ValueError, match=r"do not fit UNet: missing keys \[.*encoder\.2"):
        checkpoint.load_model(tmp_path / "c.safetensors")


def test_a_failed_checkpoint_write_leaves_the_previous_one_intact(tmp_path, monkeypatch):
    model = create_model("unet", widths=(4, 8))
    meta = {"model": {"name": "unet", "num_classes": 19, "widths": [4, 8]}, "class_names": []}
    path = save_checkpoint(tmp_path / "last.safetensors", model, {**meta, "epoch": 0})
    before = path.read_bytes()

    def disk_full(tensors, filename, metadata=None):
        Path(filename).write_bytes(b"partial")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(checkpoint, "save_file", disk_full)
    with torch.no_grad():
        next(model.parameters()).add_(1)
    with pytest.raises(OSError, match="No space left"):
        save_checkpoint(path, model, {**meta, "epoch": 1})
    assert path.read_bytes() == before and json.loads(path.with_suffix(".json").read_text())["epoch"] == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.json", "last.safetensors"]  # no temp left
