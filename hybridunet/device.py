"""Where and how a run computes: the device, the precision and the memory format.

`auto` resolves to what is fastest on this machine without losing quality: bf16 autocast
on CUDA devices that support it and on CPUs whose kernels use AMX or AVX512-BF16 (about
5x their fp32 matmul rate), fp32 elsewhere; channels_last where BENCHMARKS.md measured
it faster (CUDA, and CPU in bf16), the default layout otherwise.
"""

from __future__ import annotations

import contextlib
import functools
from dataclasses import dataclass
from pathlib import Path

import torch

from hybridunet.errors import ConfigError

AMP_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def pick_device(name: str = "auto", local_rank: int = 0) -> torch.device:
    """`auto`: this rank's CUDA device when there is one, else the CPU."""
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("train.device=cuda but CUDA is not available on this machine")
    if name in ("auto", "cuda") and torch.cuda.is_available():
        return torch.device(f"cuda:{local_rank}")
    return torch.device("cpu")


@functools.cache
def cpu_has_fast_bf16() -> bool:
    """Whether this CPU multiplies bf16 matrices in hardware (AMX-BF16 or AVX512-BF16)."""
    try:
        flags = Path("/proc/cpuinfo").read_text().split()
        return "amx_bf16" in flags or "avx512_bf16" in flags
    except OSError:  # not Linux: ask torch's own probe, where this build has one
        probe = getattr(torch.backends.cpu, "_is_avx512_bf16_supported", None) or getattr(
            torch.cpu, "_is_avx512_bf16_supported", None)
        return bool(probe and probe())


def cpu_name() -> str:
    """The CPU's model name (e.g. 'Intel(R) Xeon(R) Platinum 8480+'), or the platform's."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    import platform

    return platform.processor() or platform.machine()


def hardware_name(device: torch.device) -> str:
    return torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_name()


@dataclass(frozen=True)
class Precision:
    """The resolved numeric mode of a run: autocast dtype (or none) and memory format."""

    amp: str  # "none" | "bf16" | "fp16"
    channels_last: bool

    @property
    def memory_format(self) -> torch.memory_format:
        return torch.channels_last if self.channels_last else torch.contiguous_format

    def autocast(self, device: torch.device) -> contextlib.AbstractContextManager:
        """Autocast for the forward pass; losses, softmax and metrics run in fp32 outside it."""
        if self.amp == "none":
            return contextlib.nullcontext()
        return torch.autocast(device.type, dtype=AMP_DTYPES[self.amp])

    def as_dict(self) -> dict[str, object]:
        return {"amp": self.amp, "channels_last": self.channels_last}

    def __str__(self) -> str:
        return f"amp={self.amp}, channels_last={str(self.channels_last).lower()}"


FP32 = Precision("none", False)


def auto_amp(device: torch.device) -> str:
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "none"
    return "bf16" if cpu_has_fast_bf16() else "none"


def resolve_precision(device: torch.device, amp: str = "auto", channels_last: bool | str = "auto",
                      strict: bool = True) -> Precision:
    """Turn `auto` into a concrete precision for `device`.

    With `strict` (training), a mode the device cannot run fails naming the key;
    without it (eval and predict of a stored run), such a mode falls back to `auto`.
    """
    if amp == "auto":
        amp = auto_amp(device)
    elif amp == "fp16" and device.type != "cuda":
        if strict:
            raise ConfigError("train.amp=fp16 needs a CUDA device; on the CPU use bf16 (or auto)")
        amp = auto_amp(device)
    elif amp == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        if strict:
            raise ConfigError(f"train.amp=bf16: {torch.cuda.get_device_name(device)} does not support bf16; use fp16")
        amp = "fp16"
    if channels_last == "auto":
        channels_last = device.type == "cuda" or amp == "bf16"
    return Precision(amp, bool(channels_last))
