import math

import pytest
import torch
from torchmetrics.classification import MulticlassAccuracy, MulticlassF1Score, MulticlassJaccardIndex

from hybridunet.metrics import ConfusionMatrix, SoftDiceStudy

C = 7


def random_batches(seed: int, absent: int | None = None):
    g = torch.Generator().manual_seed(seed)
    for _ in range(3):
        logits = torch.randn(2, C, 17, 23, generator=g)
        target = torch.randint(0, C, (2, 17, 23), generator=g)
        target[torch.rand(target.shape, generator=g) < 0.2] = 255
        if absent is not None:  # a class that occurs in neither truth nor prediction
            logits[:, absent] = -1e9
            target[target == absent] = 255
        yield logits, target


@pytest.mark.parametrize("absent", [None, 3])
def test_every_figure_equals_torchmetrics(absent):
    cm = ConfusionMatrix(C)
    tm = {
        "dice": MulticlassF1Score(C, average="macro", ignore_index=255),  # Dice is F1 per class
        "miou": MulticlassJaccardIndex(C, average="macro", ignore_index=255),
        "pixel_acc": MulticlassAccuracy(C, average="micro", ignore_index=255),
        "per_class_dice": MulticlassF1Score(C, average=None, ignore_index=255),
        "per_class_iou": MulticlassJaccardIndex(C, average=None, ignore_index=255),
    }
    for logits, target in random_batches(0, absent):
        cm.update(logits, target)
        for metric in tm.values():
            metric.update(logits, target)
    ours = cm.compute()
    for key in ("dice", "miou", "pixel_acc"):
        assert ours[key] == pytest.approx(float(tm[key].compute()), abs=1e-6), key
    for key in ("per_class_dice", "per_class_iou"):
        theirs = tm[key].compute().tolist()
        for c, value in enumerate(ours[key].values()):
            if c == absent:
                assert math.isnan(value)
            else:
                assert value == pytest.approx(theirs[c], abs=1e-6)


def test_batches_merge_like_one_pass_and_labels_equal_logits():
    whole, parts = ConfusionMatrix(C), [ConfusionMatrix(C), ConfusionMatrix(C)]
    batches = list(random_batches(1))
    for i, (logits, target) in enumerate(batches):
        whole.update(logits.argmax(1), target)
        parts[i % 2].update(logits, target)
    assert torch.equal(parts[0].merge(parts[1]).matrix, whole.matrix)


def test_bad_targets_and_shapes_fail_clearly():
    cm = ConfusionMatrix(3)
    with pytest.raises(ValueError, match=r"outside 0\.\.2.*max 5"):
        cm.update(torch.zeros(1, 2, 2, dtype=torch.long), torch.full((1, 2, 2), 5))
    with pytest.raises(ValueError, match=r"differ in shape"):
        cm.update(torch.zeros(1, 2, 3), torch.zeros(1, 2, 2))
    with pytest.raises(ValueError, match=r"predicted labels must lie in 0\.\.2, got min 0, max 3"):
        cm.update(torch.tensor([[[0, 3]]]), torch.zeros(1, 1, 2, dtype=torch.long))
    assert int(cm.matrix.sum()) == 0  # a refused batch adds nothing


def test_soft_dice_study_matches_a_keras_style_formula():
    g = torch.Generator().manual_seed(2)
    logits, target = torch.randn(2, C, 5, 6, generator=g), torch.randint(0, C, (2, 5, 6), generator=g)
    metric = SoftDiceStudy()
    metric.update(logits, target)
    y = torch.nn.functional.one_hot(target, C).permute(0, 3, 1, 2).float()
    p = torch.sigmoid(logits)
    expected = (2 * (y * p).sum() + 1) / (y.sum() + p.sum() + 1)
    assert metric.compute() == pytest.approx(float(expected), rel=1e-6)
