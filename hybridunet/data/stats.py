"""Class statistics of a data set (pixel shares, images that hold each class) and the class
weights the field derives from them."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from hybridunet.data.base import SegmentationDataset
from hybridunet.data.labels import IGNORE_INDEX
from hybridunet.errors import ConfigError

WEIGHTINGS = ("inverse", "sqrt_inverse", "median_frequency")


@dataclass
class ClassStats:
    class_names: list[str]
    pixels: np.ndarray  # labelled pixels per class
    images_with: np.ndarray  # images in which each class occurs
    ignored: int  # pixels of the ignore label (void)
    images: int

    @property
    def total(self) -> int:
        return int(self.pixels.sum()) + self.ignored

    def pixel_share(self) -> np.ndarray:
        """Each class's share of all pixels, void included (as Cityscapes' table counts them)."""
        return self.pixels / max(self.total, 1)

    def image_share(self) -> np.ndarray:
        return self.images_with / max(self.images, 1)

    def as_dict(self) -> dict:
        return {"images": self.images, "void_share": self.ignored / max(self.total, 1),
                "pixel_share": dict(zip(self.class_names, self.pixel_share().tolist())),
                "image_share": dict(zip(self.class_names, self.image_share().tolist()))}


def class_stats(dataset: SegmentationDataset, class_names: Sequence[str], ignore_index: int = IGNORE_INDEX,
                progress: bool = True) -> ClassStats:
    """Count every mask of `dataset` once (no augmentation), with a progress bar."""
    from tqdm import tqdm

    n = len(class_names)
    pixels, images_with, ignored = np.zeros(n, np.int64), np.zeros(n, np.int64), 0
    for i in tqdm(range(len(dataset)), desc="class statistics", disable=not progress, file=sys.stderr, leave=False):
        _, mask = dataset.load(i)
        counts = np.bincount(mask.ravel(), minlength=256)
        pixels += counts[:n]
        images_with += counts[:n] > 0
        ignored += int(counts[ignore_index])
    return ClassStats(list(class_names), pixels, images_with, ignored, len(dataset))


def class_weights(stats: ClassStats, method: str, max_weight: float = 10.0) -> list[float]:
    """Per-class loss weights from training statistics: `inverse` (1/f), `sqrt_inverse`
    (1/sqrt f) or `median_frequency` (median f / f, Eigen & Fergus), where f is a class's
    share of the labelled pixels; normalised to mean 1 over the classes present, then
    clipped at `max_weight`. A class absent from the training split gets 1."""
    if method not in WEIGHTINGS:
        raise ConfigError(f"loss.class_weights={method!r}: expected none, {', '.join(WEIGHTINGS)} or a list")
    freq = stats.pixels / max(int(stats.pixels.sum()), 1)
    present = freq > 0
    raw = np.ones_like(freq)
    if method == "inverse":
        raw[present] = 1 / freq[present]
    elif method == "sqrt_inverse":
        raw[present] = 1 / np.sqrt(freq[present])
    else:
        raw[present] = np.median(freq[present]) / freq[present]
    raw[present] /= raw[present].mean()
    return np.minimum(raw, max_weight).round(6).tolist()


def cached_class_weights(dataset: SegmentationDataset, class_names: Sequence[str], method: str,
                         max_weight: float, folder: Path) -> list[float]:
    """`class_weights` computed once per run and kept in the run folder (data sets may be
    read-only), so a resumed run uses the same weights."""
    cache = Path(folder) / "class_weights.json"
    key = {"method": method, "max_weight": max_weight, "samples": len(dataset)}
    if cache.is_file():
        stored = json.loads(cache.read_text())
        if stored.get("key") == key:
            return stored["weights"]
    weights = class_weights(class_stats(dataset, class_names), method, max_weight)
    cache.write_text(json.dumps({"key": key, "class_names": list(class_names), "weights": weights}, indent=2))
    return weights


# Cityscapes' fine training set: each trainId's share of all pixels (void: 11.5%), from the
# inverse-frequency class weights of public Cityscapes training code (w = 1 / share).
CITYSCAPES_SHARE = {
    "road": 0.3264, "sidewalk": 0.0539, "building": 0.2021, "wall": 0.0058, "fence": 0.0078, "pole": 0.0109,
    "traffic light": 0.0018, "traffic sign": 0.0049, "vegetation": 0.1410, "terrain": 0.0102, "sky": 0.0356,
    "person": 0.0108, "rider": 0.0012, "car": 0.0619, "truck": 0.0024, "bus": 0.0021, "train": 0.0021,
    "motorcycle": 0.0009, "bicycle": 0.0037,
}
CITYSCAPES_VOID = 0.115


def stats_table(stats: ClassStats, reference: dict[str, float] | None = None) -> str:
    """Per class: pixel share, share of images holding it, and the reference share with the ratio."""
    head = f"{'class':<16} {'pixels':>8} {'images':>7}" + (f" {'Cityscapes':>10} {'ratio':>6}" if reference else "")
    lines = [head]
    for name, pixel, image in zip(stats.class_names, stats.pixel_share(), stats.image_share()):
        row = f"{name:<16} {100 * pixel:7.2f}% {100 * image:6.1f}%"
        if reference:
            ref = reference.get(name)
            row += f" {100 * ref:9.2f}% {pixel / ref:6.2f}" if ref else f" {'-':>10} {'-':>6}"
        lines.append(row)
    void = stats.ignored / max(stats.total, 1)
    lines.append(f"{'void (ignored)':<16} {100 * void:7.2f}% {'':>7}"
                 + (f" {100 * CITYSCAPES_VOID:9.2f}% {void / CITYSCAPES_VOID:6.2f}" if reference else ""))
    return "\n".join(lines)


def stats_figure(stats: ClassStats, reference: dict[str, float] | None = None):
    """Horizontal bars of each class's pixel share (log scale), the reference beside it."""
    from matplotlib.figure import Figure

    n = len(stats.class_names)
    fig = Figure(figsize=(8, 0.28 * n + 1.2), dpi=80)
    fig.subplots_adjust(left=0.18, right=0.8, top=0.93, bottom=0.12)  # the legend goes right of the bars
    ax = fig.subplots()
    y = np.arange(n)
    shares = 100 * stats.pixel_share()
    ax.barh(y - 0.2 if reference else y, np.maximum(shares, 1e-3), height=0.4 if reference else 0.7, label="this data")
    if reference:
        ax.barh(y + 0.2, [100 * reference.get(c, 0) for c in stats.class_names], height=0.4, label="Cityscapes")
    ax.set_xscale("log")
    ax.set_yticks(y, stats.class_names, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("share of all pixels (%)")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
    ax.set_title(f"{stats.images} images", fontsize=9)
    return fig
