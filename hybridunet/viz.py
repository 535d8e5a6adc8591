"""Pictures for people: sample grids, image | truth | prediction panels, and the charts a tracked run logs."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

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


# The two charts below are drawn with Pillow, not matplotlib: every tracked run logs them
# at its end, and matplotlib's layout pass costs ~0.3 s each, a tenth of a tiny run.
_BLUES = np.array([(247, 251, 255), (222, 235, 247), (198, 219, 239), (158, 202, 225), (107, 174, 214),
                   (66, 146, 198), (33, 113, 181), (8, 81, 156), (8, 48, 107)], float)
_SERIES = {"train": (31, 119, 180), "val": (255, 127, 14)}  # matplotlib's tab:blue and tab:orange
_INK, _GRID, _WHITE = (40, 40, 40), (225, 225, 225), (255, 255, 255)


@functools.lru_cache(maxsize=None)
def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    return ImageFont.load_default(size=size)


def _blues(share: np.ndarray) -> np.ndarray:
    """Colour for each value in [0, 1] on matplotlib's "Blues" ramp (uint8 RGB)."""
    x = np.clip(share, 0, 1) * (len(_BLUES) - 1)
    return np.stack([np.interp(x, np.arange(len(_BLUES)), _BLUES[:, c]) for c in range(3)], -1).round().astype(np.uint8)


def confusion_image(matrix: np.ndarray, class_names: Sequence[str], cell: int = 24) -> Image.Image:
    """Row-normalised confusion matrix (rows: truth, columns: prediction), each cell
    labelled with its percentage of the row."""
    rows = matrix.sum(1, keepdims=True)
    share = np.divide(matrix, rows, out=np.zeros(matrix.shape, float), where=rows > 0)
    n = len(class_names)
    font, small = _font(11), _font(9)
    label_w = int(max(font.getlength(name) for name in class_names)) + 10
    left, top, pad = label_w + 22, label_w + 24, 12
    title = "prediction (% of each truth row)"
    width = max(left + n * cell + pad, left + int(font.getlength(title)) + pad)
    canvas = Image.new("RGB", (width, top + n * cell + pad), _WHITE)
    cells = np.repeat(np.repeat(_blues(share), cell, 0), cell, 1)
    canvas.paste(Image.fromarray(cells), (left, top))
    draw = ImageDraw.Draw(canvas)
    for i, name in enumerate(class_names):
        y = top + i * cell + cell // 2
        draw.text((left - 6, y), name, fill=_INK, font=font, anchor="rm")
        column = Image.new("RGB", (label_w, cell), _WHITE)
        ImageDraw.Draw(column).text((4, cell // 2), name, fill=_INK, font=font, anchor="lm")
        canvas.paste(column.rotate(90, expand=True), (left + i * cell, top - label_w - 4))
        for j in range(n):
            if share[i, j] >= 0.005:  # 0 for a row without truth pixels
                ink = _WHITE if share[i, j] > 0.5 else _INK
                draw.text((left + j * cell + cell // 2, y), f"{100 * share[i, j]:.0f}", fill=ink, font=small, anchor="mm")
    draw.rectangle((left - 1, top - 1, left + n * cell, top + n * cell), outline=_INK)
    caption = Image.new("RGB", (60, 16), _WHITE)
    ImageDraw.Draw(caption).text((30, 8), "truth", fill=_INK, font=font, anchor="mm")
    canvas.paste(caption.rotate(90, expand=True), (2, top + n * cell // 2 - 30))
    draw.text((left, 4), title, fill=_INK, font=font, anchor="lt")
    return canvas


def _ticks(low: float, high: float, count: int = 5) -> np.ndarray:
    """Round tick values covering [low, high]."""
    step = (high - low) / max(count - 1, 1)
    magnitude = 10 ** np.floor(np.log10(step))
    step = min((m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= step), default=step)
    return np.arange(np.floor(low / step) * step, high + step * 0.999, step)


def _line_chart(title: str, epochs: list[int], series: dict[str, list[float | None]], size=(360, 260)) -> Image.Image:
    width, height = size
    left, right, top, bottom = 52, 12, 26, 34
    canvas = Image.new("RGB", size, _WHITE)
    draw = ImageDraw.Draw(canvas)
    font = _font(11)
    values = [v for vs in series.values() for v in vs if v is not None and np.isfinite(v)]
    low, high = (min(values), max(values)) if values else (0.0, 1.0)
    if high - low < 1e-9:
        low, high = low - 0.5, high + 0.5
    yticks = _ticks(low, high)
    low, high = float(yticks[0]), float(yticks[-1])
    first, last = epochs[0], max(epochs[-1], epochs[0] + 1)
    plot_w, plot_h = width - left - right, height - top - bottom

    def point(epoch: float, value: float) -> tuple[float, float]:
        return (left + (epoch - first) / (last - first) * plot_w, top + (high - value) / (high - low) * plot_h)

    for tick in yticks:
        _, y = point(first, tick)
        draw.line((left, y, left + plot_w, y), fill=_GRID)
        draw.text((left - 5, y), f"{tick:.3g}", fill=_INK, font=font, anchor="rm")
    every = max(1, int(np.ceil(len(epochs) / 10)))
    for epoch in epochs[::every]:
        x, _ = point(epoch, low)
        draw.line((x, top + plot_h, x, top + plot_h + 4), fill=_INK)
        draw.text((x, top + plot_h + 6), str(epoch), fill=_INK, font=font, anchor="mt")
    draw.rectangle((left, top, left + plot_w, top + plot_h), outline=_INK)
    draw.text((left + plot_w / 2, 6), title, fill=_INK, font=font, anchor="mt")
    draw.text((left + plot_w / 2, height - 4), "epoch", fill=_INK, font=font, anchor="mb")
    for k, (name, vs) in enumerate(series.items()):
        colour = _SERIES[name.split("_")[0]]
        points = [point(e, v) if v is not None and np.isfinite(v) else None for e, v in zip(epochs, vs)]
        for a, b in zip(points, points[1:]):
            if a and b:
                draw.line((*a, *b), fill=colour, width=2)
        for p in filter(None, points):
            draw.ellipse((p[0] - 3, p[1] - 3, p[0] + 3, p[1] + 3), fill=colour)
        legend_y = top + 8 + 15 * k
        draw.line((left + plot_w - 90, legend_y, left + plot_w - 72, legend_y), fill=colour, width=2)
        draw.text((left + plot_w - 68, legend_y), name, fill=_INK, font=font, anchor="lm")
    return canvas


def curves_image(history: Sequence[dict]) -> Image.Image:
    """Loss and Dice per epoch (1-based), train and validation, side by side."""
    epochs = [h["epoch"] + 1 for h in history]
    charts = []
    for title, keys in (("loss", ("train_loss", "val_loss")), ("Dice", ("train_dice", "val_dice"))):
        series = {key: [h.get(key) for h in history] for key in keys}
        series = {key: vs for key, vs in series.items() if any(v is not None for v in vs)}
        charts.append(_line_chart(title, epochs, series))
    canvas = Image.new("RGB", (sum(c.width for c in charts), charts[0].height), _WHITE)
    for k, chart in enumerate(charts):
        canvas.paste(chart, (k * charts[0].width, 0))
    return canvas


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
