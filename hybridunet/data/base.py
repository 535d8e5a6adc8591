"""What every segmentation data set shares: decoding with clear errors, augmentation seeded
per (epoch, sample), optional mask caching, and skipping of unreadable files."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any, Callable

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from hybridunet.errors import DataError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")


def read_image(path: Path, flags: int = cv2.IMREAD_COLOR) -> np.ndarray:
    """Decode an image file; colour images come back RGB. Truncated JPEGs are refused
    (OpenCV would silently return a partly grey picture)."""
    try:
        data = path.read_bytes()
    except OSError as err:
        raise DataError(f"{path}: cannot read file ({err.strerror})") from None
    if path.suffix.lower() in (".jpg", ".jpeg") and not data.rstrip(b"\0").endswith(b"\xff\xd9"):
        raise DataError(f"{path}: truncated or corrupt JPEG (no end-of-image marker)")
    image = cv2.imdecode(np.frombuffer(data, np.uint8), flags)
    if image is None:
        raise DataError(f"{path}: not a readable image")
    return image[..., ::-1] if image.ndim == 3 else image


def read_index_mask(path: Path, kind: str) -> np.ndarray:
    """Decode a single-channel 8-bit mask (class indices or labelIds, named by `kind`)."""
    mask = read_image(path, cv2.IMREAD_UNCHANGED)
    if mask.ndim != 2 or mask.dtype != np.uint8:
        raise DataError(f"{path}: expected a single-channel 8-bit {kind}, got {mask.shape} {mask.dtype}")
    return mask


def seed_for(seed: int, epoch: int, index: int) -> int:
    """A 32-bit seed that depends only on (seed, epoch, index)."""
    return int(np.random.SeedSequence([seed, epoch, index]).generate_state(1)[0])


class SegmentationDataset(Dataset):
    """Base class: subclasses fill `self.samples` and implement `read(i)`.

    Items are ``(image float tensor (3, H, W), mask long tensor (H, W))``. An index
    ``k >= len(self)`` means sample ``k % len`` in epoch ``k // len`` (see
    `hybridunet.data.loader.EpochSampler`): augmentation is seeded by (seed, epoch,
    sample), so results do not depend on the number of workers and resume exactly.
    """

    def __init__(
        self,
        transform: Callable[..., dict[str, Any]] | None = None,
        cache_masks: bool = False,
        skip_bad: bool = False,
        seed: int = 0,
    ) -> None:
        self.transform = transform
        self.cache_masks = cache_masks
        self.skip_bad = skip_bad
        self.seed = seed
        self.samples: list[Any] = []
        self.skipped: set[int] = set()
        self._mask_cache: dict[int, np.ndarray] = {}

    # -- for subclasses -------------------------------------------------------------
    def read(self, index: int, mask: bool = True) -> tuple[np.ndarray, np.ndarray | None]:
        """(RGB uint8 (H, W, 3), class-index uint8 mask (H, W), or None when not asked for)."""
        raise NotImplementedError

    def name(self, index: int) -> str:
        """The sample's (photo) file, for errors and displays."""
        sample = self.samples[index]
        return str(sample[0] if isinstance(sample, tuple) else sample)

    def _require_samples(self, where: str) -> None:
        if not self.samples:
            raise DataError(f"no samples found: {where}")

    # -- shared ---------------------------------------------------------------------
    def head(self, count: int) -> "SegmentationDataset":
        """Keep only the first `count` samples (quick runs, overfitting checks)."""
        self.samples = self.samples[:count]
        self._mask_cache = {i: m for i, m in self._mask_cache.items() if i < count}
        return self

    def __len__(self) -> int:
        return len(self.samples)

    def load(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """Decoded sample `index` without augmentation, masks cached if asked."""
        cached = self._mask_cache.get(index)
        image, mask = self.read(index, mask=cached is None)
        if cached is not None:
            return image, cached
        if image.shape[:2] != mask.shape[:2]:
            raise DataError(f"{self.name(index)}: image {image.shape[:2]} and mask {mask.shape[:2]} differ in size")
        if self.cache_masks:
            self._mask_cache[index] = mask
        return image, mask

    def __getitem__(self, key: int) -> tuple[torch.Tensor, torch.Tensor]:
        epoch, index = divmod(int(key), len(self))
        image, mask = self._load_or_skip(index)
        if self.transform is None:
            return torch.from_numpy(image.transpose(2, 0, 1).copy()).float() / 255, torch.from_numpy(mask).long()
        if hasattr(self.transform, "set_random_seed"):
            self.transform.set_random_seed(seed_for(self.seed, epoch, index))
        out = self.transform(image=image, mask=mask)
        return out["image"], torch.as_tensor(out["mask"]).long()

    def _load_or_skip(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        for attempt in range(len(self)):
            i = (index + attempt) % len(self)
            try:
                return self.load(i)
            except DataError as err:
                if not self.skip_bad:
                    raise
                if i not in self.skipped:
                    self.skipped.add(i)
                    warnings.warn(f"skipping unreadable sample ({len(self.skipped)} so far): {err}", stacklevel=2)
        raise DataError(f"no readable sample among {len(self)} in {type(self).__name__}")
