"""Masks and overlays for image files, through any predictor."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hybridunet.errors import MissingFileError, OutputExistsError, UsageError
from hybridunet.prediction.predictors import Predictor
from hybridunet.prediction.tiling import check_tiling


@dataclass(frozen=True)
class PredictionFiles:
    image: Path
    mask: Path
    overlay: Path


def prediction_targets(source: str | Path, out: str | Path, overwrite: bool = False) -> list[PredictionFiles]:
    """The images under `source` (a file or a folder) and the files their predictions go to;
    fails before any work when an output exists and `overwrite` is not set."""
    from hybridunet.data.base import IMAGE_SUFFIXES

    source, out = Path(source), Path(out)
    if source.is_dir():
        images = sorted(p for p in source.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    elif source.is_file():
        images = [source]
    else:
        raise MissingFileError(f"input {source} does not exist")
    if not images:
        raise UsageError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in {source}")
    targets = [PredictionFiles(p, out / f"{p.stem}_mask.png", out / f"{p.stem}_overlay.png") for p in images]
    existing = [str(f) for t in targets for f in (t.mask, t.overlay) if f.exists()]
    if existing and not overwrite:
        raise OutputExistsError(
            f"{len(existing)} output files exist already (e.g. {existing[0]}); pass --overwrite to replace them")
    return targets


def predict_files(predictor: Predictor, source: str | Path, out: str | Path, size: int | None = None,
                  overwrite: bool = False, tile: int | None = None, overlap: float = 0.25,
                  blend: str = "gaussian") -> list[PredictionFiles]:
    """Write a colour mask and an overlay PNG for every image of `source`.

    With `tile`, each image is first resized as training saw its frames (to the predictor's
    input size, unless `size` says otherwise), then predicted in blended tiles.

    Args:
        predictor: From `open_predictor`.
        source: An image file or a folder of them.
        out: The folder the PNGs go to.
        size: Resize each image to this square input first.
        overwrite: Replace existing outputs (else they are refused).
        tile: Predict in `tile` x `tile` windows.
        overlap: The windows' overlap, a fraction in [0, 1).
        blend: `gaussian` or `linear`.

    Returns:
        What was written, per image.
    """
    import cv2

    from hybridunet.data.base import read_image
    from hybridunet.data.labels import colorize

    targets = prediction_targets(source, out, overwrite)
    if tile is not None:  # before any output
        check_tiling(tile, overlap, blend, predictor.stride)
        size = size or predictor.input_size
    Path(out).mkdir(parents=True, exist_ok=True)
    for t in targets:
        image = read_image(t.image)
        colours = colorize(predictor.predict(image, size, tile, overlap, blend))
        overlay = (0.5 * image + 0.5 * colours).astype(np.uint8)
        cv2.imwrite(str(t.mask), colours[..., ::-1])
        cv2.imwrite(str(t.overlay), overlay[..., ::-1])
    return targets
