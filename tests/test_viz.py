"""The charts a tracked run logs, drawn with Pillow."""

import numpy as np
import torch

from hybridunet.data.transforms import NORMALIZATIONS, eval_transform, to_picture
from hybridunet.viz import _blues, confusion_image, curves_image


def test_confusion_image_shades_each_cell_by_its_share_of_the_truth_row():
    matrix = np.array([[9, 1, 0], [0, 0, 0], [5, 0, 5]])
    image = np.asarray(confusion_image(matrix, ["road", "sidewalk", "traffic light"], cell=24))
    share = np.array([[0.9, 0.1, 0.0], [0.0, 0.0, 0.0], [0.5, 0.0, 0.5]])
    top, left = np.argwhere((image == _blues(np.array(0.9))).all(-1))[0]  # cell (0, 0)'s corner
    darkness = [[int(765 - image[top + i * 24 + 2, left + j * 24 + 2].astype(int).sum()) for j in range(3)]
                for i in range(3)]
    assert darkness[0][0] > darkness[2][0] == darkness[2][2] > darkness[0][1] > darkness[0][2] == darkness[1][1]
    corners = image[top + 2 :: 24, left + 2 :: 24][:3, :3]
    assert (corners == _blues(share)).all()

def test_curves_image_draws_runs_with_missing_values_and_a_single_epoch():
    history = [{"epoch": 0, "train_loss": 1.0, "val_loss": None, "val_dice": 0.1},
               {"epoch": 1, "train_loss": 0.5, "val_loss": 0.7, "val_dice": float("nan")}]
    assert curves_image(history).size == curves_image(history[:1]).size
    pixels = np.asarray(curves_image(history))
    assert (pixels != 255).any(axis=-1).mean() > 0.01  # something was drawn


def test_to_picture_undoes_the_normalisation():
    image = np.random.default_rng(0).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    for normalize in NORMALIZATIONS:
        x = eval_transform(None, normalize)(image=image)["image"]
        assert isinstance(x, torch.Tensor)
        assert np.abs(to_picture(x, normalize).astype(int) - image).max() <= 1
