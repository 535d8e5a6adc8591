"""Procedural street scenes painted in the Cityscapes palette, in the Kaggle pairs layout.

No real data set can be downloaded on the project's machines, so this generator is the
default data for the demo, tests and benchmarks. Scenes use one-point perspective (a
vanishing point on the horizon; objects shrink toward it), draw far to near so near
objects occlude far ones, vary texture and lighting, and give neighbouring classes
overlapping colours (grey road, pavement, buildings, walls, cars and overcast sky;
green trees and grass) so that a model needs shape and context, not pixel colour.

Each image is a pure function of (seed, split, index): any subset can be regenerated.

- scene.py: classes, textures, the perspective `View` and the `Canvas` that paints photo and labels;
- rendering.py: `SceneRenderer` and `render_scene`;
- dataset.py: writing splits, `synthesize`, `ensure_synthetic`, and the set's record (synthetic.json).
"""

from hybridunet.data.synthetic.dataset import (
    GENERATOR_VERSION,
    LABEL_COLORS,
    TRAIN_IDS,
    ensure_synthetic,
    generator_record,
    read_record,
    splits_of,
    synthesize,
    write_record,
    write_split,
)
from hybridunet.data.synthetic.rendering import SceneRenderer, render_scene

__all__ = [
    "GENERATOR_VERSION", "LABEL_COLORS", "SceneRenderer", "TRAIN_IDS", "ensure_synthetic", "generator_record",
    "read_record", "render_scene", "splits_of", "synthesize", "write_record", "write_split",
]
