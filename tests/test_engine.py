import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from hybridunet.checkpoint import load_model, read_checkpoint
from hybridunet.cli import main
from hybridunet.engine import NonFiniteLossError, fit


@pytest.fixture
def data(tiny_data: Path) -> Path:
    return tiny_data


def last_json_line(capsys) -> dict:
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def test_tiny_run_overfits_four_images(tiny_config, data, tmp_path):
    config = tiny_config(
        data, tmp_path, "data.limit_train=4", "data.limit_val=4", "data.val_split=train", "data.size=48",
        "data.augment.scale=[1,1]", "data.augment.hflip=0", "data.augment.color_jitter=0",
        "model.widths=[16,32,64]", "train.epochs=120", "train.batch_size=2", "optim.lr=0.005", "sched.name=none",
    )
    result = fit(config)
    assert result["dice"] >= 0.85, result  # 0.89 on an AMD EPYC; an untrained model scores about 0.05
    assert result["checkpoint"] == str(tmp_path / "best.safetensors")


def test_train_cli_prints_metrics_json_and_eval_reproduces_it(tiny_yaml, data, tmp_path, capsys):
    assert main(["train", "--config", str(tiny_yaml), f"data.root={data}", f"train.out_dir={tmp_path}"]) == 0
    trained = last_json_line(capsys)
    assert set(trained) == {"dice", "miou", "pixel_acc", "loss", "per_class_dice", "soft_dice_study", "checkpoint",
                            "cost"}
    assert len(trained["per_class_dice"]) == 19
    cost = trained.pop("cost")
    from hybridunet.config import load_config
    from hybridunet.models import create_model
    from hybridunet.models.summary import count_flops, count_params

    model = create_model("unet", widths=load_config(tiny_yaml).model.widths)
    assert cost["params_m"] == count_params(model) / 1e6 and cost["gflops"] == count_flops(model, (3, 64, 64)) / 1e9
    assert cost["train_images_per_s"] > 0 and cost["inference_images_per_s"] > 0
    assert main(["eval", "--checkpoint", trained.pop("checkpoint")]) == 0
    assert last_json_line(capsys) == trained


def test_resume_after_a_crash_equals_an_uninterrupted_run(crash_after, tiny_config, data, tmp_path):
    """With an EMA of the weights on: the average resumes too (its tensors in last.safetensors)."""
    overrides = ("train.epochs=3", "model.name=hybrid_unet", "model.bottleneck_kwargs={heads: 4}", "optim.name=adam",
                 "train.ema.decay=0.9")
    whole = fit(tiny_config(data, tmp_path / "whole", *overrides))
    with pytest.raises(RuntimeError, match="simulated crash"):
        fit(tiny_config(data, tmp_path / "split", *overrides), callbacks=[crash_after(epoch=1)])
    assert read_checkpoint(tmp_path / "split" / "last.safetensors")[1]["epoch"] == 1
    resumed = fit(tiny_config(data, tmp_path / "split", *overrides), resume=True)
    assert resumed.pop("checkpoint") != whole.pop("checkpoint")
    assert resumed.pop("cost").keys() == whole.pop("cost").keys()  # speeds are measured, not reproduced
    assert resumed == whole
    a, _ = read_checkpoint(tmp_path / "whole" / "last.safetensors")
    b, meta = read_checkpoint(tmp_path / "split" / "last.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert any(k.startswith("ema.") for k in a)
    assert [h["epoch"] for h in meta["history"]] == [0, 1, 2]


def test_the_ema_is_the_hand_computed_average_of_the_steps_and_is_what_is_saved_and_scored(tiny_config, data, tmp_path,
                                                                                           monkeypatch):
    """decay d with timm's warm-up: after step k the average is d_k ema + (1 - d_k) w_k, with
    d_k = min(d, 1 - k^(-2/3)) (0 at the first step: a copy); the best checkpoint holds it,
    and the run's scores are its scores."""
    from hybridunet.engine import evaluate_checkpoint, training

    steps, real = [], training.train_epoch

    def spy(run, *args, after_step=None, **kwargs):
        if not steps:
            steps.append({k: v.detach().clone() for k, v in run.model.state_dict().items()})

        def record(model):
            steps.append({k: v.detach().clone() for k, v in model.state_dict().items()})
            after_step(model)

        return real(run, *args, after_step=record, **kwargs)

    monkeypatch.setattr(training, "train_epoch", spy)
    decay = 0.7
    config = tiny_config(data, tmp_path, "train.epochs=1", "data.limit_train=6", "train.batch_size=2",
                         f"train.ema.decay={decay}")
    result = fit(config)
    assert len(steps) == 4  # the initial weights and 3 steps
    expected = dict(steps[0])
    for k, weights in enumerate(steps[1:], 1):
        d = min(decay, 1 - k ** (-2 / 3)) if k > 1 else 0.0
        expected = {name: d * expected[name] + (1 - d) * w if w.is_floating_point() else w
                    for name, w in weights.items()}
    saved, _ = read_checkpoint(tmp_path / "best.safetensors")
    for name, value in expected.items():
        torch.testing.assert_close(saved[f"model.{name}"], value, rtol=1e-5, atol=1e-6)
    assert any(not torch.equal(saved[f"model.{k}"], w) for k, w in steps[-1].items() if w.is_floating_point())
    rescored = evaluate_checkpoint(result["checkpoint"])
    assert rescored["dice"] == pytest.approx(result["dice"], abs=1e-6)


def test_resume_refuses_a_changed_config(tiny_config, data, tmp_path):
    fit(tiny_config(data, tmp_path, "train.epochs=1"))
    with pytest.raises(ValueError, match=r"different config: optim\.lr: 0\.003 -> 0\.1"):
        fit(tiny_config(data, tmp_path, "train.epochs=1", "optim.lr=0.1"), resume=True)


def test_an_existing_output_folder_is_never_overwritten_silently(tiny_yaml, data, tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("mine")
    assert main(["train", "--config", str(tiny_yaml), f"data.root={data}", f"train.out_dir={tmp_path}"]) == 2
    assert "already exists; pass --overwrite" in capsys.readouterr().err
    assert main(["train", "--config", str(tiny_yaml), f"data.root={data}", f"train.out_dir={tmp_path}", "--overwrite"]) == 0
    assert (tmp_path / "notes.txt").read_text() == "mine" and (tmp_path / "best.safetensors").is_file()


def test_predict_handles_any_image_size(tiny_config, data, tmp_path, capsys):
    fit(tiny_config(data, tmp_path / "run", "train.epochs=1"))
    images = tmp_path / "in"
    images.mkdir()
    cv2.imwrite(str(images / "odd.png"), np.random.default_rng(0).integers(0, 255, (250, 333, 3), dtype=np.uint8))
    checkpoint = str(tmp_path / "run" / "best.safetensors")
    assert main(["predict", "--checkpoint", checkpoint, "--input", str(images), "--out", str(tmp_path / "out")]) == 0
    for suffix in ("mask", "overlay"):
        assert cv2.imread(str(tmp_path / "out" / f"odd_{suffix}.png")).shape == (250, 333, 3)
    assert main(["predict", "--checkpoint", checkpoint, "--input", str(images / "odd.png"),
                 "--out", str(tmp_path / "out2"), "--size", "64"]) == 0
    assert main(["predict", "--checkpoint", checkpoint, "--input", str(images), "--out", str(tmp_path / "out")]) == 2
    assert "pass --overwrite" in capsys.readouterr().err


def test_checkpoint_rebuilds_its_model_and_checks_num_classes(tiny_config, data, tmp_path):
    fit(tiny_config(data, tmp_path, "train.epochs=1", "model.name=hybrid_unet", "model.bottleneck=aspp"))
    model, meta = load_model(tmp_path / "best.safetensors")
    assert meta["model"]["bottleneck"] == "aspp" and meta["class_names"][0] == "road"
    assert not any(p.name.endswith(".tmp") for p in tmp_path.iterdir())
    with pytest.raises(ValueError, match=r"num_classes=5 does not match .* trained for 19 classes"):
        load_model(tmp_path / "best.safetensors", num_classes=5)


def test_non_finite_loss_stops_with_epoch_step_and_a_hint(tiny_config, data, tmp_path, monkeypatch):
    from hybridunet.engine import training as fit_module

    class NaNLoss(torch.nn.Module):
        def forward(self, logits, target):
            return logits.mean() * float("nan")

    monkeypatch.setattr(fit_module, "build_loss", lambda config, class_weights=None: NaNLoss())
    with pytest.raises(NonFiniteLossError, match=r"loss is nan at epoch 1, step 1: lower the learning rate \(optim\.lr=0\.003\)"):
        fit(tiny_config(data, tmp_path))


def test_a_run_failing_on_bad_data_removes_only_a_folder_it_created(tiny_config, tiny_data, tmp_path):
    import shutil

    from hybridunet.errors import DataError

    data = tmp_path / "data"
    shutil.copytree(tiny_data, data)
    (data / "train" / "3.jpg").write_bytes((data / "train" / "3.jpg").read_bytes()[:500])  # truncated
    with pytest.raises(DataError, match=r"3\.jpg: truncated or corrupt JPEG"):
        fit(tiny_config(data, tmp_path / "new"))
    assert not (tmp_path / "new").exists()  # the rerun needs no --overwrite
    kept = tmp_path / "kept"
    kept.mkdir()
    (kept / "notes.txt").write_text("mine")
    with pytest.raises(DataError):
        fit(tiny_config(data, kept, "train.overwrite=true"))
    assert (kept / "notes.txt").read_text() == "mine"


@pytest.mark.parametrize("loss", ["bce", "dice"])
def test_a_bf16_run_on_the_cpu_stays_finite_and_keeps_fp32_state(tiny_config, data, tmp_path, loss):
    config = tiny_config(data, tmp_path, "train.amp=bf16", "train.device=cpu", "train.epochs=1", "data.limit_train=8",
                  "model.name=hybrid_unet", "model.bottleneck_kwargs={heads: 4}", f"loss.name={loss}")
    result = fit(config)
    assert all(np.isfinite(result[k]) for k in ("dice", "miou", "loss", "soft_dice_study"))
    tensors, meta = read_checkpoint(tmp_path / "best.safetensors")
    assert meta["precision"] == {"amp": "bf16", "channels_last": True}  # auto: channels_last with bf16
    assert {t.dtype for t in tensors.values() if t.is_floating_point()} == {torch.float32}  # weights, BN stats


def test_auto_precision_follows_the_device():
    from hybridunet.device import cpu_has_fast_bf16
    from hybridunet.engine import resolve_precision
    from hybridunet.errors import ConfigError

    cpu = torch.device("cpu")
    assert resolve_precision(cpu).amp == ("bf16" if cpu_has_fast_bf16() else "none")
    assert resolve_precision(cpu, "none", "auto").channels_last is False
    with pytest.raises(ConfigError, match="train.amp=fp16 needs a CUDA device"):
        resolve_precision(cpu, "fp16")
    assert resolve_precision(cpu, "fp16", strict=False).amp == resolve_precision(cpu).amp  # a stored run's mode


def test_folder_data_trains_with_its_class_names_and_refuses_out_of_range_masks(tiny_yaml, tmp_path, capsys):
    rng = np.random.default_rng(0)
    root = tmp_path / "folder"
    for split, n in (("train", 6), ("val", 3)):
        (root / split / "images").mkdir(parents=True)
        (root / split / "masks").mkdir(parents=True)
        for i in range(n):
            mask = np.zeros((40, 48), np.uint8)
            mask[:, 24:] = 1
            mask[30:, :] = 2
            mask[:4] = 255
            image = (mask[..., None] * 60 + rng.integers(0, 40, (40, 48, 3))).astype(np.uint8)
            cv2.imwrite(str(root / split / "images" / f"s{i}.jpg"), image)
            cv2.imwrite(str(root / split / "masks" / f"s{i}.png"), mask)
    (root / "classes.txt").write_text("sky\nwall\nroad\n")
    common = ["train", "--config", str(tiny_yaml), f"data.root={root}", "data.format=folder", "model.num_classes=3",
              "data.size=32", "train.epochs=1", "loss.class_weights=inverse"]
    assert main([*common, f"train.out_dir={tmp_path / 'run'}"]) == 0
    result = last_json_line(capsys)
    assert set(result["per_class_dice"]) == {"sky", "wall", "road"}
    weights = json.loads((tmp_path / "run" / "class_weights.json").read_text())
    assert weights["class_names"] == ["sky", "wall", "road"] and len(weights["weights"]) == 3
    assert read_checkpoint(tmp_path / "run" / "best.safetensors")[1]["class_weights"] == weights["weights"]
    bad = root / "train" / "masks" / "s0.png"
    cv2.imwrite(str(bad), np.full((40, 48), 7, np.uint8))
    assert main([*common, "loss.class_weights=none", f"train.out_dir={tmp_path / 'bad'}"]) == 2
    err = capsys.readouterr().err
    assert "s0.png: mask values [7] are not classes 0..2" in err


def test_ohem_and_computed_class_weights_train(tiny_config, data, tmp_path):
    result = fit(tiny_config(data, tmp_path, "train.epochs=1", "loss.name=ohem_ce", "loss.min_kept=1000",
                      "loss.class_weights=median_frequency"))
    assert np.isfinite(result["loss"])
    weights = json.loads((tmp_path / "class_weights.json").read_text())["weights"]
    assert len(weights) == 19 and max(weights) <= 10


def test_train_steps_end_the_last_epoch_part_way_and_the_schedule_spans_them(tiny_config, data, tmp_path):
    """6 images in batches of 2: 3 steps an epoch; 5 steps are 2 epochs, the second of 2 steps,
    and the cosine schedule reaches its end at the fifth step."""
    import math

    config = tiny_config(data, tmp_path, "data.limit_train=6", "train.batch_size=2", "train.steps=5",
                         "sched.name=cosine", "sched.warmup_epochs=0", "optim.lr=0.01")
    fit(config)
    _, meta = read_checkpoint(tmp_path / "last.safetensors")
    assert [h["epoch"] for h in meta["history"]] == [0, 1]
    assert meta["train_state"]["scheduler"]["last_epoch"] == 5  # optimiser steps taken
    assert meta["history"][0]["lr"] == pytest.approx(0.01 * 0.5 * (1 + math.cos(math.pi * 3 / 5)))
    assert meta["history"][1]["lr"] == pytest.approx(0.0, abs=1e-12)


def test_looks_spread_validation_evenly_over_the_steps_and_a_resume_replays_to_its_place(crash_after, tiny_config,
                                                                                          data, tmp_path):
    """7 steps, 2 looks, 3 steps a pass: validations after steps 4 (round(7/2)) and 7, the
    stream crossing a pass; a crash after the first look resumes to exactly the same run."""
    overrides = ("data.limit_train=6", "train.batch_size=2", "train.steps=7", "train.looks=2")
    whole = fit(tiny_config(data, tmp_path / "whole", *overrides))
    _, meta = read_checkpoint(tmp_path / "whole" / "last.safetensors")
    assert [h["epoch"] for h in meta["history"]] == [0, 1]
    assert meta["train_state"]["scheduler"]["last_epoch"] == 7
    with pytest.raises(RuntimeError, match="simulated crash"):
        fit(tiny_config(data, tmp_path / "split", *overrides), callbacks=[crash_after(epoch=0)])
    resumed = fit(tiny_config(data, tmp_path / "split", *overrides), resume=True)
    resumed.pop("cost"), whole.pop("cost"), resumed.pop("checkpoint"), whole.pop("checkpoint")
    assert resumed == whole
    a, _ = read_checkpoint(tmp_path / "whole" / "last.safetensors")
    b, _ = read_checkpoint(tmp_path / "split" / "last.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)
