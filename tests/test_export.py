"""ONNX export: parity with PyTorch in onnxruntime at any size, the sidecar, predict through it."""

from __future__ import annotations

import json
import sys

import cv2
import numpy as np
import pytest
import torch

from hybridunet.checkpoint import load_model
from hybridunet.cli import main

pytest.importorskip("onnxruntime")

SIZES = [(2, 64, 64), (1, 61, 93), (3, 96, 40)]  # 61x93: not a multiple of any model's stride


@pytest.mark.parametrize("name", ["unet", "hybrid_unet", "hybrid_unet_resdec", "smp_unet"])
def test_onnx_export_matches_pytorch_at_any_size(make_checkpoint, tmp_path, name, capsys):
    import onnxruntime as ort

    checkpoint = make_checkpoint(tmp_path, name)
    assert main(["export", "--checkpoint", str(checkpoint), "--format", "onnx"]) == 0
    onnx_path = checkpoint.with_suffix(".onnx")
    assert f"wrote {onnx_path}" in capsys.readouterr().out
    model, _ = load_model(checkpoint)
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    for n, h, w in SIZES:
        x = torch.randn(n, 3, h, w, generator=torch.Generator().manual_seed(h))
        with torch.no_grad():
            expected = model.eval()(x).numpy()
        got = session.run(["logits"], {"image": x.numpy()})[0]
        assert got.shape == (n, 5, h, w)
        np.testing.assert_allclose(got, expected, atol=1e-4, rtol=1e-4)


def test_the_sidecar_says_what_prediction_needs_and_predict_runs_the_onnx_file(make_checkpoint, tmp_path, capsys):
    checkpoint = make_checkpoint(tmp_path, "unet", normalize="unit")
    out = tmp_path / "exported" / "model.onnx"
    assert main(["export", "--checkpoint", str(checkpoint), "--out", str(out), "--opset", "18"]) == 0
    sidecar = json.loads((out.parent / "model.onnx.json").read_text())
    assert sidecar["opset"] == 18 and sidecar["class_names"] == [f"c{i}" for i in range(5)]
    assert sidecar["input"]["normalize"] == {"name": "unit", "mean": [0.0] * 3, "std": [1.0] * 3,
                                             "max_pixel_value": 255.0}
    assert sidecar["input_size"] == [64, 64] and sidecar["dynamic_axes"]["image"] == {"0": "batch", "2": "height",
                                                                                      "3": "width"}
    images = tmp_path / "images"
    images.mkdir()
    rng = np.random.default_rng(0)
    for i, shape in enumerate([(50, 70, 3), (64, 64, 3)]):
        cv2.imwrite(str(images / f"{i}.png"), rng.integers(0, 256, shape, dtype=np.uint8))
    # one pipeline: the same masks whole, resized and tiled
    for how, extra in (("whole", []), ("resized", ["--size", "48"]), ("tiled", ["--tile", "32", "--overlap", "0.5"])):
        for flag, path, folder in (("--checkpoint", checkpoint, "torch"), ("--model", out, "onnx")):
            assert main(["predict", flag, str(path), "--input", str(images), "--out", str(tmp_path / how / folder),
                         "--device", "cpu", *extra]) == 0
        for i in range(2):
            torch_mask = cv2.imread(str(tmp_path / how / "torch" / f"{i}_mask.png"))
            onnx_mask = cv2.imread(str(tmp_path / how / "onnx" / f"{i}_mask.png"))
            assert (torch_mask == onnx_mask).all(-1).mean() > 0.999, how


def test_export_refuses_bad_values_and_existing_files_naming_them(make_checkpoint, tmp_path, capsys):
    checkpoint = make_checkpoint(tmp_path, "unet")
    assert main(["export", "--checkpoint", str(checkpoint), "--opset", "3"]) == 2
    assert "--opset 3: expected an ONNX opset" in capsys.readouterr().err
    assert main(["export", "--checkpoint", str(checkpoint), "--out", str(tmp_path / "m.pt")]) == 2
    assert "expected a .onnx file name" in capsys.readouterr().err
    assert main(["export", "--checkpoint", str(checkpoint)]) == 0
    capsys.readouterr()
    assert main(["export", "--checkpoint", str(checkpoint)]) == 2
    assert "unet.onnx exists; pass --overwrite" in capsys.readouterr().err


def test_running_an_onnx_file_without_onnxruntime_says_how_to_install_it(tmp_path, monkeypatch):
    from hybridunet.errors import UsageError
    from hybridunet.prediction import OnnxPredictor

    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    with pytest.raises(UsageError, match=r"pip install onnxruntime"):
        OnnxPredictor(tmp_path / "model.onnx")


def test_tiled_prediction_blends_tiles_and_equals_whole_image_prediction_within_one_tile(make_checkpoint, tmp_path):
    from hybridunet.engine import predict
    from hybridunet.prediction import blend_window, tiled_logits

    checkpoint = make_checkpoint(tmp_path, "unet")
    model, _ = load_model(checkpoint)
    image = np.random.default_rng(1).integers(0, 256, (64, 96, 3), dtype=np.uint8)
    whole = predict(model, image)
    assert np.array_equal(predict(model, image, tile=96), whole)  # one tile covers it: no padding, no blend
    x = torch.randn(1, 3, 80, 112, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        run = model
        seen = []
        tiled = tiled_logits(lambda w: (seen.append(w.shape[-2:]), run(w))[1], x, 64, 0.5, "linear")
        # the same blend computed by hand: every window's logits weighed by its window, normalised
        expected, weight = torch.zeros(1, 5, 80, 112), torch.zeros(80, 112)
        for top in (0, 16):
            for left in (0, 32, 48):
                window = x[..., top:top + 64, left:left + 64]
                expected[..., top:top + 64, left:left + 64] += run(window) * blend_window(64, 64, "linear")
                weight[top:top + 64, left:left + 64] += blend_window(64, 64, "linear")
    assert seen == [(64, 64)] * 6
    torch.testing.assert_close(tiled, expected / weight)
    window = blend_window(33, 33)
    assert window[16, 16] == 1 and window.min() > 0 and window[0, 16] < window[8, 16] < window[16, 16]


def test_predict_cli_tiles_and_refuses_bad_tiling_naming_the_flag(make_checkpoint, tmp_path, capsys):
    checkpoint = make_checkpoint(tmp_path, "unet")
    images = tmp_path / "images"
    images.mkdir()
    cv2.imwrite(str(images / "frame.png"), np.random.default_rng(0).integers(0, 256, (100, 200, 3), dtype=np.uint8))
    base = ["predict", "--checkpoint", str(checkpoint), "--input", str(images), "--out", str(tmp_path / "out")]
    assert main(base + ["--tile", "8"]) == 2
    assert "--tile 8: must be at least the model's stride (16)" in capsys.readouterr().err
    assert main(base + ["--tile", "64", "--overlap", "1"]) == 2
    assert "--overlap 1.0: expected a fraction in [0, 1)" in capsys.readouterr().err
    assert not (tmp_path / "out" / "frame_mask.png").exists()
    assert main(base + ["--tile", "32", "--overlap", "0.5"]) == 0  # resized to the training size (64), 3x3 tiles
    mask = cv2.imread(str(tmp_path / "out" / "frame_mask.png"))
    assert mask.shape == (100, 200, 3)
