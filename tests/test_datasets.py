import hashlib
import warnings
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from cityscapesscripts.helpers import labels as reference
from scipy.ndimage import maximum_filter, minimum_filter

from hybridunet.cli import main
from hybridunet.data import (
    Cityscapes,
    CityscapesPairs,
    DataError,
    SegmentationFolder,
    eval_transform,
    make_loader,
    open_dataset,
    train_transform,
)
from hybridunet.data.synthetic import TRAIN_IDS, render_scene

SIZE = 96


@pytest.fixture(scope="module")
def synth(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("synth")
    assert main(["data", "synth", "--out", str(out), "--train", "12", "--val", "4", "--size", str(SIZE), "--labels"]) == 0
    return out


def _digest(folder: Path) -> str:
    return hashlib.sha256(b"".join(p.read_bytes() for p in sorted(folder.rglob("*.*")))).hexdigest()


def test_synthetic_pairs_decode_to_the_exact_labels(synth):
    data = CityscapesPairs(synth, "train")
    agree = []
    for i in range(len(data)):
        image, mask = data.load(i)
        truth = cv2.imread(str(synth / "train_labels" / f"{i + 1}.png"), cv2.IMREAD_UNCHANGED)
        assert image.shape == (SIZE, SIZE, 3) and mask.shape == truth.shape == (SIZE, SIZE)
        agree.append((mask == truth).mean())
    assert np.mean(agree) >= 0.99 and min(agree) >= 0.98


def test_synthetic_scenes_have_cityscapes_class_balance_at_a_small_size():
    """Every one of the 19 classes, each within 2.5x of its Cityscapes pixel share, void
    near Cityscapes' 11%, and the rare classes in many images. (At 256x256 over 400
    scenes the shares are within 2x: README's `data stats` table.)"""
    from hybridunet.data.stats import CITYSCAPES_SHARE

    counts, images = np.zeros(256), np.zeros(256)
    n = 200
    for i in range(1, n + 1):
        seen = np.bincount(TRAIN_IDS[render_scene(0, "train", i, 128)[1]].ravel(), minlength=256)
        counts, images = counts + seen, images + (seen > 0)
    share = counts / counts.sum()
    ratios = {name: share[k] / CITYSCAPES_SHARE[name] for k, name in enumerate(reference_names())}
    assert all(0.4 <= r <= 2.5 for r in ratios.values()), ratios
    assert 0.08 <= share[255] <= 0.15
    rare = {name: images[k] / n for k, name in enumerate(reference_names())
            if name in ("rider", "motorcycle", "bicycle", "bus", "truck", "train")}
    assert all(v >= (0.03 if name == "train" else 0.10) for name, v in rare.items()), rare


def reference_names() -> list[str]:
    """The 19 evaluated classes in trainId order, from cityscapesscripts."""
    return [label.name for label in sorted((x for x in reference.labels if 0 <= x.trainId < 255),
                                           key=lambda x: x.trainId)]


def test_same_seed_gives_the_same_data(synth, tmp_path):
    main(["data", "synth", "--out", str(tmp_path / "a"), "--train", "12", "--val", "4", "--size", str(SIZE), "--labels"])
    main(["data", "synth", "--out", str(tmp_path / "b"), "--train", "3", "--val", "0", "--size", str(SIZE), "--seed", "1"])
    assert _digest(tmp_path / "a") == _digest(synth)
    assert (tmp_path / "b" / "train" / "1.jpg").read_bytes() != (synth / "train" / "1.jpg").read_bytes()


def test_several_workers_write_the_same_files_as_one(synth, tmp_path):
    assert main(["data", "synth", "--out", str(tmp_path / "w"), "--train", "12", "--val", "4", "--size", str(SIZE),
                 "--labels", "--workers", "3"]) == 0
    assert _digest(tmp_path / "w") == _digest(synth)


def test_the_data_folder_records_the_generator_and_a_test_split_is_held_out(synth, tmp_path):
    from hybridunet.data.synthetic import GENERATOR_VERSION, read_record

    record = read_record(synth)
    assert record["generator_version"] == GENERATOR_VERSION and record["splits"] == {"train": 12, "val": 4}
    assert record["size"] == SIZE and record["seed"] == 0 and record["labels"] is True
    out = tmp_path / "t"
    assert main(["data", "synth", "--out", str(out), "--train", "2", "--val", "2", "--test", "2", "--size", "32"]) == 0
    assert read_record(out)["splits"] == {"train": 2, "val": 2, "test": 2}
    assert (out / "test" / "1.jpg").read_bytes() not in {(out / s / "1.jpg").read_bytes() for s in ("train", "val")}


def test_data_of_another_generator_or_arguments_is_refused_naming_the_record(synth, tmp_path):
    from hybridunet.data.synthetic import ensure_synthetic

    assert ensure_synthetic(tmp_path / "e", train=2, val=1, size=32) is True
    assert ensure_synthetic(tmp_path / "e", train=2, val=1, size=32) is False  # made by this generator: used
    with pytest.raises(DataError, match=r"synthetic\.json: .*size 32.*expected .*size 48.*--overwrite"):
        ensure_synthetic(tmp_path / "e", train=2, val=1, size=48)
    (tmp_path / "e" / "synthetic.json").unlink()  # as data of generator version 1 (no record)
    with pytest.raises(DataError, match=r"no record \(generator version 1\)"):
        ensure_synthetic(tmp_path / "e", train=2, val=1, size=32)


def test_synth_refuses_to_overwrite_without_the_flag(synth, capsys):
    assert main(["data", "synth", "--out", str(synth), "--train", "1", "--val", "0"]) == 2
    err = capsys.readouterr().err
    assert "already holds synthetic data" in err and "generator version" in err
    assert len(list((synth / "train").glob("*.jpg"))) == 12


def test_kaggle_root_may_be_the_parent_or_the_nested_copy(synth, tmp_path):
    nested = tmp_path / "cityscapes_data" / "cityscapes_data"
    nested.mkdir(parents=True)
    (nested / "val").symlink_to(synth / "val", target_is_directory=True)
    for root in (tmp_path, tmp_path / "cityscapes_data", nested):
        assert len(CityscapesPairs(root, "val")) == 4


def _official_tree(root: Path, masks: dict[str, np.ndarray]) -> None:
    for stem, mask in masks.items():
        for kind, suffix, picture in (
            ("leftImg8bit", "leftImg8bit", np.full((*mask.shape, 3), 100, np.uint8)),
            ("gtFine", "gtFine_labelIds", mask),
        ):
            folder = root / kind / "train" / "aachen"
            folder.mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(folder / f"{stem}_{suffix}.png"), picture)


def test_official_layout_maps_every_label_id_as_cityscapesscripts_does(tmp_path):
    label_ids = np.arange(34, dtype=np.uint8).repeat(4).reshape(8, 17)
    _official_tree(tmp_path, {"aachen_000000_000019": label_ids})
    data = open_dataset(tmp_path, "train")
    assert isinstance(data, Cityscapes) and len(data) == 1
    _, mask = data.load(0)
    expected = np.vectorize(lambda i: reference.id2label[int(i)].trainId)(label_ids)
    expected[(expected < 0) | (expected == 255)] = 255
    assert (mask == expected).all()
    image, target = data[0]
    assert image.dtype == torch.float32 and image.shape == (3, 8, 17) and target.dtype == torch.long


def test_label_ids_outside_the_table_fail_naming_the_file(tmp_path):
    _official_tree(tmp_path, {"x_000000_000001": np.array([[7, 40], [200, 8]], np.uint8)})
    with pytest.raises(DataError, match=r"x_000000_000001_gtFine_labelIds\.png: labelIds \[40, 200\] are outside"):
        Cityscapes(tmp_path, "train").load(0)


def test_augmentation_keeps_image_and_mask_aligned():
    rng = np.random.default_rng(0)
    mask = np.kron(rng.integers(0, 19, (8, 8)), np.ones((16, 16), np.int64)).astype(np.uint8)
    palette = rng.integers(0, 256, (19, 3)).astype(np.uint8)
    transform = train_transform(size=128, scale=(0.6, 1.6), hflip=0.5, color_jitter=0.0, normalize="unit")
    changed = 0
    for seed in range(8):
        transform.set_random_seed(seed)
        out = transform(image=palette[mask], mask=mask)
        image = (out["image"].permute(1, 2, 0).numpy() * 255).round()
        target = out["mask"].numpy()
        nearest = np.linalg.norm(image[:, :, None] - palette[None, None].astype(float), axis=-1).argmin(-1)
        # away from block borders, where the bilinear image and the nearest mask legitimately differ
        valid = (target != 255) & (maximum_filter(target, 3) == minimum_filter(target, 3))
        assert (nearest[valid] == target[valid]).mean() > 0.99
        changed += not np.array_equal(target, mask)
    assert changed >= 6  # the augmentation really moved things


def test_items_are_seeded_by_epoch_and_index_not_by_worker(synth):
    data = CityscapesPairs(synth, "train", transform=train_transform(SIZE), seed=3)
    a, b = data[2], data[2]
    torch.testing.assert_close(a, b)
    assert not torch.equal(data[2][0], data[2 + len(data)][0])  # epoch 1 augments differently

    def batches(workers: int) -> list[torch.Tensor]:
        loader = make_loader(data, batch_size=4, shuffle=True, num_workers=workers, seed=3)
        out = []
        for epoch in range(2):
            loader.sampler.set_epoch(epoch)
            out += [x for x, _ in loader]
        return out

    for x, y in zip(batches(0), batches(2)):
        torch.testing.assert_close(x, y)


def test_eval_transform_keeps_masks_exact(synth):
    data = CityscapesPairs(synth, "val", transform=eval_transform(SIZE))
    image, mask = data[0]
    assert image.shape == (3, SIZE, SIZE)
    assert torch.equal(mask, torch.from_numpy(data.load(0)[1]).long())


def test_mask_cache_skips_mask_decoding(synth, monkeypatch):
    data = CityscapesPairs(synth, "val", cache_masks=True)
    first = data.load(1)
    calls = []
    monkeypatch.setattr(data.mapper, "__call__", lambda *a: calls.append(a))
    second = data.load(1)
    assert np.array_equal(first[1], second[1]) and not calls


def test_missing_or_empty_folders_fail_naming_them(tmp_path):
    with pytest.raises(DataError, match=f"data folder {tmp_path / 'nope'} does not exist"):
        CityscapesPairs(tmp_path / "nope")
    (tmp_path / "train").mkdir()
    with pytest.raises(DataError, match=r"no Kaggle pairs \(\*\.jpg\) for split 'train'"):
        CityscapesPairs(tmp_path)
    with pytest.raises(DataError, match=r"leftImg8bit/val is not a folder"):
        Cityscapes(tmp_path, "val")
    with pytest.raises(DataError, match=r"images folder .* holds no images"):
        SegmentationFolder(tmp_path / "train", tmp_path / "train")


def test_a_pair_that_is_not_two_to_one_fails_naming_the_file(tmp_path):
    (tmp_path / "train").mkdir()
    cv2.imwrite(str(tmp_path / "train" / "1.jpg"), np.zeros((64, 100, 3), np.uint8))
    with pytest.raises(DataError, match=r"1\.jpg: a pair must be photo \| mask side by side .* got 100x64"):
        CityscapesPairs(tmp_path).load(0)


def test_truncated_jpeg_fails_or_is_skipped_and_counted(synth, tmp_path):
    (tmp_path / "train").mkdir()
    for i in (1, 2, 3):
        (tmp_path / "train" / f"{i}.jpg").write_bytes((synth / "train" / f"{i}.jpg").read_bytes())
    bad = tmp_path / "train" / "2.jpg"
    bad.write_bytes(bad.read_bytes()[:-500])
    with pytest.raises(DataError, match=r"2\.jpg: truncated or corrupt JPEG"):
        CityscapesPairs(tmp_path)[1]
    data = CityscapesPairs(tmp_path, skip_bad=True)
    with pytest.warns(UserWarning, match=r"skipping unreadable sample \(1 so far\).*2\.jpg"):
        image, mask = data[1]
    assert data.skipped == {1}
    torch.testing.assert_close(image, data[2][0])  # the next readable sample stands in
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        data[1]  # warned once per file
    (tmp_path / "train" / "3.jpg").write_bytes(b"not a jpeg at all\xff\xd9")
    with pytest.raises(DataError, match=r"3\.jpg: not a readable image"):
        CityscapesPairs(tmp_path).load(2)


def test_folder_mode_matches_by_stem_and_lists_mismatches(tmp_path):
    images, masks = tmp_path / "images", tmp_path / "masks"
    images.mkdir(), masks.mkdir()
    for stem in ("a", "b", "c"):
        cv2.imwrite(str(images / f"{stem}.jpg"), np.zeros((8, 8, 3), np.uint8))
    for stem in ("a", "b", "z"):
        cv2.imwrite(str(masks / f"{stem}.png"), np.full((8, 8), 2, np.uint8))
    with pytest.raises(DataError, match=r"1 images in .* without a mask \(e\.g\. \['c'\]\), 1 masks .* \(e\.g\. \['z'\]\)"):
        SegmentationFolder(images, masks)
    (images / "c.jpg").unlink(), (masks / "z.png").unlink()
    assert SegmentationFolder(images, masks, num_classes=3).load(1)[1].max() == 2
    with pytest.raises(DataError, match=r"a\.png: mask values \[2\] are not classes 0\.\.1"):
        SegmentationFolder(images, masks, num_classes=2).load(0)


def test_data_show_writes_a_grid(synth, tmp_path):
    out = tmp_path / "grid.png"
    assert main(["data", "show", "--data", str(synth), "--n", "3", "--out", str(out)]) == 0
    grid = cv2.imread(str(out))
    assert grid is not None and grid.shape[0] > grid.shape[1]  # three rows of image | mask


def test_data_stats_counts_every_class_against_an_independent_count(tiny_data, tmp_path, capsys):
    import json

    import numpy as np

    from hybridunet.cli import main
    from hybridunet.data import CityscapesPairs

    assert main(["data", "stats", "--data", str(tiny_data), "--split", "train", "--out", str(tmp_path / "s.png")]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    report = json.loads(out[-1])
    assert out[0].split() == ["class", "pixels", "images", "Cityscapes", "ratio"] and (tmp_path / "s.png").is_file()
    masks = [CityscapesPairs(tiny_data, "train").load(i)[1] for i in range(16)]  # independent: all pixels at once
    counts = np.bincount(np.concatenate([m.ravel() for m in masks]), minlength=256)
    assert report["images"] == 16
    assert report["pixel_share"]["road"] == pytest.approx(counts[0] / counts.sum())
    assert report["void_share"] == pytest.approx(counts[255] / counts.sum())
    assert report["image_share"]["sky"] == pytest.approx(np.mean([(m == 10).any() for m in masks]))
