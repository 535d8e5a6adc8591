"""Every benchmark runs as its one documented command and ends with its JSON line.

Tiny sizes: this checks that the commands work and report what they promise, not speed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"


def run_benchmark(script: str, *args: str, cwd: Path, env: dict[str, str] | None = None) -> tuple[list[str], dict]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", **(env or {})}
    done = subprocess.run([sys.executable, str(BENCH / script), *args], capture_output=True, text=True,
                          cwd=cwd, env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.strip().splitlines()
    return lines, json.loads(lines[-1])


def test_train_speed_reports_peak_fractions(tmp_path):
    lines, figures = run_benchmark("train_speed.py", "--models", "unet", "--modes", "eager", "channels_last",
                                   "--batch", "2", "--size", "32", "--steps", "1", "--rounds", "2", cwd=tmp_path)
    assert any("channels_last" in line for line in lines)
    assert figures["allocator"] == "retain"
    assert figures["fp32_matmul_peak_gflops"] > 0
    assert 0 < figures["unet_best_peak_fraction"] < 1.5
    assert figures["unet_best_mode"] in {"eager", "channels_last"}


def test_train_speed_rejects_an_unknown_mode(tmp_path):
    done = subprocess.run([sys.executable, str(BENCH / "train_speed.py"), "--modes", "eager+fast"],
                          capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 2 and "unknown mode flag(s) ['fast'] in 'eager+fast'" in done.stderr


def test_inference_speed_measures_each_batch_in_its_own_process(tmp_path):
    _, figures = run_benchmark("inference_speed.py", "--models", "unet", "--batches", "1", "4", "--size", "32",
                               "--seconds", "0.2", cwd=tmp_path)
    assert figures["unet_b4_images_per_s"] > 0 and figures["unet_b1_images_per_s"] > 0
    assert figures["unet_b4_activations_mib"] >= 0


def test_metrics_speed_checks_equal_values_and_reports_a_speedup(tmp_path):
    lines, figures = run_benchmark("metrics_speed.py", "--batch", "2", "--size", "32", "--repeats", "1", cwd=tmp_path)
    assert figures["values_equal"] is True and figures["speedup_vs_torchmetrics"] > 0
    assert any("torchmetrics" in line for line in lines)


def test_data_speed_compares_the_loader_with_a_train_step(tmp_path):
    _, figures = run_benchmark("data_speed.py", "--images", "16", "--batch", "4", "--size", "64",
                               "--models", "unet", "--train-batch", "2", cwd=tmp_path)
    assert figures["loader_images_per_s_0_workers"] > 0
    assert figures["loader_over_fastest_train_step"] == pytest.approx(
        figures["loader_images_per_s_0_workers"] / figures["train_step_images_per_s_unet"], rel=0.05)


def test_quality_compares_arms_over_seeds_against_the_first(tmp_path):
    lines, figures = run_benchmark(
        "quality.py", "--arms", "unet", "unet:encoder_block=residual", "--seeds", "2", "--epochs", "1",
        "--train", "8", "--val", "4", "--size", "32", "--batch", "4", "--widths", "4", "8", "--no-tracking", cwd=tmp_path)
    assert (tmp_path / "data/benchmark-8-4-32-s0/val").is_dir()
    assert "unet:encoder_block=residual-unet_p_value" in figures
    assert any(line.startswith("dice unet:encoder_block=residual - unet:") for line in lines)


@pytest.mark.parametrize("recipe", ["tiny", "demo"])
def test_tracking_overhead_reports_each_mode_and_removes_its_runs(tmp_path, recipe):
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    lines, figures = run_benchmark(
        "tracking_overhead.py", "--recipe", recipe, "--rounds", "1", "--epochs", "1", "--images", "4", "--size", "32",
        "--widths", "4", "8", "--set", "data.limit_val=4", cwd=tmp_path, env={"TMPDIR": str(scratch)})
    assert figures["recipe"] == recipe and f"{recipe} recipe: 4 images, crops of 32" in lines[0]
    assert figures["run_s_tracking_off"] > 0 and figures["run_s_tracking_on"] > 0
    assert {"overhead_fraction", "overhead_fraction_inline"} <= figures.keys()
    assert 0 < figures["accounted_s"] < 2 * figures["run_s_tracking_on"]  # hooks and worker CPU, each within the run
    assert any(line.lstrip().startswith("on, inline") for line in lines)
    assert list(scratch.iterdir()) == []  # its store, data and checkpoints went with it
