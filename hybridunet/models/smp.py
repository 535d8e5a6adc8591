"""Peers from segmentation-models-pytorch, with any encoder smp or timm knows.

Encoders start from random weights (``encoder_weights=None``): nothing is downloaded.
``encoder_weights="imagenet"`` (or another smp tag) downloads them when the Hugging Face Hub
answers, or takes them from its local cache; offline, it fails at once naming
``weights_path``, the local route: a ``.safetensors`` or ``.pth`` state dict.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any

import torch
from torch import nn

from hybridunet.models.registry import MODELS, ModelInfo
from hybridunet.nn import pad_to_multiple
from hybridunet.weights import load_weights, read_state_dict

SMP_ARCHITECTURES = {
    "smp_unet": "unet",
    "smp_unetplusplus": "unetplusplus",
    "smp_fpn": "fpn",
    "smp_deeplabv3plus": "deeplabv3plus",
}


class SmpModel(nn.Module):
    """An smp architecture that accepts any input size (padded to the encoder's stride).

    Args:
        arch: An smp architecture name (``"unet"``, ``"fpn"``, ...).
        num_classes: Output channels (logits).
        in_channels: Input image channels.
        encoder_name: Any smp encoder, or ``"tu-<timm name>"`` for a timm one.
        encoder_weights: smp's pretrained-weight tag; None (the default) never downloads.
        weights_path: A local ``.safetensors`` or ``.pth`` state dict for the encoder,
            loaded without unpickling code.
        **smp_kwargs: Passed to the smp architecture (``decoder_channels``, ...).

    Example:
        ```python
        import hybridunet as hu

        peer = hu.create_model("smp_unet", encoder_name="tu-convnext_atto")   # random init, no download
        ```
    """

    def __init__(
        self,
        arch: str,
        num_classes: int = 19,
        in_channels: int = 3,
        encoder_name: str = "resnet18",
        encoder_weights: str | None = None,
        weights_path: str | Path | None = None,
        **smp_kwargs: Any,
    ) -> None:
        import segmentation_models_pytorch as smp  # imported when a peer is built: it takes seconds

        super().__init__()
        build = partial(smp.create_model, arch, encoder_name=encoder_name, encoder_weights=encoder_weights,
                        in_channels=in_channels, classes=num_classes, **smp_kwargs)
        self.model = build() if encoder_weights is None else _with_pretrained(build, encoder_name, encoder_weights)
        if weights_path is not None:
            load_encoder_weights(self.model.encoder, weights_path)
        self.stride = int(self.model.encoder.output_stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        return self.model(pad_to_multiple(x, self.stride))[..., :h, :w]


HUB = ("huggingface.co", 443)


def hub_unreachable(timeout: float = 3.0) -> str | None:
    """Why the Hugging Face Hub cannot be reached (None when it answers), within `timeout`."""
    import os
    import socket

    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes"):
        return "HF_HUB_OFFLINE is set"
    try:
        socket.create_connection(HUB, timeout=timeout).close()
    except Exception as err:  # DNS failure, refusal, timeout, a sandbox's block
        return f"{HUB[0]}:{HUB[1]}: {err}"
    return None


def _with_pretrained(build, encoder_name: str, encoder_weights: str) -> nn.Module:
    """smp's model with downloaded encoder weights; offline, from the hub's local cache or a
    one-line error naming weights_path (instead of a minute of retries)."""
    from hybridunet.errors import UsageError

    why = hub_unreachable()
    if why is None:
        return build()
    import huggingface_hub.constants as hub

    offline, hub.HF_HUB_OFFLINE = hub.HF_HUB_OFFLINE, True  # the local cache only, no retries
    try:
        return build()
    except OSError as err:
        raise UsageError(
            f"encoder_weights={encoder_weights!r} for {encoder_name}: the Hugging Face Hub cannot be reached ({why}) "
            f"and the weights are not in its local cache ({type(err).__name__}). Download them where you are online, "
            "or give a local state dict with model.weights_path (a .safetensors or .pth file) and "
            "encoder_weights: null") from None
    finally:
        hub.HF_HUB_OFFLINE = offline


def load_encoder_weights(encoder: nn.Module, path: str | Path) -> None:
    """Load a local encoder state dict; a whole model's file (``encoder.*`` keys) also works."""
    state = read_state_dict(path)
    for prefix in ("model.encoder.", "encoder."):
        if any(k.startswith(prefix) for k in state):
            state = {k.removeprefix(prefix): v for k, v in state.items() if k.startswith(prefix)}
            break
    load_weights(encoder, state, path)


for _name, _arch in SMP_ARCHITECTURES.items():
    MODELS.register(_name, partial(SmpModel, _arch), info=ModelInfo(
        f"segmentation-models-pytorch {_arch} (resnet18 encoder by default, random init)",
        "https://github.com/qubvel-org/segmentation_models.pytorch"))
