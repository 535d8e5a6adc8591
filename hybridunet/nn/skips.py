"""Skip fusions: merge the upsampled decoder map with the encoder map of the same scale.

A skip is built as (channels, skip_channels) and exposes `out_channels`, the width of
what it returns, so the decoder block after it knows its input width.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from hybridunet.nn.layers import ConvNormAct, NotScriptable
from hybridunet.registry import Registry

SKIPS: Registry[nn.Module] = Registry("skip")


@SKIPS.register("concat")
class ConcatSkip(nn.Module):
    """Plain UNet skip: concatenate decoder and encoder maps along channels."""

    def __init__(self, channels: int, skip_channels: int) -> None:
        super().__init__()
        self.out_channels = channels + skip_channels

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        return torch.cat([x, skip], dim=1)


@SKIPS.register("attention_gate")
class AttentionGateSkip(NotScriptable, nn.Module):
    """Attention U-Net gate (Oktay et al., 2018): the decoder map decides, per pixel,
    how much of the encoder map passes, then the two are concatenated.

    `inter_channels` is the width of the additive attention (default: skip_channels // 2).
    """

    why = 'the attention_gate skip'

    def __init__(self, channels: int, skip_channels: int, inter_channels: int | None = None) -> None:
        super().__init__()
        inter = inter_channels or max(skip_channels // 2, 1)
        self.gate = ConvNormAct(channels, inter, kernel_size=1, activation=False)
        self.skip = ConvNormAct(skip_channels, inter, kernel_size=1, activation=False)
        self.psi = nn.Sequential(nn.ReLU(inplace=True), nn.Conv2d(inter, 1, kernel_size=1), nn.Sigmoid())
        self.out_channels = channels + skip_channels

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        alpha = _attention(self.psi, self.gate(x) + self.skip(skip))
        return torch.cat([x, skip * alpha], dim=1)


def _attention(psi: nn.Sequential, z: torch.Tensor) -> torch.Tensor:
    """psi's ReLU and 1x1 conv, then its sigmoid in fp32 (under autocast too)."""
    relu, conv, _ = psi
    return torch.sigmoid(conv(relu(z)).float()).to(z.dtype)


@SKIPS.register("coarse_attention_gate")
class CoarseAttentionGateSkip(NotScriptable, nn.Module):
    """The Attention U-Net gate computed as the paper does, at the coarser scale: the
    encoder map enters through a 2x2 stride-2 conv, the decoder map averaged back to that
    scale, and the one-channel attention is upsampled bilinearly to gate the encoder map.
    A quarter of `attention_gate`'s full-resolution work; a different model, not a faster
    one (registered for the ablation to judge).
    """

    why = 'the coarse_attention_gate skip'

    def __init__(self, channels: int, skip_channels: int, inter_channels: int | None = None) -> None:
        super().__init__()
        inter = inter_channels or max(skip_channels // 2, 1)
        self.gate = ConvNormAct(channels, inter, kernel_size=1, activation=False)
        self.skip = ConvNormAct(skip_channels, inter, kernel_size=2, stride=2, activation=False)
        self.psi = nn.Sequential(nn.ReLU(inplace=True), nn.Conv2d(inter, 1, kernel_size=1), nn.Sigmoid())
        self.out_channels = channels + skip_channels

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        coarse = self.skip(skip)
        alpha = _attention(self.psi, self.gate(F.adaptive_avg_pool2d(x, coarse.shape[-2:])) + coarse)
        alpha = F.interpolate(alpha, size=skip.shape[-2:], mode="bilinear", align_corners=False)
        return torch.cat([x, skip * alpha], dim=1)
