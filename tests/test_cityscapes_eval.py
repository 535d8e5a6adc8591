"""eval --official: labelId PNGs at the ground truth's size, scored by cityscapesscripts."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from hybridunet.cli import main

pytest.importorskip("cityscapesscripts")

FRAMES = {"aachen": ["aachen_000000_000019", "aachen_000001_000019"], "bremen": ["bremen_000000_000019"]}


def official_tree(root: Path, instances: bool = True) -> None:
    """The official layout, val split: photos, labelIds of evaluated and void labels, instanceIds."""
    from cityscapesscripts.helpers.labels import labels

    rng = np.random.default_rng(0)
    ids = np.array([label.id for label in labels if label.id >= 0])
    for city, stems in FRAMES.items():
        for stem in stems:
            label_ids = rng.choice(ids, size=(6, 8)).repeat(8, 0).repeat(8, 1).astype(np.uint8)  # 48 x 64 blocks
            photo = rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)
            images, truth = root / "leftImg8bit" / "val" / city, root / "gtFine" / "val" / city
            images.mkdir(parents=True, exist_ok=True)
            truth.mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(images / f"{stem}_leftImg8bit.png"), photo)
            cv2.imwrite(str(truth / f"{stem}_gtFine_labelIds.png"), label_ids)
            if instances:
                # as the official files: labelId * 1000 + k for classes with instances, the labelId elsewhere
                has = np.isin(label_ids, [label.id for label in labels if label.hasInstances])
                k = np.broadcast_to((np.arange(48)[:, None] // 16).astype(np.uint16), label_ids.shape)
                instance_ids = np.where(has, label_ids.astype(np.uint16) * 1000 + k, label_ids).astype(np.uint16)
                cv2.imwrite(str(truth / f"{stem}_gtFine_instanceIds.png"), instance_ids)


def test_official_evaluation_writes_label_ids_and_our_miou_equals_cityscapesscripts(make_checkpoint, tmp_path, capsys):
    official_tree(tmp_path / "cityscapes")
    checkpoint = make_checkpoint(tmp_path, "unet")
    out = tmp_path / "official"
    assert main(["eval", "--checkpoint", str(checkpoint), "--data", str(tmp_path / "cityscapes"), "--split", "val",
                 "--official", str(out), "--device", "cpu"]) == 0
    printed = capsys.readouterr().out
    result = json.loads(printed.strip().splitlines()[-1])
    predictions = sorted(out.rglob("*_pred_labelIds.png"))
    assert [p.name.removesuffix("_pred_labelIds.png") for p in predictions] == sorted(
        stem for stems in FRAMES.values() for stem in stems)
    for p in predictions:
        written = cv2.imread(str(p), cv2.IMREAD_UNCHANGED)
        assert written.shape == (48, 64) and written.dtype == np.uint8
    assert result["images"] == 3 and result["iiou"] is not None
    assert abs(result["miou_ours"] - result["miou_official"]) < 1e-6
    assert "category" in printed and "iIoU" in printed and "construction" in printed
    assert main(["eval", "--checkpoint", str(checkpoint), "--data", str(tmp_path / "cityscapes"), "--split", "val",
                 "--official", str(out), "--device", "cpu"]) == 2
    assert "predictions exist already" in capsys.readouterr().err


def test_without_instance_ids_there_is_no_iiou_and_without_the_extra_one_line_names_it(make_checkpoint, tmp_path, capsys,
                                                                                       monkeypatch):
    official_tree(tmp_path / "cityscapes", instances=False)
    checkpoint = make_checkpoint(tmp_path, "unet")
    args = ["eval", "--checkpoint", str(checkpoint), "--data", str(tmp_path / "cityscapes"), "--split", "val",
            "--device", "cpu"]
    assert main(args + ["--official", str(tmp_path / "a")]) == 0
    out = capsys.readouterr().out
    assert json.loads(out.strip().splitlines()[-1])["iiou"] is None and "iIoU" not in out
    for name in [m for m in sys.modules if m.startswith("cityscapesscripts")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "cityscapesscripts", None)
    assert main(args + ["--official", str(tmp_path / "b")]) == 2
    err = capsys.readouterr().err
    assert "pip install 'hybridunet[cityscapes]'" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "b").exists()
