"""Pictures for people: sample grids and image | truth | prediction panels."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import matplotlib

matplotlib.use("Agg")  # files only; never needs a display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from hybridunet.data.labels import colorize  # noqa: E402


def panel_grid(
    rows: Sequence[Sequence[np.ndarray]], titles: Sequence[str], out: str | Path, row_labels: Sequence[str] | None = None
) -> Path:
    """Save a grid: one row per sample, one column per picture (RGB arrays, or class masks
    which are coloured in the Cityscapes palette)."""
    n, m = len(rows), len(titles)
    fig, axes = plt.subplots(n, m, figsize=(3 * m, 3 * n), squeeze=False)
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
    plt.close(fig)
    return out
