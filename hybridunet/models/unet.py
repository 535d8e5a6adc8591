"""One UNet assembled from named parts; `unet`, `hybrid_unet` and friends are presets of it
(models/presets.py)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from hybridunet.nn import BLOCKS, BOTTLENECKS, SKIPS, UPSAMPLERS, pad_to_multiple

DEFAULT_WIDTHS = (32, 64, 128, 256, 512)


class UNet(nn.Module):
    """Encoder-decoder with skips, every part picked by name from its registry.

    The presets (`unet`, `hybrid_unet`, ...) are this class with their parts filled in;
    any input height and width works: it is padded to a multiple of ``2 ** depth`` and the
    logits are cropped back.

    Args:
        num_classes: Output channels (logits).
        in_channels: Input image channels.
        widths: Channels per scale, shallow to deep; ``len(widths) - 1`` downsamplings.
        depth: Number of downsamplings; widths are cut to ``depth + 1`` entries, or
            extended by doubling the last one.
        encoder_block: A name in `hybridunet.nn.BLOCKS`, or a module class built with the
            same keywords (timm's ``get_act_layer`` convention).
        decoder_block: As `encoder_block`, for the decoder.
        skip: A name in `hybridunet.nn.SKIPS`, or a module class.
        bottleneck: A name in `hybridunet.nn.BOTTLENECKS`, or a module class.
        upsampler: A name in `hybridunet.nn.UPSAMPLERS`, or a module class.
        encoder_block_kwargs: Extra keywords for every encoder block.
        decoder_block_kwargs: Extra keywords for every decoder block.
        skip_kwargs: Extra keywords for every skip.
        bottleneck_kwargs: Extra keywords for the bottleneck (e.g. ``{"heads": 4}``).
        upsampler_kwargs: Extra keywords for every upsampler.
        deep_supervision: Add a 1x1 head after every decoder stage but the last; in
            training mode ``forward`` then returns ``(logits, [aux_logits, ...])``, each
            at the input size, and in eval mode the logits alone.

    Raises:
        hybridunet.errors.UnknownNameError: A part's name is not registered (the known
            names are listed).
        TypeError: A part's keywords do not fit it (the accepted ones are listed).

    Example:
        ```python
        import torch
        from hybridunet.models import UNet

        model = UNet(num_classes=5, widths=(8, 16, 32), skip="attention_gate", upsampler="bilinear")
        model(torch.randn(1, 3, 50, 70)).shape   # torch.Size([1, 5, 50, 70])
        ```
    """

    def __init__(
        self,
        num_classes: int = 19,
        in_channels: int = 3,
        widths: Sequence[int] = DEFAULT_WIDTHS,
        depth: int | None = None,
        encoder_block: str | type[nn.Module] = "double_conv",
        decoder_block: str | type[nn.Module] = "double_conv",
        skip: str | type[nn.Module] = "concat",
        bottleneck: str | type[nn.Module] = "identity",
        upsampler: str | type[nn.Module] = "transpose",
        encoder_block_kwargs: Mapping[str, Any] | None = None,
        decoder_block_kwargs: Mapping[str, Any] | None = None,
        skip_kwargs: Mapping[str, Any] | None = None,
        bottleneck_kwargs: Mapping[str, Any] | None = None,
        upsampler_kwargs: Mapping[str, Any] | None = None,
        deep_supervision: bool = False,
    ) -> None:
        super().__init__()
        widths = _resolve_widths(widths, depth)
        for name, value in (("num_classes", num_classes), ("in_channels", in_channels)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        self.widths = widths
        self.depth = len(widths) - 1
        self.stride = 2**self.depth
        self.deep_supervision = deep_supervision
        enc_kw, dec_kw = dict(encoder_block_kwargs or {}), dict(decoder_block_kwargs or {})
        skip_kw, up_kw = dict(skip_kwargs or {}), dict(upsampler_kwargs or {})

        ins = (in_channels, *widths[:-1])
        self.encoder = nn.ModuleList(
            BLOCKS.build(encoder_block, in_channels=i, out_channels=o, **enc_kw) for i, o in zip(ins, widths)
        )
        self.pool = nn.MaxPool2d(2)
        self.bottleneck = BOTTLENECKS.build(bottleneck, channels=widths[-1], **dict(bottleneck_kwargs or {}))

        # Decoder stages run deep to shallow: upsample from widths[i + 1] to widths[i],
        # fuse with the encoder map of scale i, then a block back to widths[i].
        self.upsamplers, self.skips, self.decoder = nn.ModuleList(), nn.ModuleList(), nn.ModuleList()
        for i in reversed(range(self.depth)):
            self.upsamplers.append(
                UPSAMPLERS.build(upsampler, in_channels=widths[i + 1], out_channels=widths[i], **up_kw)
            )
            fuse = SKIPS.build(skip, channels=widths[i], skip_channels=widths[i], **skip_kw)
            self.skips.append(fuse)
            self.decoder.append(
                BLOCKS.build(decoder_block, in_channels=fuse.out_channels, out_channels=widths[i], **dec_kw)
            )
        self.head = nn.Conv2d(widths[0], num_classes, kernel_size=1)
        self.aux_heads = nn.ModuleList(
            nn.Conv2d(widths[i], num_classes, kernel_size=1) for i in reversed(range(1, self.depth))
        ) if deep_supervision else None

        self._is_encoder_frozen = False
        # smp's flag: False where a part cannot be scripted (its __prepare_scriptable__ says why)
        self._is_torch_scriptable = not deep_supervision and all(
            getattr(m, "_is_torch_scriptable", True) for m in self.modules() if m is not self)

    def __prepare_scriptable__(self) -> UNet:
        """torch.jit.script calls it first; the parts that cannot be scripted say so in theirs."""
        if self.deep_supervision:
            raise RuntimeError("hybridunet: a model with deep_supervision cannot be scripted with torch.jit.script; "
                               "use torch.export.export(model, (x,)) or ONNX (`hybridunet export`) instead")
        return self

    def freeze_encoder(self) -> UNet:
        """Stop training the encoder, as smp's models do: its parameters get no gradient and its
        normalisation layers keep their running statistics (in eval mode, also after `train()`).

        Example:
            >>> model = create_model("unet").freeze_encoder()  # fine-tune the decoder only
        """
        return self._set_encoder_trainable(False)

    def unfreeze_encoder(self) -> UNet:
        """Undo `freeze_encoder`: the encoder trains again, its normalisation layers with it."""
        return self._set_encoder_trainable(True)

    def _set_encoder_trainable(self, mode: bool) -> UNet:
        for param in self.encoder.parameters():
            param.requires_grad = mode
        for module in self.encoder.modules():
            if isinstance(module, nn.modules.batchnorm._NormBase):  # BatchNorm, InstanceNorm with running stats
                module.train(mode and self.training)
        self._is_encoder_frozen = not mode
        return self

    def train(self, mode: bool = True) -> UNet:
        """`nn.Module.train`, but a frozen encoder's normalisation layers stay in eval mode."""
        super().train(mode)
        if self._is_encoder_frozen:
            for module in self.encoder.modules():
                if isinstance(module, nn.modules.batchnorm._NormBase):
                    module.train(False)
        return self

    @property
    def feature_info(self) -> list[dict[str, int]]:
        """Channels and stride of each encoder scale, as timm's ``feature_info`` reports them."""
        return [{"num_chs": w, "reduction": 1 << i} for i, w in enumerate(self.widths)]

    def forward(self, x: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, list[torch.Tensor]]:
        h, w = x.shape[-2:]
        x = pad_to_multiple(x, self.stride)
        features = []
        for i, block in enumerate(self.encoder):
            x = block(self.pool(x) if i else x)
            features.append(x)
        x = self.bottleneck(features.pop())
        stages = []
        for up, fuse, block in zip(self.upsamplers, self.skips, self.decoder):
            x = block(fuse(up(x), features.pop()))
            stages.append(x)
        logits = self.head(x)[..., :h, :w]
        if self.aux_heads is None or not self.training:
            return logits
        size = x.shape[-2:]
        aux = [
            F.interpolate(head(s), size=size, mode="bilinear", align_corners=False)[..., :h, :w]
            for head, s in zip(self.aux_heads, stages)
        ]
        return logits, aux


def _resolve_widths(widths: Sequence[int], depth: int | None) -> tuple[int, ...]:
    widths = tuple(widths)
    if len(widths) < 2 or not all(isinstance(w, int) and w > 0 for w in widths):
        raise ValueError(f"widths must be at least two positive integers, got {widths!r}")
    if depth is None:
        return widths
    if not isinstance(depth, int) or depth < 1:
        raise ValueError(f"depth must be a positive integer, got {depth!r}")
    while len(widths) < depth + 1:
        widths += (widths[-1] * 2,)
    return widths[: depth + 1]
