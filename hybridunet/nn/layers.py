"""The small layers every part is built from."""

from __future__ import annotations

from torch import nn


class ConvNormAct(nn.Sequential):
    """Convolution (no bias), BatchNorm, then ReLU unless `activation` is False; 'same'
    padding for odd kernels at stride 1.

    Laid out as torchvision's Conv2dNormActivation (modules 0, 1, 2), so state dicts match,
    without importing torchvision (seconds at start-up).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, dilation: int = 1,
                 activation: bool = True, stride: int = 1) -> None:
        layers: list[nn.Module] = [
            nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride,
                      padding=(kernel_size - 1) // 2 * dilation, dilation=dilation, bias=False),
            nn.BatchNorm2d(out_channels),
        ]
        if activation:
            layers.append(nn.ReLU(inplace=True))
        super().__init__(*layers)
        self.out_channels = out_channels


class NotScriptable:
    """smp's convention for a part `torch.jit.script` cannot compile: `_is_torch_scriptable`
    is False, and scripting a model that holds it raises one RuntimeError saying which part
    and what works instead (`why`: the part, in a few words)."""

    _is_torch_scriptable = False
    why = "this part"

    def __prepare_scriptable__(self) -> nn.Module:  # torch.jit.script calls it on every submodule first
        raise RuntimeError(f"hybridunet: a model with {self.why} cannot be scripted with torch.jit.script; use "
                           "torch.export.export(model, (x,)) or ONNX (`hybridunet export`) instead")
