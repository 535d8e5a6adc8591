"""Using a trained model in the engine: a checkpoint's metrics on a split, and the mask of one image.

Prediction itself lives in `hybridunet.prediction` (one pipeline for checkpoints and ONNX
exports); `predict` here is its entry for a model already in memory.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from hybridunet.config import parse_config
from hybridunet.data import make_loader
from hybridunet.device import FP32, Precision
from hybridunet.engine.build import build_loss, open_split
from hybridunet.engine.loops import evaluate
from hybridunet.prediction import TorchPredictor, segment


def evaluate_checkpoint(checkpoint: str | Path, data: str | Path | None = None, split: str = "val",
                        batch_size: int | None = None, device: str = "auto") -> dict[str, Any]:
    """Score a checkpoint on a split, with the loss and precision its run used.

    Args:
        checkpoint: A `.safetensors` checkpoint written by `fit`.
        data: Another data set's root; its whole split is scored. None scores the run's own
            data, with the run's limits.
        split: `val`, `test` or `train`.
        batch_size: Defaults to the run's validation batch.
        device: `auto` (CUDA where present), `cpu` or `cuda:N`.

    Returns:
        The metrics JSON `hybridunet eval` prints: `dice`, `miou`, `pixel_acc`, `loss`,
            `per_class_dice`, `soft_dice_study`.

    Example:
        ```python
        from hybridunet.engine import evaluate_checkpoint

        metrics = evaluate_checkpoint("outputs/u1/best.safetensors", split="val")
        ```
    """
    predictor = TorchPredictor.from_checkpoint(checkpoint, device)
    meta = predictor.meta
    config = parse_config(meta["config"], f"the config stored in {checkpoint}")
    if data is not None:  # another data set: all of its split, not the training run's subset
        config.data = config.data.model_copy(update={"root": str(data), "limit_val": None})
    loader = make_loader(open_split(config, split, train=False),
                         batch_size or config.train.val_batch_size or config.train.batch_size,
                         num_workers=config.data.num_workers)
    loss = build_loss(config, meta.get("class_weights")).to(predictor.device)  # the loss the run trained with
    return evaluate(predictor.model, loader, config.model.num_classes, loss, meta["class_names"], predictor.device,
                    predictor.precision)


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
    """The class mask of one RGB image of any size.

    Args:
        model: A segmentation model, in eval mode.
        image: An (H, W, 3) uint8 RGB image.
        normalize: The normalisation the model trained with (`imagenet` or `unit`).
        size: Resize to this square input first (as training saw frames); None keeps the
            image's size.
        device: Where the model runs.
        precision: The autocast precision to run in.
        tile: Predict in `tile` x `tile` windows whose class scores are blended.
        overlap: The windows' overlap, a fraction in [0, 1).
        blend: `gaussian` (nnU-Net's weights) or `linear`.

    Returns:
        The (H, W) uint8 mask of trainIds, at the image's own size.
    """
    return segment(TorchPredictor(model, normalize, device, precision), image, size, tile, overlap, blend)
