"""Training-step throughput of unet, hybrid_unet and smp_unet (resnet18) against the
machine's own fp32 (or bf16) matrix-multiply peak, measured in the same run.

    python benchmarks/train_speed.py [--batch 8] [--size 256] [--steps 2] [--rounds 3] [--device cpu]
        [--models unet hybrid_unet smp_unet] [--modes eager channels_last compile] [--allocator retain]

A mode is flags joined by "+": channels_last, compile, bf16 (autocast, on CUDA or the CPU) —
"eager" is none of them. The default modes add bf16, bf16+channels_last and
bf16+channels_last+compile where `train.amp: auto` picks bf16 (CUDA, or a CPU with AMX or
AVX512-BF16). Every bf16 mode is a fraction of the bf16 matmul peak, every fp32 mode of the
fp32 peak; the peaks and the models are measured in alternating rounds of one run, each
figure the best of its rounds. One step is forward, cross entropy, backward and an AdamW
update. FLOPs of the step come from torch.utils.flop_counter. Prints a table, then a JSON line.
"""

from __future__ import annotations

import argparse
import contextlib
import time

import torch
import torch.nn.functional as F
from common import machine, matmul_peak, print_json, print_table, sync, timed

import hybridunet as hu
from hybridunet.allocator import retained_cpu_memory

KNOWN_FLAGS = {"eager", "channels_last", "compile", "bf16"}


def train_step(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, optimizer, bf16: bool):
    def step() -> None:
        autocast = torch.autocast(x.device.type, dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
        with autocast:
            loss = F.cross_entropy(model(x).float(), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return step


def step_flops(name: str, x: torch.Tensor, y: torch.Tensor) -> int:
    """FLOPs of one eager fp32 training step (forward + backward)."""
    from torch.utils.flop_counter import FlopCounterMode

    model = hu.create_model(name, num_classes=19).to(x.device)
    with FlopCounterMode(display=False) as counter:
        F.cross_entropy(model(x), y).backward()
    return counter.get_total_flops()


def prepare(name: str, mode: str, batch: int, size: int, device: torch.device) -> tuple:
    """A training-step closure of model `name` in `mode`, run through its warm-up."""
    flags = set(mode.split("+")) - {"eager"}
    torch.manual_seed(0)
    model = hu.create_model(name, num_classes=19).to(device)
    x = torch.randn(batch, 3, size, size, device=device)
    y = torch.randint(0, 19, (batch, size, size), device=device)
    if "channels_last" in flags:
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    runnable = torch.compile(model) if "compile" in flags else model
    step = train_step(runnable, x, y, optimizer, "bf16" in flags)
    start = time.perf_counter()
    for _ in range(2 if "compile" in flags else 1):  # compile happens in the first calls
        step()
    sync(device)
    return step, time.perf_counter() - start


def measure(name: str, mode: str, batch: int, size: int, steps: int, device: torch.device) -> dict:
    """Images/s of training steps of model `name` in `mode`, as training runs them
    (freed CPU memory retained), after the warm-up."""
    with retained_cpu_memory(device.type == "cpu"):
        step, warmup = prepare(name, mode, batch, size, device)
        seconds = timed(step, device, steps)
    return {"model": name, "mode": mode, "images_per_s": batch / seconds, "warmup_s": warmup}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["unet", "hybrid_unet", "smp_unet"])
    parser.add_argument("--modes", nargs="+", help="default: eager channels_last compile, and the bf16 modes "
                                                     "where auto picks bf16")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=2, help="timed steps per measurement")
    parser.add_argument("--rounds", type=int, default=3,
                        help="rounds over every model and mode, each after a fresh peak measurement")
    parser.add_argument("--allocator", choices=["retain", "system"], default="retain",
                        help="retain: keep freed CPU memory for reuse, as training does (hybridunet.allocator)")
    parser.add_argument("--peak-size", type=int, default=4096, help="n of the n x n matmuls that measure the peak")
    parser.add_argument("--peak-seconds", type=float, default=1.5, help="time per peak measurement")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    from hybridunet.device import auto_amp

    args.auto_amp = auto_amp(device)
    if args.modes is None:
        args.modes = ["eager", "channels_last", "compile"]
        if args.auto_amp == "bf16":
            args.modes += ["bf16", "bf16+channels_last", "bf16+channels_last+compile"]
    for mode in args.modes:
        unknown = set(mode.split("+")) - KNOWN_FLAGS
        if unknown:
            parser.error(f"unknown mode flag(s) {sorted(unknown)} in {mode!r}; known: {sorted(KNOWN_FLAGS)}")
    with retained_cpu_memory(args.allocator == "retain" and device.type == "cpu"):
        run(args, device)


def run(args: argparse.Namespace, device: torch.device) -> None:
    dtypes = {"fp32": torch.float32, **({"bf16": torch.bfloat16} if any("bf16" in m for m in args.modes) else {})}
    peaks = {k: 0.0 for k in dtypes}
    x = torch.randn(args.batch, 3, args.size, args.size, device=device)
    y = torch.randint(0, 19, (args.batch, args.size, args.size), device=device)
    flops = {name: step_flops(name, x, y) for name in args.models}

    steps, failed, seconds = {}, {}, {}
    for name in args.models:
        for mode in args.modes:
            try:
                steps[name, mode] = prepare(name, mode, args.batch, args.size, device)
            except Exception as error:  # e.g. torch.compile without a working compiler
                failed[name, mode] = type(error).__name__
    # Machine speed drifts on shared hosts: every round re-measures the peak and every
    # configuration; each figure is the best of its rounds, as is the peak.
    for _ in range(args.rounds):
        for k, dtype in dtypes.items():
            peaks[k] = max(peaks[k], matmul_peak(device, dtype, n=args.peak_size, seconds=args.peak_seconds))
        for key, (step, _) in steps.items():
            seconds[key] = min(seconds.get(key, float("inf")), timed(step, device, args.steps))

    rows, results = [], []
    for name in args.models:
        for mode in args.modes:
            if (name, mode) in failed:
                rows.append([name, mode, "failed", "", "", failed[name, mode]])
                continue
            r = {"model": name, "mode": mode, "images_per_s": args.batch / seconds[name, mode],
                 "warmup_s": steps[name, mode][1]}
            r["gflops"] = flops[name] / args.batch * r["images_per_s"] / 1e9
            r["peak_fraction"] = r["gflops"] / peaks["bf16" if "bf16" in mode else "fp32"]
            results.append(r)
            rows.append([name, mode, f"{r['images_per_s']:.2f}", f"{r['gflops']:.1f}",
                         f"{100 * r['peak_fraction']:.1f}%", f"{r['warmup_s']:.0f}"])
    print_table(
        f"train_speed: batch {args.batch}, 3x{args.size}x{args.size}, {machine(device)}, allocator {args.allocator}, "
        f"best of {args.rounds} rounds; " + ", ".join(f"{k} matmul peak {v:.0f} GFLOP/s" for k, v in peaks.items()),
        ["model", "mode", "images/s", "GFLOP/s", "of peak", "warm-up s"], rows,
    )
    print("  train-step GFLOPs per image: " + ", ".join(f"{n} {flops[n] / args.batch / 1e9:.1f}" for n in args.models))
    print(f"  train.amp=auto picks {args.auto_amp} here"
          + ("" if args.auto_amp == "bf16" else " (no AMX or AVX512-BF16: the bf16 targets do not apply)"))
    best, eager = {}, {}  # each model's fastest mode (its own peak fraction beside it), and fp32 eager
    for r in results:
        if r["images_per_s"] > best.get(r["model"], {}).get("images_per_s", -1):
            best[r["model"]] = r
        if r["mode"] == "eager":
            eager[r["model"]] = r["images_per_s"]
    print_json({
        "device": device.type,
        "allocator": args.allocator,
        "auto_amp": args.auto_amp,
        **{f"{k}_matmul_peak_gflops": round(v, 1) for k, v in peaks.items()},
        **{f"{n}_best_images_per_s": round(r["images_per_s"], 2) for n, r in best.items()},
        **{f"{n}_best_peak_fraction": round(r["peak_fraction"], 3) for n, r in best.items()},
        **{f"{n}_best_mode": r["mode"] for n, r in best.items()},
        **{f"{n}_best_over_fp32_eager": round(r["images_per_s"] / eager[n], 2) for n, r in best.items() if n in eager},
    })


if __name__ == "__main__":
    main()
