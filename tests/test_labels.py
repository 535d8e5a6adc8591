import cv2
import numpy as np
import pytest
from cityscapesscripts.helpers import labels as reference

from hybridunet.data.labels import (
    CLASS_NAMES,
    LABELS,
    ColorMapper,
    fit_palette,
    label_id_to_train_id,
)


def test_label_table_matches_cityscapesscripts():
    ours = [(x.name, x.id, x.train_id, x.category, x.color) for x in LABELS]
    theirs = [(x.name, x.id, x.trainId, x.category, x.color) for x in reference.labels]
    assert ours == theirs
    assert CLASS_NAMES == tuple(reference.trainId2label[i].name for i in range(19))


def test_label_id_table_matches_cityscapesscripts():
    table = label_id_to_train_id()
    for label_id in range(34):
        expected = reference.id2label[label_id].trainId
        assert table[label_id] == (255 if expected in (-1, 255) else expected), reference.id2label[label_id].name


def _expected_train_id(color):
    """The evaluated class wins where labels share a colour; void colours are ignore."""
    train_ids = {x.trainId for x in reference.labels if x.color == color}
    evaluated = sorted(t for t in train_ids if 0 <= t < 255)
    return evaluated[0] if evaluated else 255


def test_jpeg_compressed_patches_of_every_label_colour_land_on_their_class():
    colors = sorted({x.color for x in reference.labels})
    patch = 16
    image = np.zeros((patch, patch * len(colors), 3), np.uint8)
    for i, color in enumerate(colors):
        image[:, i * patch : (i + 1) * patch] = color
    ok, data = cv2.imencode(".jpg", image[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 75])  # 4:2:0, like most JPEGs
    decoded = cv2.imdecode(data, cv2.IMREAD_COLOR)[..., ::-1].copy()
    mask, _ = ColorMapper.cityscapes()(decoded)
    for i, color in enumerate(colors):
        inner = mask[4:-4, i * patch + 4 : (i + 1) * patch - 4]  # away from the blended borders
        assert (inner == _expected_train_id(color)).all(), f"{color} -> {np.unique(inner)}"


@pytest.mark.parametrize(
    "color,train_id",
    [((153, 153, 153), 5), ((0, 0, 142), 13), ((0, 0, 0), 255), ((81, 0, 81), 255), ((0, 0, 90), 255), ((0, 80, 100), 16)],
)
def test_shared_and_void_colours_resolve_as_cityscapes_evaluates_them(color, train_id):
    mask, unmatched = ColorMapper.cityscapes()(np.full((2, 2, 3), color, np.uint8))
    assert (mask == train_id).all() and unmatched == 0


def test_colours_far_from_every_label_are_ignored_and_counted():
    rgb = np.zeros((4, 4, 3), np.uint8)
    rgb[:2] = (128, 64, 128)  # road
    rgb[2:] = (255, 255, 255)  # no Cityscapes colour is near white
    mask, unmatched = ColorMapper.cityscapes()(rgb)
    assert (mask[:2] == 0).all() and (mask[2:] == 255).all() and unmatched == 8


def test_fitted_palette_round_trips_through_json(tmp_path):
    rng = np.random.default_rng(0)
    colors = np.array([[10, 200, 10], [200, 10, 10], [10, 10, 200]], np.uint8)
    masks = [colors[rng.integers(0, 3, (16, 16))] for _ in range(4)]
    palette = fit_palette(masks, k=3, seed=0)
    palette.to_json(tmp_path / "palette.json", names=["a", "b", "c"])
    loaded = ColorMapper.from_json(tmp_path / "palette.json")
    for mask in masks:
        ours, _ = loaded(mask)
        # clusters are numbered by size; each true colour must map to one cluster only
        for c in colors:
            assert len(np.unique(ours[(mask == c).all(-1)])) == 1
    (tmp_path / "bad.json").write_text('{"colours": []}')
    with pytest.raises(ValueError, match="bad.json is not a palette JSON"):
        ColorMapper.from_json(tmp_path / "bad.json")
