"""The in-memory split and its torch augmentation, held against the albumentations path."""

from __future__ import annotations

import albumentations as A
import numpy as np
import pytest
import torch
from albumentations.augmentations.pixel import functional as fpixel

from hybridunet.data import open_dataset, train_transform
from hybridunet.data.device_augment import (
    AugmentParams,
    augment_batch,
    brightness,
    contrast,
    draw_params,
    hue,
    saturation,
    scale_and_crop,
)
from hybridunet.data.in_memory import InMemoryLoader, decode_split
from hybridunet.engine import fit

SIZE = 64


@pytest.fixture(scope="module")
def resized(tiny_data):
    """Six training pairs after train_transform's first step (Resize), as uint8 arrays."""
    images, masks = decode_split(open_dataset(tiny_data, "train").head(6), SIZE, progress=False)
    return images.numpy(), masks.numpy()


def _chw(images: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float()


@pytest.mark.parametrize("op, reference, factor, mean_tol, max_tol", [
    (brightness, fpixel.adjust_brightness_torchvision, 1.17, 0.0, 0),
    (brightness, fpixel.adjust_brightness_torchvision, 0.83, 0.0, 0),
    (contrast, fpixel.adjust_contrast_torchvision, 0.81, 0.0, 0),
    (contrast, fpixel.adjust_contrast_torchvision, 1.2, 0.0, 0),
    (saturation, fpixel.adjust_saturation_torchvision, 1.19, 0.01, 1),
    (saturation, fpixel.adjust_saturation_torchvision, 0.8, 0.01, 1),
    # OpenCV rounds hue, saturation and value to 8 bits between its two conversions
    (hue, fpixel.adjust_hue_torchvision, 0.05, 0.5, 12),
    (hue, fpixel.adjust_hue_torchvision, -0.031, 0.5, 12),
])
def test_each_colour_operation_matches_albumentations(resized, op, reference, factor, mean_tol, max_tol):
    images = resized[0]
    ours = op(_chw(images), torch.full((len(images),), factor))
    theirs = _chw(np.stack([reference(image, factor) for image in images]))
    diff = (ours - theirs).abs()
    assert diff.mean() <= mean_tol and diff.max() <= max_tol
    if op is hue:
        assert (diff > 1).float().mean() < 0.01


@pytest.mark.parametrize("scale, crop", [(1.37, (0.3, 0.8)), (1.5, (0.99, 0.0)), (1.13, (0.6, 0.3)),
                                         (0.8, (0.5, 0.5)), (0.77, (0.1, 0.9)), (1.0, (0.9, 0.1))])
def test_scale_and_crop_matches_albumentations(resized, scale, crop):
    """RandomScale + RandomCrop(pad_if_needed) at the same scale and crop start: masks exact,
    images within one level."""
    images, masks = resized
    expected_images, expected_masks = [], []
    for image, mask in zip(images, masks):
        out = A.RandomScale(scale_limit=(scale - 1, scale - 1), p=1)(image=image, mask=mask)
        out = A.PadIfNeeded(SIZE, SIZE, position="center", fill=0, fill_mask=255)(**out)
        h, w = out["mask"].shape
        y, x = int((h - SIZE + 1) * crop[0]), int((w - SIZE + 1) * crop[1])
        expected_images.append(out["image"][y:y + SIZE, x:x + SIZE])
        expected_masks.append(out["mask"][y:y + SIZE, x:x + SIZE])
    n = len(images)
    ours_images, ours_masks = scale_and_crop(_chw(images), torch.from_numpy(masks).long(),
                                             np.full(n, scale), np.tile(crop, (n, 1)))
    assert torch.equal(ours_masks, torch.from_numpy(np.stack(expected_masks)).long())
    assert (ours_images.round() - _chw(np.stack(expected_images))).abs().max() <= 1


def test_without_augmentation_both_paths_give_the_same_batch(tiny_data):
    data = open_dataset(tiny_data, "train", transform=train_transform(SIZE, (1, 1), 0, 0, "imagenet"))
    loader = InMemoryLoader(data.head(5), 5, SIZE, "imagenet", progress=False)
    x, y = next(iter(loader))
    order = list(loader.sampler)
    expected = [data[k] for k in order]
    assert torch.allclose(x, torch.stack([e[0] for e in expected]), atol=1e-6)
    assert torch.equal(y, torch.stack([e[1] for e in expected]))


def test_flip_and_jitter_draws_follow_the_albumentations_probabilities():
    params = draw_params([(0, 0, i) for i in range(2000)], (0.75, 1.5), 0.5, 0.2)
    assert abs(params.flip.mean() - 0.5) < 0.04
    jittered = (params.jitter != [1.0, 1.0, 1.0, 0.0]).any(1)
    assert abs(jittered.mean() - 0.8) < 0.04
    assert params.scale.min() >= 0.75 and params.scale.max() <= 1.5
    assert np.abs(params.jitter[jittered, :3] - 1).max() <= 0.2 and np.abs(params.jitter[:, 3]).max() <= 0.05
    assert all(sorted(row) == [0, 1, 2, 3] for row in params.order)
    # each sample's draw depends on its key alone, not on its batch
    again = draw_params([(0, 0, 7), (0, 3, 1)], (0.75, 1.5), 0.5, 0.2)
    assert again.scale[0] == params.scale[7] and again.scale[1] != params.scale[1]


def test_augmented_batches_keep_image_and_mask_aligned_like_the_albumentations_path(tiny_data, resized):
    """Where a shrunk scene was padded, the image is black and the mask ignored; over many
    draws the ignored share matches the albumentations path's."""
    images, masks = resized
    keys = [(0, epoch, i) for epoch in range(20) for i in range(len(images))]
    params = draw_params(keys, (0.75, 1.5), 0.0, 0.0)
    rows = torch.tensor([k[2] for k in keys])
    x, y = augment_batch(torch.from_numpy(images)[rows], torch.from_numpy(masks)[rows], params, "unit")
    shrunk = 0
    for i, scale in enumerate(params.scale):
        pad = (SIZE - int(SIZE * scale)) // 2  # rows and columns the crop padded in on top and left
        if pad > 0:
            shrunk += 1
            assert (y[i, :pad] == 255).all() and (y[i, :, :pad] == 255).all()
            assert (x[i, :, :pad] == 0).all() and (x[i, :, :, :pad] == 0).all()
            assert (y[i, pad:, pad:pad + 4] != 255).any()  # the scaled scene starts right after
    assert shrunk > 10
    transform = train_transform(SIZE, (0.75, 1.5), 0.0, 0.0, "unit")
    data = open_dataset(tiny_data, "train", transform=transform).head(len(images))
    theirs = torch.stack([data[epoch * len(images) + i][1] for epoch in range(20) for i in range(len(images))])
    assert abs((y == 255).float().mean() - (theirs == 255).float().mean()) < 0.03


def test_loader_shards_epochs_like_the_dataloader_and_repeats(tiny_data):
    data = open_dataset(tiny_data, "train").head(7)
    ranks = [InMemoryLoader(data, 2, SIZE, "imagenet", (0.75, 1.5), 0.5, 0.2, rank=r, num_replicas=2,
                            progress=False) for r in range(2)]
    for loader in ranks:
        loader.sampler.set_epoch(3)
    seen = [k % 7 for loader in ranks for k in loader.sampler]
    assert sorted(set(seen)) == list(range(7)) and len(seen) == 8 and len(ranks[0]) == 2
    first = [b[0] for b in ranks[0]]
    assert all(torch.equal(a, b) for a, b in zip(first, [b[0] for b in ranks[0]]))


def test_fit_trains_on_the_in_memory_split(tiny_config, tiny_data, tmp_path):
    config = tiny_config(tiny_data, tmp_path / "run", "data.in_memory=true", "train.epochs=2")
    result = fit(config)
    assert np.isfinite(result["dice"]) and (tmp_path / "run" / "last.safetensors").exists()


def test_identity_parameters_change_nothing(resized):
    images, masks = resized
    n = len(images)
    params = AugmentParams(np.ones(n), np.zeros((n, 2)), np.zeros(n, bool), np.tile([1.0, 1.0, 1.0, 0.0], (n, 1)),
                           np.tile(np.arange(4), (n, 1)))
    x, y = augment_batch(torch.from_numpy(images), torch.from_numpy(masks), params, "unit")
    assert torch.equal((x * 255).round(), _chw(images)) and torch.equal(y, torch.from_numpy(masks).long())
