"""Synthetic data sets on disk: pairs in the Kaggle layout, and the record of the generator
that wrote them (ROOT/synthetic.json), so data of two generators never mix silently."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np

from hybridunet.data.fingerprint import GENERATOR_JSON
from hybridunet.data.labels import LABELS, label_id_to_train_id
from hybridunet.data.synthetic.rendering import render_scene
from hybridunet.errors import DataError, OutputExistsError

# Bump when scenes change: the data folder's synthetic.json records it, so data of two
# generator versions never mix silently (version 1: commit 47e7fda and before).
GENERATOR_VERSION = 2

LABEL_COLORS = np.zeros((256, 3), np.uint8)
for _label in LABELS:
    if _label.id >= 0:
        LABEL_COLORS[_label.id] = _label.color
TRAIN_IDS = label_id_to_train_id()
JPEG_444 = (cv2.IMWRITE_JPEG_SAMPLING_FACTOR, cv2.IMWRITE_JPEG_SAMPLING_FACTOR_444)


def _write_pairs(out: str, split: str, indices: range, size: int, seed: int, labels: bool, quality: int) -> None:
    folder, label_folder = Path(out) / split, Path(out) / f"{split}_labels"
    for i in indices:
        photo, label_ids = render_scene(seed, split, i, size)
        pair = np.concatenate([photo, LABEL_COLORS[label_ids]], axis=1)
        cv2.imwrite(str(folder / f"{i}.jpg"), pair[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, quality, *JPEG_444])
        if labels:
            cv2.imwrite(str(label_folder / f"{i}.png"), TRAIN_IDS[label_ids])


def write_split(
    out: str | Path, split: str, count: int, size: int = 256, seed: int = 0, labels: bool = False, quality: int = 95,
    workers: int = 1,
) -> Path:
    """Write `count` pairs as ``out/split/{1..count}.jpg`` (photo | colour mask), and with
    `labels` the exact trainId masks as ``out/{split}_labels/{i}.png``. With `workers`
    processes the files are the same: each scene is a function of (seed, split, index).

    JPEGs use full-resolution chroma (4:4:4): with the common 4:2:0 subsampling, colour
    bleeds across every mask boundary and about 2.5% of mask pixels change class.
    """
    folder = Path(out) / split
    folder.mkdir(parents=True, exist_ok=True)
    if labels:
        (Path(out) / f"{split}_labels").mkdir(parents=True, exist_ok=True)
    if workers < 1:
        raise ValueError(f"workers must be a positive integer, got {workers!r}")
    workers = min(workers, count)
    if workers <= 1:
        _write_pairs(str(out), split, range(1, count + 1), size, seed, labels, quality)
        return folder
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    # fork: the workers need only numpy and OpenCV, already imported (spawn would import torch again)
    methods = multiprocessing.get_all_start_methods()
    context = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
    chunks = [range(1 + k, count + 1, workers) for k in range(workers)]
    with ProcessPoolExecutor(workers, mp_context=context) as pool:
        for done in [pool.submit(_write_pairs, str(out), split, c, size, seed, labels, quality) for c in chunks]:
            done.result()
    return folder


def splits_of(train: int, val: int, test: int = 0) -> dict[str, int]:
    """The pairs per split a set holds (a test split only where asked for)."""
    return {"train": train, "val": val, **({"test": test} if test else {})}


def generator_record(seed: int, size: int, labels: bool, splits: dict[str, int], commit: str | None = None) -> dict:
    """What ROOT/synthetic.json holds: the generator's version (or, for a set written by an
    earlier commit's generator, that commit) and its arguments."""
    if commit is not None:
        return {"generator": "hybridunet.data.synthetic", "commit": commit, "seed": seed, "size": size,
                "splits": splits}
    return {"generator": "hybridunet.data.synthetic", "generator_version": GENERATOR_VERSION, "seed": seed,
            "size": size, "labels": labels, "splits": splits}


def write_record(root: str | Path, record: dict) -> Path:
    """Write ROOT/synthetic.json: every writer of a synthetic set goes through here."""
    path = Path(root) / GENERATOR_JSON
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=2) + "\n")
    return path


def read_record(root: str | Path) -> dict | None:
    """ROOT/synthetic.json, or None where the data has none (not synthetic, or older than version 2)."""
    path = Path(root) / GENERATOR_JSON
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise DataError(f"{path} is unreadable ({err}); regenerate the set with --overwrite") from None


def synthesize(
    out: str | Path, train: int = 200, val: int = 50, size: int = 256, seed: int = 0, labels: bool = False,
    overwrite: bool = False, test: int = 0, workers: int = 1,
) -> Path:
    """Write a synthetic data set in the Kaggle layout (``out/train``, ``out/val`` and, with
    `test`, a held-out ``out/test``), recording the generator version and arguments in
    ``out/synthetic.json`` so data of another generator never mixes in silently.

    Data already in the splits' folders is replaced only with `overwrite`."""
    out = Path(out)
    record_path = out / GENERATOR_JSON
    splits = splits_of(train, val, test)
    existing = [p for split in ("train", "val", "test")
                for p in [*(out / split).glob("*.jpg"), *(out / f"{split}_labels").glob("*.png")]]
    if (existing or record_path.exists()) and not overwrite:
        raise OutputExistsError(f"{out} already holds synthetic data ({len(existing)} files; {_describe(out)}); "
                                "pass --overwrite to replace it")
    for path in existing:
        path.unlink()
    record_path.unlink(missing_ok=True)
    for split, count in splits.items():
        write_split(out, split, count, size=size, seed=seed, labels=labels, workers=workers)
    write_record(out, generator_record(seed, size, labels, splits))
    return out


def ensure_synthetic(out: str | Path, train: int = 200, val: int = 50, size: int = 256, seed: int = 0,
                     test: int = 0, workers: int = 1) -> bool:
    """Generate the set if `out` holds none; if it holds one, check that this generator
    version with these arguments made it. True when it generated."""
    out = Path(out)
    if not any((out / "train").glob("*.jpg")):
        synthesize(out, train=train, val=val, size=size, seed=seed, test=test, workers=workers)
        return True
    wanted = generator_record(seed, size, False, splits_of(train, val, test))
    found = read_record(out)
    keys = ("generator_version", "seed", "size", "splits")
    if found is None or any(found.get(k) != wanted[k] for k in keys):
        got = "no record (generator version 1)" if found is None else ", ".join(f"{k} {found.get(k)}" for k in keys)
        raise DataError(f"{out / GENERATOR_JSON}: {got}; expected {', '.join(f'{k} {wanted[k]}' for k in keys)}. "
                        f"Regenerate it: hybridunet data synth --out {out} --overwrite "
                        f"--train {train} --val {val}{f' --test {test}' if test else ''} --size {size} --seed {seed}")
    return False


def _describe(root: Path) -> str:
    try:
        r = read_record(root)
    except DataError as err:
        return str(err)
    if r is None:
        return f"no {GENERATOR_JSON}: generator version 1 or not synthetic"
    return (f"generator version {r.get('generator_version')}, seed {r.get('seed')}, size {r.get('size')}, "
            f"splits {r.get('splits')}")
