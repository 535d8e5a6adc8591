"""A generic folder pair: images in one folder, index masks (PNG) in another, matched by stem."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import numpy as np

from hybridunet.data.base import IMAGE_SUFFIXES, DataError, SegmentationDataset, read_image, read_index_mask
from hybridunet.data.labels import IGNORE_INDEX


def _by_stem(folder: Path, what: str) -> dict[str, Path]:
    if not folder.is_dir():
        raise DataError(f"{what} folder {folder} does not exist")
    files = {p.stem: p for p in sorted(folder.iterdir()) if p.suffix.lower() in IMAGE_SUFFIXES}
    if not files:
        raise DataError(f"{what} folder {folder} holds no images ({', '.join(IMAGE_SUFFIXES)})")
    return files


class SegmentationFolder(SegmentationDataset):
    """Images and single-channel index masks matched by file stem.

    With `num_classes`, mask values outside ``0..num_classes-1`` (other than
    `ignore_index`) are an error naming the file.
    """

    def __init__(
        self,
        images: str | Path,
        masks: str | Path,
        transform: Callable[..., dict[str, Any]] | None = None,
        num_classes: int | None = None,
        ignore_index: int = IGNORE_INDEX,
        **kwargs: Any,
    ) -> None:
        super().__init__(transform=transform, **kwargs)
        image_files, mask_files = _by_stem(Path(images), "images"), _by_stem(Path(masks), "masks")
        no_mask = sorted(set(image_files) - set(mask_files))
        no_image = sorted(set(mask_files) - set(image_files))
        if no_mask or no_image:
            raise DataError(
                f"image and mask stems do not match: {len(no_mask)} images in {images} without a mask "
                f"(e.g. {no_mask[:5]}), {len(no_image)} masks in {masks} without an image (e.g. {no_image[:5]})"
            )
        self.samples = [(image_files[s], mask_files[s]) for s in sorted(image_files)]
        self.num_classes, self.ignore_index = num_classes, ignore_index

    def read(self, index: int, mask: bool = True) -> tuple[np.ndarray, np.ndarray | None]:
        image_path, mask_path = self.samples[index]
        if not mask:
            return read_image(image_path), None
        classes = read_index_mask(mask_path, "index mask")
        if self.num_classes is not None:
            bad = (classes >= self.num_classes) & (classes != self.ignore_index)
            if bad.any():
                values = np.unique(classes[bad])[:10].tolist()
                raise DataError(
                    f"{mask_path}: mask values {values} are not classes 0..{self.num_classes - 1} "
                    f"nor ignore {self.ignore_index}"
                )
        return read_image(image_path), classes
