"""A short fingerprint of the data a run saw, so runs on different data never pool silently."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Iterable

from hybridunet.data.base import SegmentationDataset

GENERATOR_JSON = "synthetic.json"  # written by the synthetic generator beside its splits


def data_fingerprint(datasets: Iterable[SegmentationDataset], root: str | Path | None = None) -> str:
    """12 hex digits over the generator's record (where `root` has one) and every sample's
    file names and sizes: equal for the same files, different after any file changes size."""
    digest = hashlib.sha256()
    if root is not None and (Path(root) / GENERATOR_JSON).is_file():
        digest.update((Path(root) / GENERATOR_JSON).read_bytes())
    for dataset in datasets:
        for sample in dataset.samples:
            for path in sample if isinstance(sample, tuple) else (sample,):
                if isinstance(path, (str, os.PathLike)):
                    path = Path(path)
                    digest.update(json.dumps([path.parent.name, path.name, _size(path)]).encode())
    return digest.hexdigest()[:12]


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return -1
