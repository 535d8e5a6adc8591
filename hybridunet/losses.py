"""Segmentation losses by name; every one ignores pixels labelled `ignore_index` (255).

Soft Dice and focal come from segmentation-models-pytorch; `bce` is the study's loss.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from hybridunet.data.labels import IGNORE_INDEX
from hybridunet.registry import Registry

LOSSES: Registry[nn.Module] = Registry("loss")


def _weights(class_weights: Sequence[float] | None) -> torch.Tensor | None:
    return None if class_weights is None else torch.as_tensor(list(class_weights), dtype=torch.float32)


@LOSSES.register("ce")
class CrossEntropy(nn.Module):
    """Softmax cross entropy, optionally class-weighted."""

    def __init__(self, class_weights: Sequence[float] | None = None, ignore_index: int = IGNORE_INDEX) -> None:
        super().__init__()
        self.ignore_index = ignore_index
        self.register_buffer("weight", _weights(class_weights), persistent=False)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(logits.float(), target, weight=self.weight, ignore_index=self.ignore_index)


@LOSSES.register("bce")
class OneHotBCE(nn.Module):
    """The study's loss: binary cross entropy with logits on one-hot targets, every channel
    an independent sigmoid, averaged over the non-ignored pixels and the channels."""

    def __init__(self, class_weights: Sequence[float] | None = None, ignore_index: int = IGNORE_INDEX) -> None:
        super().__init__()
        self.ignore_index = ignore_index
        self.register_buffer("weight", _weights(class_weights), persistent=False)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        valid = target != self.ignore_index
        logits = logits.float().movedim(1, -1)[valid]  # (P, C)
        onehot = F.one_hot(target[valid], logits.shape[-1]).float()
        loss = F.binary_cross_entropy_with_logits(logits, onehot, reduction="none")
        if self.weight is not None:
            loss = loss * self.weight
        return loss.mean() if loss.numel() else logits.sum() * 0


@LOSSES.register("dice")
class SoftDice(nn.Module):
    """Soft multiclass Dice on softmax probabilities (smp), over the classes present in the batch."""

    def __init__(self, class_weights: Sequence[float] | None = None, ignore_index: int = IGNORE_INDEX) -> None:
        from segmentation_models_pytorch.losses import DiceLoss  # smp loads in seconds: only when used

        super().__init__()
        self.smp = DiceLoss("multiclass", from_logits=True, ignore_index=ignore_index, class_weights=class_weights)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return self.smp(logits.float(), target)


@LOSSES.register("focal")
class Focal(nn.Module):
    """Focal loss (smp): cross entropy that down-weights easy pixels by (1 - p) ** gamma."""

    def __init__(
        self, gamma: float = 2.0, class_weights: Sequence[float] | None = None, ignore_index: int = IGNORE_INDEX
    ) -> None:
        from segmentation_models_pytorch.losses import FocalLoss

        super().__init__()
        self.smp = FocalLoss("multiclass", gamma=gamma, ignore_index=ignore_index, class_weights=class_weights)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return self.smp(logits.float(), target)


@LOSSES.register("dice_ce")
class DiceCE(nn.Module):
    """``ce_weight * cross entropy + dice_weight * soft Dice``: sharp boundaries from CE,
    balance across rare classes from Dice."""

    def __init__(
        self,
        ce_weight: float = 1.0,
        dice_weight: float = 1.0,
        class_weights: Sequence[float] | None = None,
        ignore_index: int = IGNORE_INDEX,
    ) -> None:
        super().__init__()
        self.ce_weight, self.dice_weight = ce_weight, dice_weight
        self.ce = CrossEntropy(class_weights, ignore_index)
        self.dice = SoftDice(class_weights, ignore_index)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return self.ce_weight * self.ce(logits, target) + self.dice_weight * self.dice(logits, target)


@LOSSES.register("ohem_ce")
class OhemCrossEntropy(nn.Module):
    """Cross entropy over the hard pixels only (online hard example mining), as the Cityscapes
    recipes of MMSegmentation and PaddleSeg train: pixels whose probability of their true
    class is at most `threshold`, and never fewer than the `min_kept` hardest of the batch."""

    def __init__(self, threshold: float = 0.7, min_kept: int = 100_000, class_weights: Sequence[float] | None = None,
                 ignore_index: int = IGNORE_INDEX) -> None:
        super().__init__()
        if not 0 < threshold <= 1:
            raise ValueError(f"loss.threshold={threshold}: expected a probability in (0, 1]")
        if not isinstance(min_kept, int) or min_kept < 1:
            raise ValueError(f"loss.min_kept={min_kept}: expected a positive integer")
        self.threshold, self.min_kept, self.ignore_index = threshold, min_kept, ignore_index
        self.register_buffer("weight", _weights(class_weights), persistent=False)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        logits = logits.float()
        valid = target != self.ignore_index
        with torch.no_grad():
            prob = logits.softmax(1).gather(1, target.masked_fill(~valid, 0).unsqueeze(1)).squeeze(1)
            scores = prob[valid]
            if scores.numel() == 0:
                return logits.sum() * 0
            kth = scores.kthvalue(min(self.min_kept, scores.numel())).values
            keep = valid & (prob <= max(self.threshold, float(kth)))
        losses = F.cross_entropy(logits, target, weight=self.weight, ignore_index=self.ignore_index, reduction="none")
        return losses[keep].mean()
