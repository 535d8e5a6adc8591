"""DDP through torchrun on CPU (gloo): two processes, one MLflow run, whole-set metrics."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from mlflow.tracking import MlflowClient

from hybridunet.data.loader import EpochSampler
from hybridunet.engine import evaluate_checkpoint
from hybridunet.jsonsafe import json_safe

REPO = Path(__file__).parents[1]


@pytest.mark.parametrize("size", [5, 16, 17])
def test_ranks_get_disjoint_training_samples_and_validation_sees_each_once(size):
    for epoch in (0, 3):
        train = []
        for rank in range(2):
            sampler = EpochSampler(size, shuffle=True, seed=1, rank=rank, num_replicas=2, pad=True)
            sampler.set_epoch(epoch)
            train.append([k % size for k in sampler])
        assert len(train[0]) == len(train[1])  # DDP needs as many steps on every rank
        if size % 2 == 0:
            assert not set(train[0]) & set(train[1])
        assert set(train[0]) | set(train[1]) == set(range(size))
        val = [list(EpochSampler(size, shuffle=False, rank=r, num_replicas=2, pad=False)) for r in range(2)]
        assert sorted(val[0] + val[1]) == list(range(size))


def test_two_process_torchrun_logs_one_run_and_matches_a_one_process_eval(tiny_yaml, tiny_data, tmp_path, mlflow_store):
    uri = mlflow_store
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           "-m", "hybridunet", "train", "--config", str(tiny_yaml), f"data.root={tiny_data}",
           f"train.out_dir={tmp_path / 'run'}", "train.val_batch_size=1", "tracking.enabled=true",
           f"tracking.uri={uri}", "tracking.experiment=ddp", "tracking.log_model=none"]
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    assert len(lines) == 1  # only rank 0 reports
    trained = json.loads(lines[0])

    client = MlflowClient(uri)
    runs = client.search_runs([client.get_experiment_by_name("ddp").experiment_id])
    assert [r.info.status for r in runs] == ["FINISHED"] and runs[0].info.run_id == trained["run_id"]

    # same thread count as the ranks: float sums differ across thread counts, flipping near-tie pixels
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        single = json_safe(evaluate_checkpoint(trained["checkpoint"], batch_size=1))
    finally:
        torch.set_num_threads(threads)
    for key in ("dice", "miou", "pixel_acc", "per_class_dice"):
        assert single[key] == trained[key], key  # 5 validation images split 3 + 2: none twice, none missed
    assert single["loss"] == pytest.approx(trained["loss"], rel=1e-9)
    assert single["soft_dice_study"] == pytest.approx(trained["soft_dice_study"], rel=1e-9)

    resumed = subprocess.run(cmd + ["--resume"], capture_output=True, text=True, env=env, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    again = json.loads([line for line in resumed.stdout.splitlines() if line.startswith("{")][0])
    cost, cost_again = trained.pop("cost"), again.pop("cost")
    assert again == trained  # a finished run resumes to the same result and the same MLflow run
    kept = ("params_m", "gflops", "train_images_per_s")  # from the model and the history; inference is timed anew
    assert {k: cost_again[k] for k in kept} == {k: cost[k] for k in kept}
    assert client.get_run(trained["run_id"]).info.status == "FINISHED"
