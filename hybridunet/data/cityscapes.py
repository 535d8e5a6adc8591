"""The official Cityscapes release: leftImg8bit photos and gtFine labelId masks."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import numpy as np

from hybridunet.data.base import DataError, SegmentationDataset, read_image, read_index_mask
from hybridunet.data.labels import NUM_LABEL_IDS, label_id_to_train_id

IMAGE_SUFFIX = "_leftImg8bit.png"
MASK_SUFFIX = "_gtFine_labelIds.png"


class Cityscapes(SegmentationDataset):
    """``ROOT/leftImg8bit/{split}/{city}/*_leftImg8bit.png`` with
    ``ROOT/gtFine/{split}/{city}/*_gtFine_labelIds.png``; labelIds map to the 19 trainIds, 255 ignore."""

    def __init__(
        self,
        root: str | Path,
        split: str = "train",
        transform: Callable[..., dict[str, Any]] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(transform=transform, **kwargs)
        self.root, self.split = Path(root), split
        images = self.root / "leftImg8bit" / split
        if not images.is_dir():
            raise DataError(f"{images} is not a folder; expected ROOT/leftImg8bit/{split}/<city>/*{IMAGE_SUFFIX}")
        pairs, missing = [], []
        for image in sorted(images.glob(f"*/*{IMAGE_SUFFIX}")):
            mask = self.root / "gtFine" / split / image.parent.name / image.name.replace(IMAGE_SUFFIX, MASK_SUFFIX)
            (pairs if mask.is_file() else missing).append((image, mask))
        if missing:
            shown = ", ".join(str(m) for _, m in missing[:3])
            raise DataError(f"{len(missing)} photos in {images} have no labelIds mask, e.g. {shown}")
        self.samples = pairs
        self._require_samples(f"{images}/<city>/*{IMAGE_SUFFIX}")
        self._to_train_id = label_id_to_train_id()

    def read(self, index: int, mask: bool = True) -> tuple[np.ndarray, np.ndarray | None]:
        image_path, mask_path = self.samples[index]
        if not mask:
            return read_image(image_path), None
        label_ids = read_index_mask(mask_path, "labelId PNG")
        if label_ids.max() >= NUM_LABEL_IDS:
            bad = np.unique(label_ids[label_ids >= NUM_LABEL_IDS])[:10].tolist()
            raise DataError(f"{mask_path}: labelIds {bad} are outside the Cityscapes table (0..{NUM_LABEL_IDS - 1})")
        return read_image(image_path), self._to_train_id[label_ids]
