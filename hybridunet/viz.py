"""Pictures for people: sample grids and image | truth | prediction panels."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
from matplotlib.figure import Figure  # the object API: no pyplot state, no display needed

from hybridunet.data.labels import colorize


def panel_grid(
    rows: Sequence[Sequence[np.ndarray]], titles: Sequence[str], out: str | Path, row_labels: Sequence[str] | None = None
) -> Path:
    """Save a grid: one row per sample, one column per picture (RGB arrays, or class masks
    which are coloured in the Cityscapes palette)."""
    n, m = len(rows), len(titles)
    fig = Figure(figsize=(3 * m, 3 * n))
    axes = fig.subplots(n, m, squeeze=False)
    for r, row in enumerate(rows):
        for c, picture in enumerate(row):
            ax = axes[r][c]
            ax.imshow(picture if picture.ndim == 3 else colorize(picture), interpolation="nearest")
            ax.set_xticks([]), ax.set_yticks([])
            if r == 0:
                ax.set_title(titles[c])
            if c == 0 and row_labels:
                ax.set_ylabel(row_labels[r], fontsize=8)
    fig.tight_layout()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=80)
    return out


def confusion_figure(matrix: np.ndarray, class_names: Sequence[str]) -> Figure:
    """Row-normalised confusion matrix (rows: truth, columns: prediction)."""
    rows = matrix.sum(1, keepdims=True)
    share = np.divide(matrix, rows, out=np.zeros(matrix.shape, float), where=rows > 0)
    n = len(class_names)
    fig = Figure(figsize=(0.45 * n + 3, 0.45 * n + 2.5), dpi=72)
    ax = fig.subplots()
    im = ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(n), class_names, rotation=90, fontsize=7)
    ax.set_yticks(range(n), class_names, fontsize=7)
    ax.set_xlabel("prediction"), ax.set_ylabel("truth")
    fig.colorbar(im, ax=ax, fraction=0.046)
    fig.tight_layout()
    return fig


def curves_figure(history: Sequence[dict]) -> Figure:
    """Loss and Dice per epoch, train and validation."""
    epochs = [h["epoch"] + 1 for h in history]
    fig = Figure(figsize=(9, 3.5), dpi=72)
    loss_ax, dice_ax = fig.subplots(1, 2)
    for key, ax in (("train_loss", loss_ax), ("val_loss", loss_ax), ("train_dice", dice_ax), ("val_dice", dice_ax)):
        values = [h.get(key) for h in history]
        if any(v is not None for v in values):
            ax.plot(epochs, [np.nan if v is None else v for v in values], marker="o", label=key)
    for ax, title in ((loss_ax, "loss"), (dice_ax, "Dice")):
        ax.set_xlabel("epoch"), ax.set_title(title), ax.legend(), ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def comparison_figure(values: dict[str, Sequence[float]], metric: str) -> Figure:
    """Mean ± std bars per config with every seed's value as a dot."""
    labels = list(values)
    fig = Figure(figsize=(1.8 * len(labels) + 2, 3.5), dpi=72)
    ax = fig.subplots()
    for i, label in enumerate(labels):
        v = np.asarray(values[label], float)
        ax.bar(i, v.mean(), yerr=v.std(ddof=1) if len(v) > 1 else 0, capsize=6, alpha=0.6)
        ax.plot(np.full(len(v), i), v, "k.", markersize=8)
    ax.set_xticks(range(len(labels)), labels)
    ax.set_ylabel(f"validation {metric}")
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return fig
