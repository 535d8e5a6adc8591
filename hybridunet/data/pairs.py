"""The Kaggle "cityscapes-image-pairs" layout: ROOT/{train,val}/N.jpg, photo left, colour mask right."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import numpy as np

from hybridunet.data.base import DataError, SegmentationDataset, read_image
from hybridunet.data.labels import ColorMapper


def _natural_key(path: Path) -> tuple:
    return (0, int(path.stem), "") if path.stem.isdigit() else (1, 0, path.stem)


def find_pairs_root(root: str | Path, split: str) -> Path:
    """The folder holding ``split/*.jpg``: ROOT itself, ROOT/cityscapes_data, or the nested
    ROOT/cityscapes_data/cityscapes_data copy that the Kaggle download contains."""
    root = Path(root)
    candidates = [root, root / "cityscapes_data", root / "cityscapes_data" / "cityscapes_data"]
    for candidate in candidates:
        if any((candidate / split).glob("*.jpg")):
            return candidate
    looked = ", ".join(str(c / split) for c in candidates)
    if not root.exists():
        raise DataError(f"data folder {root} does not exist")
    raise DataError(f"no Kaggle pairs (*.jpg) for split {split!r} under {root}; looked in {looked}")


class CityscapesPairs(SegmentationDataset):
    """The Kaggle `cityscapes-image-pairs` set: each JPEG is photo | colour mask side by side.

    Mask colours map to trainIds through `mapper` (default: the full Cityscapes table,
    void colours to 255); pixels too far from every colour become 255 and are counted
    in `unmatched_pixels` (per process).

    Args:
        root: The folder holding `train/` and `val/` (`cityscapes_data`, its parent or the
            nested copy are all found).
        split: `train`, `val` or `test`.
        transform: An albumentations-style transform (`train_transform`, `eval_transform`);
            default: the image as float in [0, 1].
        mapper: The colour to trainId mapping.
        **kwargs: `SegmentationDataset`'s: `cache_masks`, `skip_bad` (skip unreadable files
            with a counted warning), `seed`.

    Example:
        ```python
        from hybridunet.data import CityscapesPairs

        val = CityscapesPairs("data/synthetic", "val")
        image, mask = val[0]   # (3, H, W) float32, (H, W) int64 trainIds, 255 ignored
        ```
    """

    def __init__(
        self,
        root: str | Path,
        split: str = "train",
        transform: Callable[..., dict[str, Any]] | None = None,
        mapper: ColorMapper | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(transform=transform, **kwargs)
        self.root = find_pairs_root(root, split)
        self.split = split
        self.samples = sorted((self.root / split).glob("*.jpg"), key=_natural_key)
        self._require_samples(str(self.root / split))
        self.mapper = mapper or ColorMapper.cityscapes()
        self.unmatched_pixels = 0

    def read(self, index: int, mask: bool = True) -> tuple[np.ndarray, np.ndarray | None]:
        path = self.samples[index]
        pair = read_image(path)
        h, w = pair.shape[:2]
        if w != 2 * h:
            raise DataError(
                f"{path}: a pair must be photo | mask side by side with width = 2 x height; got {w}x{h}"
            )
        photo = np.ascontiguousarray(pair[:, :h])
        if not mask:
            return photo, None
        classes, unmatched = self.mapper(np.ascontiguousarray(pair[:, h:]))
        self.unmatched_pixels += unmatched
        return photo, classes
