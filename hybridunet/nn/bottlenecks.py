"""Bottlenecks: (channels) -> module applied to the deepest encoder map, same shape out."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from hybridunet.nn.layers import ConvNormAct, NotScriptable
from hybridunet.registry import Registry

BOTTLENECKS: Registry[nn.Module] = Registry("bottleneck")


@BOTTLENECKS.register("identity")
class IdentityBottleneck(nn.Identity):
    """No bottleneck: the study's UNet hands the deepest map straight to the decoder."""

    def __init__(self, channels: int) -> None:
        super().__init__()


@BOTTLENECKS.register("aspp")
class ASPP(NotScriptable, nn.Module):
    """Atrous spatial pyramid pooling (DeepLab v3): parallel dilated convs and image pooling.

    The default rates suit the small deepest map of a UNet (16x16 for a 256x256 input).
    The pooling branch has no BatchNorm, so batches of one image still train.
    """

    why = 'the aspp bottleneck'

    def __init__(
        self,
        channels: int,
        rates: Sequence[int] = (2, 4, 6),
        branch_channels: int | None = None,
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        width = branch_channels or max(channels // 4, 1)
        self.branches = nn.ModuleList(
            [ConvNormAct(channels, width, kernel_size=1)]
            + [ConvNormAct(channels, width, kernel_size=3, dilation=r) for r in rates]
        )
        self.pool = nn.Sequential(
            nn.AdaptiveAvgPool2d(1), nn.Conv2d(channels, width, kernel_size=1), nn.ReLU(inplace=True)
        )
        self.project = nn.Sequential(
            ConvNormAct(width * (len(rates) + 2), channels, kernel_size=1),
            nn.Dropout2d(dropout),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = self.pool(x).expand(-1, -1, *x.shape[-2:])
        return self.project(torch.cat([b(x) for b in self.branches] + [pooled], dim=1))


@BOTTLENECKS.register("transformer")
class TransformerBottleneck(NotScriptable, nn.Module):
    """Multi-head self-attention over every position of the deepest map: the CNN-Transformer
    hybrid's bottleneck.

    Tokens get a fixed 2-D sin-cos position encoding computed for the map's own height
    and width, so any input size works without interpolating learned embeddings.
    `channels` must be divisible by 4 (the encoding) and by `heads`.

    By default: pre-norm blocks followed by a LayerNorm, whose output replaces the CNN
    map. With `layer_scale` (CaiT's LayerScale, e.g. 1e-4: the initial weight of every
    attention and MLP branch), the bottleneck starts as the identity on the CNN map and
    learns what attention adds, so the hybrid begins as a UNet.
    """

    def __init__(
        self,
        channels: int,
        heads: int = 8,
        layers: int = 1,
        mlp_ratio: float = 4.0,
        dropout: float = 0.0,
        layer_scale: float | None = None,
    ) -> None:
        from timm.layers import build_sincos2d_pos_embed  # timm loads in seconds: only when used
        from timm.models.vision_transformer import Block

        super().__init__()
        self._pos_embed = build_sincos2d_pos_embed
        if channels % 4 or channels % heads:
            raise ValueError(
                f"transformer bottleneck: channels={channels} must be divisible by 4 "
                f"and by heads={heads}"
            )
        self.blocks = nn.Sequential(
            *(
                Block(channels, heads, mlp_ratio=mlp_ratio, qkv_bias=True, proj_drop=dropout, attn_drop=dropout,
                      init_values=layer_scale)
                for _ in range(layers)
            )
        )
        self.norm = nn.LayerNorm(channels) if layer_scale is None else nn.Identity()
        self.residual = layer_scale is not None

    why = "the transformer bottleneck (timm's sin-cos position embedding is plain Python)"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        pos = self._pos_embed([h, w], dim=c, device=x.device, dtype=x.dtype)
        tokens = self.blocks(x.flatten(2).transpose(1, 2) + pos)
        tokens = tokens - pos if self.residual else self.norm(tokens)  # the residual form returns to the CNN map
        return tokens.transpose(1, 2).reshape(n, c, h, w)
