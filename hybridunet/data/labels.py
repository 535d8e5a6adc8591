"""The Cityscapes label table and fast colour -> class mapping for colour-coded masks.

The table mirrors ``cityscapesscripts.helpers.labels`` (a test checks it entry by entry),
kept here so the library does not need that package at run time.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import NamedTuple, Sequence

import numpy as np

IGNORE_INDEX = 255


class Label(NamedTuple):
    name: str
    id: int  # labelId as stored in *_gtFine_labelIds.png
    train_id: int  # 0..18 evaluated, 255 ignored
    category: str
    color: tuple[int, int, int]


LABELS: tuple[Label, ...] = (
    Label("unlabeled", 0, 255, "void", (0, 0, 0)),
    Label("ego vehicle", 1, 255, "void", (0, 0, 0)),
    Label("rectification border", 2, 255, "void", (0, 0, 0)),
    Label("out of roi", 3, 255, "void", (0, 0, 0)),
    Label("static", 4, 255, "void", (0, 0, 0)),
    Label("dynamic", 5, 255, "void", (111, 74, 0)),
    Label("ground", 6, 255, "void", (81, 0, 81)),
    Label("road", 7, 0, "flat", (128, 64, 128)),
    Label("sidewalk", 8, 1, "flat", (244, 35, 232)),
    Label("parking", 9, 255, "flat", (250, 170, 160)),
    Label("rail track", 10, 255, "flat", (230, 150, 140)),
    Label("building", 11, 2, "construction", (70, 70, 70)),
    Label("wall", 12, 3, "construction", (102, 102, 156)),
    Label("fence", 13, 4, "construction", (190, 153, 153)),
    Label("guard rail", 14, 255, "construction", (180, 165, 180)),
    Label("bridge", 15, 255, "construction", (150, 100, 100)),
    Label("tunnel", 16, 255, "construction", (150, 120, 90)),
    Label("pole", 17, 5, "object", (153, 153, 153)),
    Label("polegroup", 18, 255, "object", (153, 153, 153)),
    Label("traffic light", 19, 6, "object", (250, 170, 30)),
    Label("traffic sign", 20, 7, "object", (220, 220, 0)),
    Label("vegetation", 21, 8, "nature", (107, 142, 35)),
    Label("terrain", 22, 9, "nature", (152, 251, 152)),
    Label("sky", 23, 10, "sky", (70, 130, 180)),
    Label("person", 24, 11, "human", (220, 20, 60)),
    Label("rider", 25, 12, "human", (255, 0, 0)),
    Label("car", 26, 13, "vehicle", (0, 0, 142)),
    Label("truck", 27, 14, "vehicle", (0, 0, 70)),
    Label("bus", 28, 15, "vehicle", (0, 60, 100)),
    Label("caravan", 29, 255, "vehicle", (0, 0, 90)),
    Label("trailer", 30, 255, "vehicle", (0, 0, 110)),
    Label("train", 31, 16, "vehicle", (0, 80, 100)),
    Label("motorcycle", 32, 17, "vehicle", (0, 0, 230)),
    Label("bicycle", 33, 18, "vehicle", (119, 11, 32)),
    Label("license plate", -1, -1, "vehicle", (0, 0, 142)),
)

TRAIN_LABELS: tuple[Label, ...] = tuple(sorted((l for l in LABELS if 0 <= l.train_id < 255), key=lambda l: l.train_id))
CLASS_NAMES: tuple[str, ...] = tuple(l.name for l in TRAIN_LABELS)  # the 19 evaluated classes
NUM_CLASSES = len(CLASS_NAMES)
NUM_LABEL_IDS = 34  # labelIds 0..33 appear in *_labelIds.png


def train_palette() -> np.ndarray:
    """(256, 3) uint8 colours indexed by trainId; 255 (ignore) is black."""
    palette = np.zeros((256, 3), np.uint8)
    for label in TRAIN_LABELS:
        palette[label.train_id] = label.color
    return palette


def label_id_to_train_id() -> np.ndarray:
    """(256,) uint8 table: labelId -> trainId (255 for void labels and unknown ids)."""
    table = np.full(256, IGNORE_INDEX, np.uint8)
    for label in LABELS:
        if label.id >= 0:
            table[label.id] = label.train_id if label.train_id >= 0 else IGNORE_INDEX
    return table


def colorize(mask: np.ndarray, palette: np.ndarray | None = None) -> np.ndarray:
    """Class-index mask (H, W) -> RGB (H, W, 3) in the Cityscapes colours."""
    return (train_palette() if palette is None else palette)[mask]


class ColorMapper:
    """Maps RGB pixels to class indices by the nearest palette colour, in one table gather.

    The table has one entry per 6-bit-per-channel colour cell (64**3), each holding the
    class of the palette colour nearest to the cell's centre, or `ignore_index` when no
    colour lies within `max_distance` (Euclidean, 0-255 scale); those pixels are counted
    as unmatched. JPEG noise and resampling blur move colours by a few levels, so they
    still land on their class.
    """

    BITS = 6

    def __init__(
        self,
        colors: Sequence[Sequence[int]],
        classes: Sequence[int],
        max_distance: float = 48.0,
        ignore_index: int = IGNORE_INDEX,
    ) -> None:
        colors = np.asarray(colors, np.float32).reshape(-1, 3)
        classes = np.asarray(classes, np.int64)
        if len(colors) != len(classes) or len(colors) == 0:
            raise ValueError(f"need one class per colour, got {len(colors)} colours and {len(classes)} classes")
        self.colors, self.classes = colors, classes
        self.max_distance, self.ignore_index = float(max_distance), ignore_index
        step = 256 >> self.BITS
        centres = np.arange(0, 256, step, dtype=np.float32) + (step - 1) / 2
        grid = np.stack(np.meshgrid(centres, centres, centres, indexing="ij"), -1).reshape(-1, 3)
        dist = np.linalg.norm(grid[:, None, :] - colors[None], axis=-1)  # (64**3, K)
        nearest = dist.argmin(1)
        self.unmatched_table = dist[np.arange(len(grid)), nearest] > self.max_distance
        self.table = np.where(self.unmatched_table, ignore_index, classes[nearest]).astype(np.uint8)

    @classmethod
    @functools.lru_cache(maxsize=4)
    def cityscapes(cls, max_distance: float = 48.0) -> "ColorMapper":
        """Kaggle-mask mapper: every label colour, void ones included, resolved to its trainId.

        Matching the full table first means a void colour (ground, parking, ...) becomes
        255 rather than its nearest evaluated class. Shared colours resolve to the
        evaluated class: (153,153,153) is pole, (0,0,142) car, (0,0,0) void.
        Built once per `max_distance` and shared (the table is read-only).
        """
        by_color: dict[tuple[int, int, int], int] = {}
        for label in LABELS:
            train_id = label.train_id if 0 <= label.train_id < 255 else IGNORE_INDEX
            if by_color.get(label.color, IGNORE_INDEX) == IGNORE_INDEX:
                by_color[label.color] = train_id
        return cls(list(by_color), list(by_color.values()), max_distance=max_distance)

    def _index(self, rgb: np.ndarray) -> np.ndarray:
        if rgb.ndim != 3 or rgb.shape[-1] != 3 or rgb.dtype != np.uint8:
            raise ValueError(f"expected an (H, W, 3) uint8 RGB image, got {rgb.shape} {rgb.dtype}")
        q = (rgb >> (8 - self.BITS)).astype(np.int32)
        return (q[..., 0] << (2 * self.BITS)) | (q[..., 1] << self.BITS) | q[..., 2]

    def __call__(self, rgb: np.ndarray) -> tuple[np.ndarray, int]:
        """(H, W, 3) uint8 RGB -> ((H, W) uint8 class mask, number of unmatched pixels)."""
        index = self._index(rgb)
        return self.table[index], int(self.unmatched_table[index].sum())

    def to_json(self, path: str | Path, names: Sequence[str] | None = None) -> None:
        """Save the palette (colours, classes, names, max_distance) as JSON."""
        payload = {
            "colors": self.colors.round().astype(int).tolist(),
            "classes": self.classes.tolist(),
            "names": list(names) if names is not None else None,
            "max_distance": self.max_distance,
        }
        Path(path).write_text(json.dumps(payload, indent=2))

    @classmethod
    def from_json(cls, path: str | Path) -> "ColorMapper":
        """Load a palette written by `to_json` (e.g. one fitted by `fit_palette`)."""
        path = Path(path)
        try:
            payload = json.loads(path.read_text())
            return cls(payload["colors"], payload["classes"], max_distance=payload.get("max_distance", 48.0))
        except (OSError, ValueError, KeyError, TypeError) as err:
            raise ValueError(
                f"{path} is not a palette JSON with 'colors' and 'classes' lists: {err}"
            ) from None


def fit_palette(masks: Sequence[np.ndarray], k: int, seed: int = 0, sample: int = 200_000) -> ColorMapper:
    """Cluster mask colours into `k` classes with k-means, as the Kaggle notebooks do.

    Class i is the i-th cluster, ordered by cluster size (largest first). Pixels are
    subsampled to `sample` for speed. Prefer `ColorMapper.cityscapes()`: clusters do not
    follow the official classes; this exists to reproduce notebooks that used them.
    """
    from scipy.cluster.vq import kmeans2

    pixels = np.concatenate([np.asarray(m, np.uint8).reshape(-1, 3) for m in masks]).astype(np.float32)
    rng = np.random.default_rng(seed)
    if len(pixels) > sample:
        pixels = pixels[rng.choice(len(pixels), sample, replace=False)]
    centres, assignment = kmeans2(pixels, k, minit="++", seed=rng)
    order = np.argsort(-np.bincount(assignment, minlength=k))
    return ColorMapper(centres[order], np.arange(k), max_distance=255.0 * 3**0.5)
