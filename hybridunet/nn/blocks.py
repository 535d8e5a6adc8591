"""Feature blocks: (in_channels, out_channels) -> module keeping the spatial size."""

from __future__ import annotations

from functools import partial

import torch
from torch import nn

from hybridunet.nn.layers import ConvNormAct
from hybridunet.registry import Registry

BLOCKS: Registry[nn.Module] = Registry("block")


@BLOCKS.register("double_conv")
class DoubleConv(nn.Sequential):
    """(3x3 conv, BatchNorm, ReLU) twice: the study's UNet block."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__(
            ConvNormAct(in_channels, out_channels, kernel_size=3),
            ConvNormAct(out_channels, out_channels, kernel_size=3),
        )


@BLOCKS.register("residual")
class ResidualBlock(nn.Module):
    """Two 3x3 convs plus a shortcut (ResNet basic block), with optional squeeze-excitation.

    `se_ratio` is the SE bottleneck ratio (1/16 in SENet); None disables SE. The
    shortcut is the identity when the channels match, else a 1x1 conv and BatchNorm.
    """

    def __init__(self, in_channels: int, out_channels: int, se_ratio: float | None = None) -> None:
        super().__init__()
        self.conv1 = ConvNormAct(in_channels, out_channels, kernel_size=3)
        self.conv2 = ConvNormAct(out_channels, out_channels, kernel_size=3, activation=False)
        if se_ratio:
            from timm.layers import SEModule  # timm loads in seconds: only for the models that use it

            self.se = SEModule(out_channels, rd_ratio=se_ratio)
        else:
            self.se = nn.Identity()
        self.shortcut = (
            nn.Identity()
            if in_channels == out_channels
            else ConvNormAct(in_channels, out_channels, kernel_size=1, activation=False)
        )
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.se(self.conv2(self.conv1(x))) + self.shortcut(x))


BLOCKS.register("residual_se", partial(ResidualBlock, se_ratio=1 / 16))
