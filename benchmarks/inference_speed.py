"""Inference throughput and peak memory of unet, hybrid_unet and smp_unet (resnet18) at
batch 1 and 16, 3x256x256: PyTorch eval mode under torch.inference_mode (fp32, and bf16
autocast where `train.amp: auto` picks it), and on CPU the exported ONNX graph in
onnxruntime.

    python benchmarks/inference_speed.py [--batches 1 16] [--size 256] [--seconds 5] [--device cpu]
        [--runtimes torch bf16 onnxruntime]

Each (model, batch) runs in a fresh process so that peak memory is its own. On CPU the
peak is the process's peak resident set and "activations" its growth over the loaded
model; on CUDA it is torch.cuda.max_memory_allocated. Prints a table, then a JSON line.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from functools import partial

import torch
from common import machine, print_json, print_table, sync

import hybridunet as hu

MIB = 2**20


def resident_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize()


def reset_peak() -> None:
    """Start the process's peak resident size (VmHWM) afresh (Linux: clear_refs 5), so the
    peak measured next is that of the model's calls, not of the imports before them."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass


def peak_bytes() -> int:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # kilobytes on Linux


def one(name: str, batch: int, size: int, seconds: float, device: torch.device, channels_last: bool,
        runtime: str = "torch") -> dict:
    """Measure one (model, batch, runtime) in this process."""
    import contextlib
    import tempfile

    torch.manual_seed(0)
    model = hu.create_model(name, num_classes=19).to(device).eval()
    x = torch.randn(batch, 3, size, size, device=device)
    if channels_last:
        model, x = model.to(memory_format=torch.channels_last), x.contiguous(memory_format=torch.channels_last)
    if runtime == "onnxruntime":
        import onnxruntime as ort

        with tempfile.TemporaryDirectory() as tmp:
            path = f"{tmp}/model.onnx"
            torch.onnx.export(model, (x[:1],), path, dynamo=False, input_names=["image"], output_names=["logits"],
                              dynamic_axes={"image": {0: "batch", 2: "h", 3: "w"}}, opset_version=17)
            options = ort.SessionOptions()
            options.intra_op_num_threads = torch.get_num_threads()
            session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        del model
        feed = {"image": x.contiguous().numpy()}
        call = partial(session.run, None, feed)
    else:
        autocast = (torch.autocast(device.type, dtype=torch.bfloat16) if runtime == "bf16"
                    else contextlib.nullcontext())
        call = partial(model, x)
    before = resident_bytes()
    reset_peak()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
    with torch.inference_mode(), (autocast if runtime != "onnxruntime" else contextlib.nullcontext()):
        call()  # warm-up
        sync(device)
        calls, start = 0, time.perf_counter()
        while calls < 2 or time.perf_counter() - start < seconds:
            call()
            calls += 1
        sync(device)
        elapsed = time.perf_counter() - start
    if device.type == "cuda":
        peak = torch.cuda.max_memory_allocated(device)
    else:
        peak = peak_bytes()
    return {"model": name, "batch": batch, "runtime": runtime, "images_per_s": calls * batch / elapsed,
            "ms_per_batch": elapsed / calls * 1e3, "peak_mib": peak / MIB, "activations_mib": (peak - before) / MIB}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["unet", "hybrid_unet", "smp_unet"])
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 16])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--seconds", type=float, default=5.0, help="timed per measurement")
    parser.add_argument("--channels-last", action="store_true")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--runtimes", nargs="+", choices=["torch", "bf16", "onnxruntime"],
                        help="default: torch, bf16 where auto picks it, onnxruntime on CPU")
    parser.add_argument("--one", nargs=3, metavar=("MODEL", "BATCH", "RUNTIME"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    if args.one:
        print(json.dumps(one(args.one[0], int(args.one[1]), args.size, args.seconds, device, args.channels_last,
                             args.one[2])))
        return
    runtimes = args.runtimes
    if runtimes is None:
        from hybridunet.device import auto_amp

        runtimes = ["torch"] + (["bf16"] if auto_amp(device) == "bf16" else []) + (
            ["onnxruntime"] if device.type == "cpu" else [])

    results = []
    for name in args.models:
        for batch in args.batches:
            for runtime in runtimes:
                cmd = [sys.executable, __file__, "--one", name, str(batch), runtime, "--size", str(args.size),
                       "--seconds", str(args.seconds), "--device", args.device] + (
                    ["--channels-last"] if args.channels_last else [])
                done = subprocess.run(cmd, capture_output=True, text=True)
                if done.returncode != 0:
                    raise SystemExit(f"{name} at batch {batch} ({runtime}) failed:\n{done.stderr[-2000:]}")
                results.append(json.loads(done.stdout.strip().splitlines()[-1]))
    print_table(
        f"inference_speed: 3x{args.size}x{args.size}, eval, inference_mode"
        f"{', channels_last' if args.channels_last else ''}, {machine(device)}",
        ["model", "batch", "runtime", "images/s", "ms/batch", "peak MiB", "activations MiB"],
        [[r["model"], r["batch"], r["runtime"], f"{r['images_per_s']:.2f}", f"{r['ms_per_batch']:.0f}",
          f"{r['peak_mib']:.0f}", f"{r['activations_mib']:.0f}"] for r in results],
    )
    print_json({f"{r['model']}_b{r['batch']}_{r['runtime']}_{k}": round(r[k], 2)
                for r in results for k in ("images_per_s", "activations_mib")} | {"device": device.type})


if __name__ == "__main__":
    main()
