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
