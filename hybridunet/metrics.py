"""Segmentation metrics. Every hard metric derives from one confusion matrix."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from hybridunet.data.labels import CLASS_NAMES, IGNORE_INDEX


class ConfusionMatrix:
    """Accumulates a (num_classes x num_classes) confusion matrix, rows = truth, columns =
    prediction, over any number of batches (and of processes: `merge`, or under DDP the
    evaluation loop's sum of `matrix` over ranks). Every score comes from it.

    `compute()` derives, per class c with tp, fp, fn counted over the whole set:
    Dice_c = 2 tp / (2 tp + fp + fn) and IoU_c = tp / (tp + fp + fn).
    **Mean Dice (`dice`) and `miou` average over the classes that occur in the truth or in
    the prediction** (tp + fp + fn > 0); classes absent from both are left out rather
    than counted as 0 or 1, and their per-class values are NaN. `pixel_acc` is the share
    of non-ignored pixels predicted right. Pixels whose target is `ignore_index` count nowhere.

    Args:
        num_classes: The number of classes.
        ignore_index: The target value that counts nowhere.
        class_names: Names for the per-class results; default: Cityscapes' 19, or
            `class_0, class_1, ...`.
        device: Where the matrix lives (the predictions' device, to avoid copies).

    Example:
        ```python
        import torch
        from hybridunet.metrics import ConfusionMatrix

        cm = ConfusionMatrix(num_classes=3, class_names=["road", "car", "sky"])
        cm.update(torch.tensor([[0, 1], [2, 2]]), torch.tensor([[0, 1], [2, 255]]))   # labels, not logits
        cm.compute()["dice"]   # 1.0: every scored pixel right (255 is ignored)
        ```
    """

    def __init__(
        self,
        num_classes: int,
        ignore_index: int = IGNORE_INDEX,
        class_names: Sequence[str] | None = None,
        device: torch.device | str | None = None,
    ) -> None:
        if num_classes < 1:
            raise ValueError(f"num_classes must be positive, got {num_classes}")
        if class_names is None:
            class_names = CLASS_NAMES if num_classes == len(CLASS_NAMES) else [f"class_{i}" for i in range(num_classes)]
        if len(class_names) != num_classes:
            raise ValueError(f"{len(class_names)} class names for {num_classes} classes")
        self.num_classes, self.ignore_index = num_classes, ignore_index
        self.class_names = list(class_names)
        self.matrix = torch.zeros(num_classes, num_classes, dtype=torch.int64, device=device)

    @torch.no_grad()
    def update(self, pred: torch.Tensor, target: torch.Tensor) -> None:
        """Add a batch: `pred` as (N, H, W) labels or (N, C, H, W) logits; `target` (N, H, W)."""
        if pred.ndim == target.ndim + 1:
            pred = pred.max(1).indices  # the first maximum, as argmax, and several times faster on CPU
        elif pred.numel() and (int(pred.min()) < 0 or int(pred.max()) >= self.num_classes):
            raise ValueError(
                f"predicted labels must lie in 0..{self.num_classes - 1}, got min {int(pred.min())}, max {int(pred.max())}"
            )
        if pred.shape != target.shape:
            raise ValueError(f"prediction {tuple(pred.shape)} and target {tuple(target.shape)} differ in shape")
        target = target.to(pred.device)
        ignored = target == self.ignore_index
        outside = ((target < 0) | (target >= self.num_classes)) & ~ignored
        if outside.any():
            bad = target[outside]
            raise ValueError(
                f"target holds classes outside 0..{self.num_classes - 1} (and ignore {self.ignore_index}): "
                f"min {int(bad.min())}, max {int(bad.max())}"
            )
        # One bincount over truth * C + prediction; ignored pixels go to an extra bin that is dropped.
        cells = self.num_classes**2
        index = (target.long() * self.num_classes + pred.long()).masked_fill_(ignored, cells)
        counts = torch.bincount(index.view(-1), minlength=cells + 1)[:cells]
        self.matrix += counts.view(self.num_classes, self.num_classes).to(self.matrix.device)

    def merge(self, other: ConfusionMatrix) -> ConfusionMatrix:
        """Add another matrix's counts (e.g. from another process) into this one."""
        if other.num_classes != self.num_classes:
            raise ValueError(f"cannot merge {other.num_classes}-class counts into {self.num_classes}-class counts")
        self.matrix += other.matrix.to(self.matrix.device)
        return self

    def compute(self) -> dict:
        """{'dice', 'miou', 'pixel_acc', 'per_class_dice', 'per_class_iou'} (per-class keyed by name)."""
        m = self.matrix.double()
        tp = m.diag()
        fp, fn = m.sum(0) - tp, m.sum(1) - tp
        occurs = (tp + fp + fn) > 0
        nan = torch.full_like(tp, float("nan"))
        dice = torch.where(occurs, 2 * tp / (2 * tp + fp + fn).clamp_min(1), nan)
        iou = torch.where(occurs, tp / (tp + fp + fn).clamp_min(1), nan)
        total = m.sum()
        return {
            "dice": float(dice[occurs].mean()) if occurs.any() else float("nan"),
            "miou": float(iou[occurs].mean()) if occurs.any() else float("nan"),
            "pixel_acc": float(tp.sum() / total) if total > 0 else float("nan"),
            "per_class_dice": dict(zip(self.class_names, dice.tolist())),
            "per_class_iou": dict(zip(self.class_names, iou.tolist())),
        }


class SoftDiceStudy:
    """The study's probable metric, for comparison only: Keras-style soft Dice,
    (2 sum(y p) + 1) / (sum(y) + sum(p) + 1), with p the sigmoid of every logit channel and
    y the one-hot truth, summed over all pixels and channels of the set (ignore pixels left
    out). Background-heavy channels dominate it, so it is not comparable to `dice`.
    """

    def __init__(self, ignore_index: int = IGNORE_INDEX, smooth: float = 1.0) -> None:
        self.ignore_index, self.smooth = ignore_index, smooth
        self.intersection = self.total = 0.0

    @torch.no_grad()
    def update(self, logits: torch.Tensor, target: torch.Tensor) -> None:
        valid = target != self.ignore_index
        p = torch.sigmoid(logits.float()).movedim(1, -1)[valid]
        y = torch.nn.functional.one_hot(target[valid].long(), logits.shape[1]).float()
        self.intersection += float((p * y).sum())
        self.total += float(p.sum() + y.sum())

    def compute(self) -> float:
        return (2 * self.intersection + self.smooth) / (self.total + self.smooth)
