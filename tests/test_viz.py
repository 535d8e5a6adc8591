"""The charts a tracked run logs, drawn with matplotlib."""

import numpy as np
import torch

from hybridunet.data.transforms import NORMALIZATIONS, eval_transform, to_picture
from hybridunet.viz import confusion_figure, curves_figure, save_run_charts


def test_confusion_figure_shades_and_labels_each_cell_by_its_share_of_the_truth_row():
    matrix = np.array([[9, 1, 0], [0, 0, 0], [5, 0, 5]])
    fig = confusion_figure(matrix, ["road", "sidewalk", "traffic light"])
    ax = fig.axes[0]
    share = np.array([[0.9, 0.1, 0.0], [0.0, 0.0, 0.0], [0.5, 0.0, 0.5]])
    np.testing.assert_allclose(ax.images[0].get_array(), share)
    labels = {(round(t.get_position()[1]), round(t.get_position()[0])): t.get_text() for t in ax.texts}
    assert labels == {(0, 0): "90", (0, 1): "10", (2, 0): "50", (2, 2): "50"}  # empty cells stay blank
    assert [t.get_text() for t in ax.get_yticklabels()] == ["road", "sidewalk", "traffic light"]


def test_curves_figure_keeps_its_legend_off_the_data_and_draws_gaps(tmp_path):
    history = [{"epoch": 0, "train_loss": 1.0, "val_loss": None, "train_dice": 0.2, "val_dice": 0.1},
               {"epoch": 1, "train_loss": 0.5, "val_loss": 0.7, "train_dice": 0.4, "val_dice": float("nan")}]
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    fig = curves_figure(history)
    renderer = FigureCanvasAgg(fig).get_renderer()
    fig.draw(renderer)
    (legend,) = fig.legends
    box = legend.get_window_extent(renderer)
    assert [t.get_text() for t in legend.get_texts()] == ["train", "val"]
    for ax in fig.axes:
        assert not box.overlaps(ax.get_window_extent(renderer)), ax.get_title()
    val_loss = fig.axes[0].lines[1].get_ydata()
    assert np.isnan(val_loss[0]) and val_loss[1] == 0.7
    save_run_charts(tmp_path, np.eye(3, dtype=int), ["a", "b", "c"], history[:1])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["confusion_matrix.png", "learning_curves.png"]


def test_to_picture_undoes_the_normalisation():
    image = np.random.default_rng(0).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    for normalize in NORMALIZATIONS:
        x = eval_transform(None, normalize)(image=image)["image"]
        assert isinstance(x, torch.Tensor)
        assert np.abs(to_picture(x, normalize).astype(int) - image).max() <= 1
