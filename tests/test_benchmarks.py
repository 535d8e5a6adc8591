"""Every benchmark runs as its documented command and ends with its JSON line.

In-process through each script's `main(argv)`, at tiny sizes: this checks that the commands
work and report what they promise, not speed.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
SCRIPTS = sorted(p.stem for p in BENCH.glob("*.py") if p.stem != "common")


@pytest.fixture(autouse=True)
def bench_path(monkeypatch):
    import torch

    monkeypatch.syspath_prepend(str(BENCH))  # the scripts import their neighbours by name
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)  # data_speed times its loader on one thread


def run_benchmark(script: str, *args: str, capsys) -> tuple[list[str], dict]:
    module = importlib.import_module(script)
    capsys.readouterr()
    module.main(list(args))
    lines = capsys.readouterr().out.strip().splitlines()
    return lines, json.loads(lines[-1])


def test_every_benchmark_script_is_tested_here():
    source = Path(__file__).read_text()
    assert SCRIPTS and all(f'"{name}"' in source for name in SCRIPTS), SCRIPTS


def test_train_speed_reports_peak_fractions(capsys):
    lines, figures = run_benchmark("train_speed", "--models", "unet", "--modes", "eager", "channels_last",
                                   "--batch", "2", "--size", "32", "--steps", "1", "--rounds", "2",
                                   "--peak-size", "512", "--peak-seconds", "0.2", capsys=capsys)
    assert any("channels_last" in line for line in lines)
    assert figures["allocator"] == "retain"
    assert figures["fp32_matmul_peak_gflops"] > 0
    assert 0 < figures["unet_best_peak_fraction"] < 1.5
    assert figures["unet_best_mode"] in {"eager", "channels_last"}


def test_train_speed_rejects_an_unknown_mode(capsys):
    with pytest.raises(SystemExit) as stop:
        run_benchmark("train_speed", "--modes", "eager+fast", capsys=capsys)
    assert stop.value.code == 2 and "unknown mode flag(s) ['fast'] in 'eager+fast'" in capsys.readouterr().err


def test_inference_speed_measures_each_batch_in_its_own_process(capsys):
    lines, figures = run_benchmark("inference_speed", "--models", "unet", "--batches", "1", "4", "--size", "96",
                                   "--seconds", "0", "--runtimes", "torch", "onnxruntime", capsys=capsys)
    assert figures["unet_b4_torch_images_per_s"] > 0 and figures["unet_b1_onnxruntime_images_per_s"] > 0
    # each process starts empty, so four images hold more activations than one
    assert figures["unet_b4_torch_activations_mib"] > figures["unet_b1_torch_activations_mib"] > 0
    assert any(line.split()[:3] == ["unet", "4", "onnxruntime"] for line in lines)


def test_metrics_speed_checks_equal_values_and_reports_a_speedup(capsys):
    lines, figures = run_benchmark("metrics_speed", "--batch", "2", "--size", "32", "--repeats", "1", capsys=capsys)
    assert figures["values_equal"] is True and figures["speedup_vs_torchmetrics"] > 0
    assert any("torchmetrics" in line for line in lines)


def test_data_speed_compares_the_loader_with_a_train_step(capsys):
    lines, figures = run_benchmark("data_speed", "--images", "16", "--batch", "4", "--size", "64",
                                   "--models", "unet", "--train-batch", "2", capsys=capsys)
    assert figures["synth_pairs_per_s"] > 0 and figures["map_ms_per_mask"] > 0
    assert figures["loader_images_per_s_0_workers"] > 0 and figures["loader_images_per_s_2_workers"] > 0
    assert figures["train_step_images_per_s_unet"] > 0
    assert any(line.strip().startswith("loader (0 workers) / unet train step") for line in lines)


def test_ddp_speed_trains_under_torchrun(capsys):
    # one process: the torchrun command and the report (two processes are tests/test_distributed.py's)
    lines, figures = run_benchmark("ddp_speed", "--images", "8", "--size", "32", "--epochs", "1", "--batch", "2",
                                   "--processes", "1", capsys=capsys)
    assert figures["images_per_s_1"] > 0 and "speedup_2_over_1" not in figures  # only 1 was measured
    assert any(line.lstrip().startswith("1 process ") for line in lines)


def test_loop_speed_divides_a_fit_epoch_by_the_bare_step(capsys):
    lines, figures = run_benchmark("loop_speed", "--models", "unet", "--batch", "2", "--size", "32",
                                   "--images", "8", "--steps", "1", capsys=capsys)
    assert figures["unet_step_images_per_s"] > 0
    rows = {row[1]: row for row in (line.split() for line in lines if line.lstrip().startswith("unet"))}
    assert set(rows) == {"dataloader", "in_memory"}
    for loader, row in rows.items():  # the table's ratio is the reported one
        assert figures[f"unet_{loader}_loop_images_per_s"] > 0
        assert row[-1] == f"{figures[f'unet_{loader}_loop_over_step']:.2f}"


def test_tune_workers_counts_finished_trials_per_worker_count(capsys):
    lines, figures = run_benchmark("tune_workers", "--backends", "sqlite", "--workers", "2", "--trials", "2",
                                   "--epochs", "1", "--images", "4", "--size", "32", capsys=capsys)
    assert figures["sqlite_2_finished"] == 2 and figures["all_unique"] is True  # exactly --trials, shared
    assert figures["sqlite_2_trials_per_min"] > 0


def test_quality_compares_arms_over_seeds_against_the_first(capsys, tmp_path, monkeypatch):
    """Arms over seeds with a held-out test split, the agreement lines and the cost
    columns; a rerun reads every finished run back from the journal."""
    monkeypatch.chdir(tmp_path)
    args = ("quality", "--arms", "unet", "hybrid_unet", "--seeds", "2", "--epochs", "1", "--train", "8",
            "--val", "4", "--test", "4", "--size", "32", "--batch", "4", "--widths", "4", "8", "--no-tracking",
            "--match-cost", "time")
    lines, figures = run_benchmark(*args, "--jobs", "2", capsys=capsys)  # the 4 runs dealt to 2 processes
    from hybridunet.data.synthetic import GENERATOR_VERSION

    assert (tmp_path / f"data/benchmark-v{GENERATOR_VERSION}-8-4-4-32-s0/test").is_dir()
    assert "hybrid_unet-unet_p_value" in figures and "hybrid_unet_test_dice_mean" in figures
    assert any(line.startswith("dice hybrid_unet - unet@") and " at matched time: " in line
               and "detectable at 80% power" in line for line in lines)
    assert any(line.startswith("hybrid_unet - unet: study scale +0.045 (3 of 3 seeds)") for line in lines)
    [unet] = [label for label in figures if label.startswith("unet@") and label.endswith("x-time_dice_mean")]
    assert float(unet.split("@")[1].split("x")[0]) >= 1  # unet, the cheaper arm, trained longer
    journal = tmp_path / "outputs/quality/journal.jsonl"
    assert len(journal.read_text().splitlines()) == 5  # the match line and 2 arms x 2 seeds
    _, again = run_benchmark(*args, capsys=capsys)
    assert again == figures and len(journal.read_text().splitlines()) == 5  # nothing trained again


def test_quality_with_the_rule_decides_identical_arms_equivalent_and_a_rerun_reads_the_journal(capsys, tmp_path,
                                                                                               monkeypatch):
    """--max-seeds: looks seed by seed; two arms of one config (unet's skip is concat) differ by
    exactly 0 and are equivalent at the first look; the journal records the rule and a rerun
    under another cap is refused."""
    monkeypatch.chdir(tmp_path)
    args = ("quality", "--arms", "unet", "unet+skip=concat", "--epochs", "1", "--train", "8", "--val", "4",
            "--test", "4", "--size", "32", "--batch", "4", "--widths", "4", "8", "--no-tracking",
            "--max-seeds", "5", "--min-seeds", "2")
    lines, figures = run_benchmark(*args, capsys=capsys)
    [pair] = figures["pairs"]
    assert pair["decision"] == "equivalent" and pair["seeds"] == [0, 1] and figures["seeds"] == 2
    assert pair["estimate"] == 0.0 and pair["ci95"] == [0.0, 0.0] and pair["cpu_minutes"] > 0
    assert "look at 2 seeds:" in lines
    assert any(line.startswith("test_dice unet+skip=concat - unet: equivalent within ±0.01") for line in lines)
    journal = tmp_path / "outputs/quality/journal.jsonl"
    assert json.loads(journal.read_text().splitlines()[0]) == {"rule": {
        "max_seeds": 5, "min_seeds": 2, "margin": 0.01, "level": 0.05, "method": "exact", "spending": "obf"}}
    _, again = run_benchmark(*args, capsys=capsys)
    assert again == figures and len(journal.read_text().splitlines()) == 5  # the rule and 2 x 2 runs
    with pytest.raises(SystemExit) as stop:
        run_benchmark(*args[:-4], "--max-seeds", "6", "--min-seeds", "2", capsys=capsys)
    assert stop.value.code == 2 and "continues a sequence under" in capsys.readouterr().err


def test_demo_recipe_scores_candidates_on_held_out_seeds_only(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    module = importlib.import_module("demo_recipe")
    monkeypatch.setattr(module, "SYNTHETIC", {"train": 8, "val": 4, "size": 32, "seed": 0})
    tiny = {**module.RECIPE, "model": {"widths": [4, 8]}, "train": {"epochs": 1, "batch_size": 4, "progress": False},
            "data": {**module.RECIPE["data"], "size": 32, "limit_val": 4}}
    monkeypatch.setattr(module, "RECIPE", tiny)
    monkeypatch.setattr(module, "CANDIDATES", {"demo": {}, "e2": {"train.epochs": 2}})
    with pytest.raises(SystemExit, match="held-out seeds are 100 and up"):
        module.main(["--seeds", "2"])
    capsys.readouterr()
    module.main(["--seeds", "100:103"])
    lines = capsys.readouterr().out.strip().splitlines()
    figures = json.loads(lines[-1])
    assert set(figures) == {"demo", "e2"} and all(f["cap"] == 10 for f in figures.values())  # tiny runs: 10 fit
    assert any(line.startswith("e2 ") and "(cap 10)" in line for line in lines)
    journal = (tmp_path / "outputs/demo-recipe/journal.jsonl").read_text().splitlines()
    assert len(journal) == 12 and all(json.loads(line)["seed"] >= 100 for line in journal)


def test_tracking_overhead_reports_each_mode_and_removes_its_runs(tmp_path, monkeypatch, capsys):
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setenv("TMPDIR", str(scratch))
    monkeypatch.setattr("tempfile.tempdir", None)  # tempfile caches its folder: read TMPDIR again
    lines, figures = run_benchmark(
        "tracking_overhead", "--recipe", "demo", "--rounds", "1", "--epochs", "1", "--images", "4", "--size", "32",
        "--widths", "4", "8", "--set", "data.limit_val=4", capsys=capsys)
    assert figures["recipe"] == "demo" and "demo recipe: 4 images, crops of 32" in lines[0]
    assert figures["run_s_tracking_off"] > 0 and figures["run_s_tracking_on"] > 0
    assert {"overhead_fraction", "overhead_fraction_inline"} <= figures.keys()
    assert 0 < figures["accounted_s"] < 2 * figures["run_s_tracking_on"]  # hooks and worker CPU, each within the run
    assert figures["charts_s"] > 0 and any(line.lstrip().startswith("end-of-run charts") for line in lines)
    assert any(line.lstrip().startswith("on, inline") for line in lines)
    left = [p.name for p in scratch.iterdir() if not p.name.startswith("torchinductor_")]  # torch's own cache
    assert left == []  # its store, data and checkpoints went with it


def test_tracking_latency_times_each_call_from_submission_to_landing(capsys):
    lines, figures = run_benchmark("tracking_latency", "--recipe", "tiny", "--store", "sqlite", "--set",
                                   "train.epochs=2", "data.limit_train=4", "data.limit_val=4", "tracking.log_images=1",
                                   "tracking.log_model=none", capsys=capsys)
    assert "tiny recipe, sqlite store" in lines[0]
    rows = {(r["when"], r["call"]): r for r in figures["rows"]}
    assert rows[("during training", "log_image")]["n"] == 2 * 2  # val_panels and val/sample_00, two epochs
    assert ("at the end", "set_terminated") in rows
    assert all(0 <= r["median_s"] <= r["p95_s"] <= r["max_s"] < figures["seconds"] for r in figures["rows"])


def test_model_logging_times_a_run_with_and_without_its_model_in_fresh_processes(tmp_path, monkeypatch, capsys,
                                                                                 mlflow_store):
    """Its runs in this process (each in a fresh one is what it measures, not what it checks)."""
    import contextlib
    import io
    import subprocess

    from hybridunet import demo

    model_logging = importlib.import_module("model_logging")
    run = subprocess.run

    def in_process(command, **kwargs):
        if command[1:2] != [model_logging.__file__]:  # git, for the runs' tags
            return run(command, **kwargs)
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            model_logging.main(command[2:])
        return subprocess.CompletedProcess(command, 0, out.getvalue(), "")

    monkeypatch.setattr(model_logging.subprocess, "run", in_process)
    monkeypatch.setattr(demo, "SYNTHETIC", {"train": 4, "val": 4, "size": 32, "seed": 0})
    lines, figures = run_benchmark("model_logging", "--arms", "unet", "--rounds", "1", "--epochs", "1", "--images",
                                   "4", "--size", "32", "--widths", "4", "8", "--data", str(tmp_path / "synthetic"),
                                   "--store", mlflow_store, "--no-full", capsys=capsys)
    (row,) = figures["rows"]
    assert row["arm"] == "unet" and row["none_s"] > 0 and row["model_run_s"] > row["model_s"] > 0 and row["again_s"] > 0
    assert row["ahead_cpu_s"] > 0 and len(row["wall_diffs"]) == 1 and row["wall_diff"] == row["wall_diffs"][0]
    none, onnx = sorted(figures["runs"], key=lambda r: r["kind"] != "none")
    assert row["wall_diff"] == pytest.approx((onnx["run_s"] - none["run_s"]) / none["run_s"])
    assert row["cpu_diff"] == pytest.approx((onnx["cpu_s"] - none["cpu_s"]) / none["cpu_s"])
    assert 0 < row["model_mb"] < 1 and row["full_mb"] is None  # widths 4, 8: a few kB
    assert {r["kind"] for r in figures["runs"]} == {"none", "onnx"}
    assert lines[1].split()[:3] == ["arm", "none", "s"] and lines[2].startswith("unet")


def test_tracking_overhead_recipes_are_tiny_yaml_and_the_demo(monkeypatch):
    tracking_overhead = importlib.import_module("tracking_overhead")
    from hybridunet.config import parse_config
    from hybridunet.demo import RECIPE

    tiny, tiny_photo = tracking_overhead.recipe("tiny")
    demo, demo_photo = tracking_overhead.recipe("demo")
    assert parse_config(tiny).train.epochs == 6 and tiny["data"]["limit_train"] == 32 and tiny_photo == 64
    assert {k: v for k, v in demo.items() if k != "seed"} == RECIPE and demo_photo == 256


def test_quality_reads_the_study_scales_verdicts_and_seed_ranges(tmp_path):
    """A pair is separated when every shared seed (2+, 3+ with smp_unet) has the same sign;
    the test split decides where the reference has one."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    quality = importlib.import_module("quality")
    runs = {"unet": [0.50, 0.60, 0.55], "hybrid_unet": [0.52, 0.58, 0.60], "hybrid_unet_resdec": [0.70, 0.75],
            "smp_unet": [0.40, 0.45]}
    path = tmp_path / "reference.jsonl"
    path.write_text("".join(json.dumps({"label": label, "seed": seed, "dice": 0.0, "test_dice": value}) + "\n"
                            for label, values in runs.items() for seed, value in enumerate(values)))
    assert quality.study_scale_verdicts(path) == [
        ("hybrid_unet_resdec", "unet", "+0.175 (2 of 2 seeds)"),
        ("hybrid_unet_resdec", "hybrid_unet", "+0.175 (2 of 2 seeds)")]  # mixed signs and 2-seed smp left out
    assert [v[:2] for v in quality.study_scale_verdicts(quality.REFERENCE["current"])][0] == ("hybrid_unet", "unet")
    assert quality.parse_seeds(["3"]) == [0, 1, 2] and quality.parse_seeds(["2:4"]) == [2, 3]
    assert quality.parse_seeds(["5", "0"]) == [5, 0]
    with pytest.raises(SystemExit, match="--seeds x: expected a count N, a range A:B"):
        quality.main(["--seeds", "x"])
    assert quality.parse_arm("unet+skip=attention_gate", [4, 8]) == quality.parse_arm("unet:skip=attention_gate", [4, 8])
    assert quality.parse_arm("unet+skip=attention_gate", [4, 8]) == {"name": "unet", "widths": [4, 8],
                                                                    "skip": "attention_gate"}
    with pytest.warns(DeprecationWarning, match=r"write 'unet\+skip=attention_gate'"):
        assert quality.parse_args(["--arms", "unet:skip=attention_gate"]).arms == ["unet+skip=attention_gate"]
    from hybridunet.results import legacy_label

    assert legacy_label("unet+bottleneck_kwargs={heads: 4}", typed=True) == "unet+bottleneck_kwargs={heads: 4}"
    typed = argparse.Namespace(pairs=["unet:skip=attention_gate - unet"])  # the old form, as a user types it
    with pytest.warns(DeprecationWarning, match=r"write 'unet\+skip=attention_gate'"):
        assert quality.rule_pairs(typed, ["unet", "unet+skip=attention_gate"]) == [("unet", "unet+skip=attention_gate")]


def test_quality_writes_the_reference_data_with_the_generator_of_that_commit(tmp_path, monkeypatch):
    """--generator COMMIT: that commit's write_split from a git worktree, recorded; the scenes
    are not the current generator's."""
    import subprocess

    import cv2
    import numpy as np

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    quality = importlib.import_module("quality")
    from hybridunet.data.synthetic import render_scene

    before = subprocess.run(["git", "-C", str(quality.REPO), "worktree", "list"], capture_output=True, text=True).stdout
    monkeypatch.chdir(tmp_path)
    out = Path("v1")  # relative, as quality.py names its data folders
    quality.legacy_data("47e7fda", out, {"train": 2, "val": 1}, 32, 0)
    record = json.loads((out / "synthetic.json").read_text())
    assert record["commit"] == "47e7fda" and record["splits"] == {"train": 2, "val": 1}
    old = cv2.imread(str(out / "train" / "1.jpg"))[:, 32:, ::-1]  # the colour mask half
    from hybridunet.data.synthetic import LABEL_COLORS

    assert np.abs(old.astype(int) - LABEL_COLORS[render_scene(0, "train", 1, 32)[1]]).mean() > 5
    after = subprocess.run(["git", "-C", str(quality.REPO), "worktree", "list"], capture_output=True, text=True).stdout
    assert after == before  # the worktree is gone again


def test_the_study_scale_journal_still_resumes_by_its_config_hashes():
    """The reference journal continues only if today's recipe hashes like the one it ran."""
    from hybridunet.results import Journal

    quality = importlib.import_module("quality")
    args = quality.parse_args(["--size", "256", "--train", "2975", "--val", "500", "--test", "500", "--epochs", "10",
                               "--batch", "32", "--widths", "32", "64", "128", "256", "512", "--in-memory"])
    hashes = {label: config.result_hash() for label, config in quality.arm_configs(args, quality.data_folder(args))}
    journal = {(r.label, r.config_hash) for r in Journal(quality.REFERENCE["current"]).records().values()}
    assert journal == set(hashes.items())
    v1 = Journal(quality.REFERENCE["47e7fda"]).records()  # v1 lines have no config hash: they still load
    assert len(v1) == 9 and all(r.config_hash is None and r.test is None for r in v1.values())


def test_sequential_rule_reports_both_rules_rates_power_and_seeds_used(capsys):
    lines, figures = run_benchmark("sequential_rule", "--sims", "2000", "--caps", "4", "10", "--effects", "1.0",
                                   capsys=capsys)
    assert figures["cap10_normal_d_z 1_exact_better"] >= 0.7 > figures["cap10_normal_d_z 1_bonferroni_better"]
    assert 4 <= figures["cap10_normal_d_z 1_exact_mean_seeds"] <= 10
    se = (0.05 * 0.95 / 2000) ** 0.5
    assert abs(figures["cap4_normal_0_exact_side"] - 0.05) <= 3 * se
    assert figures["cap4_normal_0_bonferroni_side"] <= 0.05 + 2 * se


def test_sequential_rule_rereads_a_journal_and_says_which_pairs_are_below_the_first_look(capsys):
    from pathlib import Path

    reference = Path(__file__).resolve().parents[1] / "benchmarks/reference/study_scale_v2.jsonl"
    lines, figures = run_benchmark("sequential_rule", "--journal", str(reference), capsys=capsys)
    assert figures and all(value.startswith("below the first look") for value in figures.values())
    assert figures["hybrid_unet - unet"] == "below the first look (3 seeds)"


def test_variance_scores_raw_and_ema_weights_on_48_and_all_validation_images_in_the_same_runs(capsys, tmp_path,
                                                                                            monkeypatch):
    monkeypatch.chdir(tmp_path)
    from hybridunet import demo

    monkeypatch.setattr(demo, "SYNTHETIC", {"train": 8, "val": 4, "size": 32, "seed": 0})
    module = importlib.import_module("variance")
    monkeypatch.setattr(module, "SYNTHETIC", demo.SYNTHETIC)
    monkeypatch.setattr(module, "RECIPE", {**demo.RECIPE, "model": {"widths": [4, 8, 16]},
                                           "data": {**demo.RECIPE["data"], "size": 32},
                                           "train": {**demo.RECIPE["train"], "epochs": 2, "batch_size": 4}})
    lines, figures = run_benchmark("variance", "--seeds", "108:111", "--val", "56", "--boot", "200", capsys=capsys)
    assert set(figures) == {"raw/48", "ema/48", "raw/500", "ema/500"}
    assert figures["raw/48"]["sd_ratio"] == 1.0 and figures["raw/48"]["adopt"] is False
    rows = [json.loads(line) for line in (tmp_path / "outputs/variance/journal.jsonl").read_text().splitlines()]
    assert len(rows) == 6 and all(set(r["best"]) == set(figures) for r in rows)
    assert all(r["best"]["raw/48"] != r["best"]["raw/500"] for r in rows)  # two validation sets
    assert any(r["best"][f"ema/{n}"] != r["best"][f"raw/{n}"] for r in rows for n in (48, 500))  # two sets of weights
    again_lines, again = run_benchmark("variance", "--seeds", "108:111", "--val", "56", "--boot", "200", capsys=capsys)
    def read_back(f):  # the EMA updates are timed afresh each call; everything else comes from the journal
        return {way: {k: v for k, v in row.items() if k != "ema_update_seconds"} for way, row in f.items()}

    assert read_back(again) == read_back(figures)
    assert not any(line.startswith(("unet seed", "hybrid_unet_resdec seed")) for line in again_lines)
