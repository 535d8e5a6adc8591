"""Using a trained model: evaluate a checkpoint on a split, predict masks for image files."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from hybridunet.checkpoint import load_model
from hybridunet.config import parse_config
from hybridunet.data import eval_transform, make_loader
from hybridunet.engine.build import build_loss, open_split
from hybridunet.engine.device import Precision, pick_device, resolve_precision
from hybridunet.engine.loops import FP32, evaluate
from hybridunet.errors import MissingFileError, OutputExistsError, UsageError


def stored_precision(meta: dict[str, Any], device: torch.device) -> Precision:
    """The precision a checkpoint was trained in, where `device` supports it; else what
    `auto` picks here (said on stderr)."""
    stored = meta.get("precision") or {"amp": meta["config"]["train"].get("amp", "none"),
                                       "channels_last": meta["config"]["train"].get("channels_last", False)}
    precision = resolve_precision(device, stored["amp"], stored["channels_last"], strict=False)
    if precision.amp != stored["amp"] and stored["amp"] != "auto":
        print(f"hybridunet: trained with amp={stored['amp']}, which {device.type} does not run; using {precision}",
              file=sys.stderr)
    return precision


def _load(checkpoint: str | Path, device: str) -> tuple[nn.Module, dict[str, Any], torch.device, Precision]:
    """The checkpoint's model on `device`, in the precision and memory format it trained with
    where the device supports them."""
    dev = pick_device(device)
    model, meta = load_model(checkpoint, dev)
    precision = stored_precision(meta, dev)
    return model.to(memory_format=precision.memory_format), meta, dev, precision


def evaluate_checkpoint(checkpoint: str | Path, data: str | Path | None = None, split: str = "val",
                        batch_size: int | None = None, device: str = "auto") -> dict[str, Any]:
    """Metrics of a checkpoint on a split: the run's own data, or all of another data set's split."""
    model, meta, dev, precision = _load(checkpoint, device)
    config = parse_config(meta["config"], f"the config stored in {checkpoint}")
    if data is not None:  # another data set: all of its split, not the training run's subset
        config.data = config.data.model_copy(update={"root": str(data), "limit_val": None})
    loader = make_loader(open_split(config, split, train=False),
                         batch_size or config.train.val_batch_size or config.train.batch_size,
                         num_workers=config.data.num_workers)
    loss = build_loss(config, meta.get("class_weights")).to(dev)  # the loss the run trained with
    return evaluate(model, loader, config.model.num_classes, loss, meta["class_names"], dev, precision)


@torch.no_grad()
def predict(
    model: nn.Module,
    image: np.ndarray,
    normalize: str = "imagenet",
    size: int | None = None,
    device: torch.device | str = "cpu",
    precision: Precision = FP32,
    tile: int | None = None,
    overlap: float = 0.25,
    blend: str = "gaussian",
) -> np.ndarray:
    """Class mask (H, W) uint8 for an RGB uint8 image of any size.

    With `size`, the image is resized to size x size for the model and the logits resized
    back (bilinear) to the input's size; otherwise the model sees the image as it is. With
    `tile`, the model sees tile x tile windows overlapping by `overlap`, blended (see
    `tiled_logits`), so memory is bounded by one tile and the running class scores.
    """
    device = torch.device(device)
    h, w = image.shape[:2]
    x = eval_transform(size, normalize)(image=image)["image"][None]
    model.eval()

    def run(window: torch.Tensor) -> torch.Tensor:
        with precision.autocast(device):
            return model(window.to(device, memory_format=precision.memory_format)).float()

    logits = run(x) if tile is None else tiled_logits(run, x, tile, overlap, blend, stride=_stride(model))
    if logits.shape[-2:] != (h, w):
        logits = F.interpolate(logits, size=(h, w), mode="bilinear", align_corners=False)
    return logits.argmax(1)[0].to(torch.uint8).cpu().numpy()


def _stride(model: nn.Module) -> int:
    return int(getattr(model, "stride", 1))


def blend_window(tile_h: int, tile_w: int, blend: str = "gaussian") -> torch.Tensor:
    """Weights of a tile's pixels when overlapping tiles are blended: a Gaussian (sigma 1/8
    of the tile, as nnU-Net) or a linear ramp, highest in the centre, never zero."""
    def axis(n: int) -> torch.Tensor:
        centre = torch.arange(n, dtype=torch.float32) - (n - 1) / 2
        if blend == "gaussian":
            return torch.exp(-0.5 * (centre / (n / 8)) ** 2)
        if blend == "linear":
            return 1 - centre.abs() / (n / 2 + 1)
        raise UsageError(f"--blend {blend!r}: expected 'gaussian' or 'linear'")

    window = axis(tile_h)[:, None] * axis(tile_w)[None, :]
    return (window / window.max()).clamp_min(1e-3)


def check_tiling(tile: int, overlap: float, blend: str, stride: int = 1) -> None:
    """Fail naming the flag when tiling values cannot work."""
    if tile < stride:
        raise UsageError(f"--tile {tile}: must be at least the model's stride ({stride})")
    if not 0 <= overlap < 1:
        raise UsageError(f"--overlap {overlap}: expected a fraction in [0, 1)")
    blend_window(1, 1, blend)


def tile_starts(length: int, tile: int, step: int) -> list[int]:
    """Window starts covering 0..length: every `step`, the last flush with the end."""
    if length <= tile:
        return [0]
    starts = list(range(0, length - tile, step))
    return starts + [length - tile]


def tiled_logits(run, x: torch.Tensor, tile: int, overlap: float = 0.25, blend: str = "gaussian",
                 stride: int = 1) -> torch.Tensor:
    """Logits (1, C, H, W) of a (1, 3, H, W) input through `run` in tile x tile windows
    (smaller where the input is), overlapping by `overlap`, summed with `blend_window`
    weights and normalised. A window covering the whole input gives `run(x)` itself."""
    check_tiling(tile, overlap, blend, stride)
    _, _, h, w = x.shape
    th, tw = min(tile, h), min(tile, w)
    step_h, step_w = max(1, int(th * (1 - overlap))), max(1, int(tw * (1 - overlap)))
    window = blend_window(th, tw, blend)
    scores = weight = None
    for top in tile_starts(h, th, step_h):
        for left in tile_starts(w, tw, step_w):
            logits = run(x[..., top:top + th, left:left + tw]).float().cpu()
            if scores is None:
                scores = torch.zeros(1, logits.shape[1], h, w)
                weight = torch.zeros(h, w)
            scores[..., top:top + th, left:left + tw] += logits * window
            weight[top:top + th, left:left + tw] += window
    return scores / weight


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


def predict_files(checkpoint: str | Path, source: str | Path, out: str | Path, size: int | None = None,
                  overwrite: bool = False, device: str = "auto", tile: int | None = None, overlap: float = 0.25,
                  blend: str = "gaussian") -> list[PredictionFiles]:
    """Write a colour mask and an overlay PNG per image of `source`; returns what was written.
    `checkpoint` is a .safetensors checkpoint, or a .onnx export run with onnxruntime. With
    `tile`, each image is first resized as training saw its frames (to the recorded input
    size, unless `size` says otherwise), then predicted in blended tiles."""
    import cv2

    from hybridunet.data.base import read_image
    from hybridunet.data.labels import colorize

    targets = prediction_targets(source, out, overwrite)
    if Path(checkpoint).suffix == ".onnx":
        from hybridunet.export import OnnxModel

        onnx_model = OnnxModel(checkpoint)
        size = size or (onnx_model.meta["input_size"][0] if tile else None)
        stride = int(onnx_model.meta.get("stride", 1))
        run = lambda image: onnx_model.predict(image, size, tile, overlap, blend)  # noqa: E731
    else:
        model, meta, dev, precision = _load(checkpoint, device)
        normalize = meta["config"]["data"]["normalize"]
        size = size or (meta["config"]["data"]["size"] if tile else None)
        stride = _stride(model)
        run = lambda image: predict(model, image, normalize, size, dev, precision, tile, overlap, blend)  # noqa: E731
    if tile is not None:  # before any output
        check_tiling(tile, overlap, blend, stride)
    Path(out).mkdir(parents=True, exist_ok=True)
    for t in targets:
        image = read_image(t.image)
        colours = colorize(run(image))
        overlay = (0.5 * image + 0.5 * colours).astype(np.uint8)
        cv2.imwrite(str(t.mask), colours[..., ::-1])
        cv2.imwrite(str(t.overlay), overlay[..., ::-1])
    return targets
