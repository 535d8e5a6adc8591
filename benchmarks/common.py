"""Helpers the benchmarks share: the machine's matmul peak, timing, and the printed table."""

from __future__ import annotations

import json
import platform
import time
from collections.abc import Callable, Sequence
from typing import Any

import torch


def machine(device: torch.device) -> str:
    """A one-line description of where the figures were taken."""
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
    else:
        from hybridunet.device import cpu_name

        name = f"{cpu_name()} ({cpu_flags()}), {torch.get_num_threads()} threads"
    return f"{name}, torch {torch.__version__}"


def cpu_flags() -> str:
    """The CPU features that decide a CPU's training speed here: AMX, AVX512-BF16, AVX2."""
    try:
        flags = set(next(line for line in open("/proc/cpuinfo") if line.startswith("flags")).split())
    except (OSError, StopIteration):
        return platform.machine()
    return " ".join(f for f in ("amx_bf16", "avx512_bf16", "avx2") if f in flags) or "no avx2"


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn: Callable[[], Any], device: torch.device, repeats: int) -> float:
    """Seconds per call of `fn`, averaged over `repeats` calls after the caller's warm-up."""
    sync(device)
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    sync(device)
    return (time.perf_counter() - start) / repeats


def matmul_peak(device: torch.device, dtype: torch.dtype = torch.float32, n: int = 4096, seconds: float = 3.0) -> float:
    """The best GFLOP/s of an n x n matrix multiply over a few seconds: the machine's
    practical peak for dense math, against which model throughput is a fraction."""
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    a @ b  # warm-up
    best, deadline = 0.0, time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        best = max(best, 2 * n**3 / timed(lambda: a @ b, device, 1) / 1e9)
    return best


def print_table(title: str, header: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """A plain-text table, right-aligned numbers, one header line."""
    cells = [[str(h) for h in header]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    print(title)
    for i, row in enumerate(cells):
        print("  " + "  ".join(c.ljust(w) if j == 0 else c.rjust(w) for j, (c, w) in enumerate(zip(row, widths))))
        if i == 0:
            print("  " + "  ".join("-" * w for w in widths))


def print_json(figures: dict[str, Any]) -> None:
    """The benchmark's headline figures as its last line."""
    print(json.dumps(figures))
