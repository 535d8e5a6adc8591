"""Pictures for people: sample grids, image | truth | prediction panels, and the charts a tracked run logs."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from hybridunet.data.labels import colorize

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def panel_grid(
    rows: Sequence[Sequence[np.ndarray]], titles: Sequence[str], out: str | Path, row_labels: Sequence[str] | None = None
) -> Path:
    """Save a grid: one row per sample, one column per picture (RGB arrays, or class masks
    which are coloured in the Cityscapes palette)."""
    from matplotlib.figure import Figure  # the object API: no pyplot state, no display needed

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
    """Row-normalised confusion matrix (rows: truth, columns: prediction), each cell
    labelled with its percentage of the row."""
    from matplotlib.figure import Figure

    rows = matrix.sum(1, keepdims=True)
    share = np.divide(matrix, rows, out=np.zeros(matrix.shape, float), where=rows > 0)
    n = len(class_names)
    # Fixed margins sized for the labels (a layout engine would draw the figure twice more).
    label = 0.075 * max(len(c) for c in class_names) + 0.5  # inches
    cell = 0.3
    width, height = label + n * cell + 1.1, label + n * cell + 0.3
    fig = Figure(figsize=(width, height), dpi=80)
    ax = fig.add_axes((label / width, label / height, n * cell / width, n * cell / height))
    image = ax.imshow(share, cmap="Blues", vmin=0, vmax=1, aspect="auto")
    for i, j in zip(*np.nonzero(share >= 0.01)):  # cells of 1% or more; 0 for a row without truth pixels
        ax.text(j, i, f"{100 * share[i, j]:.0f}", ha="center", va="center", fontsize=7,
                color="white" if share[i, j] > 0.5 else "0.15")
    ax.set_xticks(range(n), class_names, rotation=90, fontsize=8)
    ax.set_yticks(range(n), class_names, fontsize=8)
    ax.set_xlabel("prediction (% of each truth row)")
    ax.set_ylabel("truth")
    cax = fig.add_axes(((label + n * cell + 0.25) / width, label / height, 0.15 / width, n * cell / height))
    fig.colorbar(image, cax=cax, label="share of the truth row")
    return fig


def curves_figure(history: Sequence[dict]) -> Figure:
    """Loss and Dice per epoch (1-based), train and validation, side by side; the legend
    sits under the charts, never over the data."""
    from matplotlib.figure import Figure

    epochs = [h["epoch"] + 1 for h in history]
    fig = Figure(figsize=(8, 3.4), dpi=80)
    fig.subplots_adjust(left=0.07, right=0.98, top=0.91, bottom=0.27, wspace=0.2)  # room below for the legend
    axes = fig.subplots(1, 2)
    for ax, (title, keys) in zip(axes, (("loss", ("train_loss", "val_loss")), ("Dice", ("train_dice", "val_dice")))):
        for key, colour in zip(keys, ("tab:blue", "tab:orange")):
            values = np.array([np.nan if h.get(key) is None else h[key] for h in history], float)
            if np.isfinite(values).any():
                ax.plot(epochs, values, "o-", color=colour, markersize=4, label=key.split("_")[0])
        ax.set_title(title)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        ax.xaxis.get_major_locator().set_params(integer=True)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncols=2, frameon=False)
    return fig


def save_run_charts(folder: str | Path, matrix: np.ndarray | None, class_names: list[str], history: list[dict]) -> None:
    """The confusion matrix (None when a resumed run found no better epoch) and the
    learning curves as PNGs in `folder`, drawn once at the end of a run."""
    fast = {"pil_kwargs": {"compress_level": 1}}  # a third of the default's time, for a somewhat larger file
    Path(folder).mkdir(parents=True, exist_ok=True)
    if matrix is not None:
        confusion_figure(matrix, class_names).savefig(Path(folder, "confusion_matrix.png"), **fast)
    if history:
        curves_figure(history).savefig(Path(folder, "learning_curves.png"), **fast)


def comparison_figure(values: dict[str, Sequence[float]], metric: str) -> Figure:
    """Mean ± std bars per config with every seed's value as a dot."""
    from matplotlib.figure import Figure

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


def comparison_panels(curves: dict[str, dict[int, Sequence[float]]], per_class: dict[str, dict[str, float]],
                      diffs: dict[str, dict[int, float]], metric: str = "Dice") -> dict[str, Figure]:
    """A comparison as three pictures, each readable as one of MLflow's image charts:
    ``curves`` (each arm's validation curve, mean over seeds with a band of one std),
    ``per_class`` (each arm's per-class Dice beside the others') and ``per_seed`` (each pair's
    difference per seed), and ``all`` (the three side by side, for the artifact).

    curves: arm -> seed -> val Dice per epoch; per_class: arm -> class -> mean Dice;
    diffs: "B - A" -> seed -> difference of the deciding metric.
    """
    from matplotlib.figure import Figure

    draw = {"curves": lambda ax: _curves(ax, curves, metric), "per_class": lambda ax: _per_class(ax, per_class, metric),
            "per_seed": lambda ax: _per_seed(ax, diffs, metric)}
    sizes = {"curves": (6, 4.5), "per_class": (8, 4.5), "per_seed": (5, 4.5)}
    out = {}
    for name, paint in draw.items():
        fig = Figure(figsize=sizes[name], dpi=80)
        paint(fig.subplots())
        fig.tight_layout()
        out[name] = fig
    fig = Figure(figsize=(19, 4.5), dpi=80)
    for ax, paint in zip(fig.subplots(1, 3, gridspec_kw={"width_ratios": [6, 8, 5]}), draw.values()):
        paint(ax)
    fig.tight_layout()
    out["all"] = fig
    return out


def _curves(ax, curves: dict[str, dict[int, Sequence[float]]], metric: str) -> None:
    for label, seeds in curves.items():
        length = min((len(v) for v in seeds.values()), default=0)
        if not length:
            continue
        values = np.asarray([list(v)[:length] for v in seeds.values()], float)
        mean, std = values.mean(0), values.std(0, ddof=1) if len(values) > 1 else np.zeros(length)
        epochs = np.arange(1, length + 1)
        (line,) = ax.plot(epochs, mean, linewidth=2, label=f"{label} ({len(values)} seeds)")
        ax.fill_between(epochs, mean - std, mean + std, color=line.get_color(), alpha=0.2)
    ax.set(xlabel="epoch", ylabel=f"validation {metric}", title="learning curves (mean ± std over seeds)")
    ax.legend(fontsize=9)
    ax.grid(alpha=0.3)


def _per_class(ax, per_class: dict[str, dict[str, float]], metric: str) -> None:
    classes = list(dict.fromkeys(name for values in per_class.values() for name in values))
    width = 0.8 / max(1, len(per_class))
    for i, (label, values) in enumerate(per_class.items()):
        ax.bar(np.arange(len(classes)) + i * width, [values.get(name) or 0.0 for name in classes], width, label=label)
    ax.set_xticks(np.arange(len(classes)) + width * (len(per_class) - 1) / 2, classes, rotation=60, ha="right",
                  fontsize=8)
    ax.set(ylabel=f"validation {metric}", title="per class (mean over seeds)")
    ax.legend(fontsize=9)
    ax.grid(axis="y", alpha=0.3)


def _per_seed(ax, diffs: dict[str, dict[int, float]], metric: str) -> None:
    for i, by_seed in enumerate(diffs.values()):
        v = np.asarray(list(by_seed.values()), float)
        ax.plot(np.full(len(v), i), v, "o", alpha=0.7)
        ax.plot([i - 0.25, i + 0.25], [v.mean(), v.mean()], "k-", linewidth=2)
    ax.axhline(0, color="grey", linewidth=1)
    ax.set_xticks(range(len(diffs)), list(diffs), fontsize=8)
    ax.set(ylabel=f"paired difference of {metric}", title="each seed's difference (bar: mean)")
    ax.set_xlim(-0.6, len(diffs) - 0.4)
    ax.grid(axis="y", alpha=0.3)


def figure_array(fig: Figure) -> np.ndarray:
    """The figure as an RGB uint8 array (for MLflow's image logging, which draws it in the
    chart view)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()
