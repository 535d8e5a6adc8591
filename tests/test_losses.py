import pytest
import torch
import torch.nn.functional as F

from hybridunet.losses import LOSSES

C = 5


def batch(seed=0):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(2, C, 9, 11, generator=g, requires_grad=True)
    target = torch.randint(0, C, (2, 9, 11), generator=g)
    target[:, :3] = 255
    return logits, target


@pytest.mark.parametrize("name", LOSSES.names())
def test_every_loss_is_finite_differentiable_and_ignores_ignored_pixels(name):
    loss_fn = LOSSES.build(name)
    logits, target = batch()
    loss = loss_fn(logits, target)
    assert torch.isfinite(loss)
    loss.backward()
    assert logits.grad[:, :, :3].abs().sum() == 0  # nothing flows from ignored pixels
    changed = logits.detach().clone()
    changed[:, :, :3] = 100.0
    assert torch.allclose(loss_fn(changed, target), loss.detach())


def test_bce_is_the_study_loss_on_one_hot_targets():
    logits, target = batch(1)
    valid = target != 255
    onehot = F.one_hot(target[valid], C).float()
    expected = F.binary_cross_entropy_with_logits(logits.movedim(1, -1)[valid], onehot)
    assert torch.allclose(LOSSES.build("bce")(logits, target), expected)


def test_class_weights_reach_cross_entropy():
    logits, target = batch(2)
    weights = [1.0, 2.0, 0.5, 1.0, 3.0]
    expected = F.cross_entropy(logits, target, weight=torch.tensor(weights), ignore_index=255)
    assert torch.allclose(LOSSES.build("ce", class_weights=weights)(logits, target), expected)
    assert torch.allclose(
        LOSSES.build("dice_ce", class_weights=weights, dice_weight=0.0)(logits, target), expected
    )


def test_ohem_keeps_the_hard_pixels_and_at_least_min_kept():
    logits, target = batch(3)
    ohem = LOSSES.build("ohem_ce", threshold=1.0)
    assert torch.allclose(ohem(logits, target), F.cross_entropy(logits, target, ignore_index=255))  # all kept
    valid = target != 255
    prob = logits.softmax(1).gather(1, target.clamp(max=C - 1).unsqueeze(1)).squeeze(1)[valid]
    per_pixel = F.cross_entropy(logits, target, ignore_index=255, reduction="none")[valid]
    hard = prob <= 0.3
    assert torch.allclose(LOSSES.build("ohem_ce", threshold=0.3, min_kept=1)(logits, target), per_pixel[hard].mean())
    k = int(hard.sum()) + 10  # more than the hard ones: the k least confident pixels
    hardest = per_pixel[prob.argsort()[:k]]
    assert torch.allclose(LOSSES.build("ohem_ce", threshold=0.3, min_kept=k)(logits, target), hardest.mean())


@pytest.mark.parametrize("override,message", [
    ("loss.threshold=1.5", r"loss\.threshold=1\.5: expected a probability in \(0, 1\]"),
    ("loss.min_kept=0", r"loss\.min_kept=0: expected a positive integer"),
    ("loss.class_weights=[1,2]", r"loss\.class_weights has 2 weights for model\.num_classes=19"),
    ("loss.class_weights=[-1]", r"loss\.class_weights: weights must be >= 0"),
    ("loss.class_weights=median", r"loss\.class_weights"),
])
def test_bad_loss_values_fail_naming_the_key(tiny_yaml, override, message):
    import re

    from hybridunet.config import ConfigError, load_config

    name = ["loss.name=ohem_ce"] if "threshold" in override or "min_kept" in override else []
    with pytest.raises(ConfigError) as err:
        load_config(tiny_yaml, [*name, override])
    assert re.search(message, str(err.value)), str(err.value)


def test_computed_class_weights_follow_the_pixel_counts():
    import numpy as np

    from hybridunet.data.stats import ClassStats, class_weights

    stats = ClassStats(["a", "b", "c", "d"], np.array([700, 200, 100, 0]), np.array([3, 2, 1, 0]), 50, 3)
    inverse = class_weights(stats, "inverse", max_weight=100)
    freq = np.array([0.7, 0.2, 0.1])
    np.testing.assert_allclose(inverse[:3], (1 / freq) / (1 / freq).mean(), rtol=1e-5)
    assert inverse[3] == 1.0  # absent from training
    median = class_weights(stats, "median_frequency", max_weight=100)
    np.testing.assert_allclose(median[:3], (0.2 / freq) / (0.2 / freq).mean(), rtol=1e-5)
    assert max(class_weights(stats, "inverse", max_weight=1.5)) == 1.5  # clipped
    sqrt = class_weights(stats, "sqrt_inverse")
    assert sqrt[0] < sqrt[1] < sqrt[2]
