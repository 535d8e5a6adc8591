"""Upsamplers: (in_channels, out_channels) -> module doubling height and width."""

from __future__ import annotations

from torch import nn

from hybridunet.registry import Registry

UPSAMPLERS: Registry[nn.Module] = Registry("upsampler")


@UPSAMPLERS.register("transpose")
class TransposeUp(nn.ConvTranspose2d):
    """2x2 transposed convolution with stride 2: the study's upsampler."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__(in_channels, out_channels, kernel_size=2, stride=2)


@UPSAMPLERS.register("bilinear")
class BilinearUp(nn.Sequential):
    """Bilinear 2x resize then a 1x1 conv to the output width: no checkerboard artefacts."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__(
            nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False),
            nn.Conv2d(in_channels, out_channels, kernel_size=1),
        )
