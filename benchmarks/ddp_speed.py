"""Training throughput with 1 and 2 DDP processes (torchrun, gloo on CPU; NCCL on GPU).

    python benchmarks/ddp_speed.py [--images 64] [--size 64] [--epochs 3]

Each run is `torchrun --standalone --nproc_per_node=K -m hybridunet train` on synthetic
data; images/s is the whole job's (all ranks), from the last epoch. Prints a table, then
a JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def run(processes: int, data: Path, out: Path, args: argparse.Namespace) -> float:
    threads = max(1, (os.cpu_count() or 2) // processes)  # the machine's cores shared out
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "PYTHONPATH": str(REPO)}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}",
           "-m", "hybridunet", "train", "--config", str(REPO / "experiments/configs/tiny.yaml"),
           f"data.root={data}", f"data.size={args.size}", f"data.limit_train={args.images}", "data.limit_val=8",
           f"train.epochs={args.epochs}", f"train.batch_size={args.batch}", "model.widths=[16,32,64,128,256]",
           f"train.out_dir={out}", "tracking.enabled=false"]
    subprocess.run(cmd, check=True, capture_output=True, env=env)
    history = json.loads((out / "last.json").read_text())["history"]
    return history[-1]["images_per_s"]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch", type=int, default=8, help="per process")
    parser.add_argument("--processes", type=int, nargs="+", default=[1, 2], help="process counts to measure")
    args = parser.parse_args(argv)
    from hybridunet.data.synthetic import write_split

    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        write_split(data, "train", args.images, size=args.size)
        write_split(data, "val", 8, size=args.size)
        rates = {k: run(k, data, Path(tmp) / f"run{k}", args) for k in args.processes}
    import torch

    device = "cuda" if torch.cuda.is_available() else "cpu"
    print(f"DDP training throughput, {args.size}x{args.size}, batch {args.batch} per process, {device}, "
          f"{os.cpu_count()} cores")
    first = min(rates)
    for k, rate in rates.items():
        print(f"  {k} process{'es' if k > 1 else '  '}  {rate:8.1f} images/s   x{rate / rates[first]:.2f} over {first}")
    figures = {f"images_per_s_{k}": round(rate, 1) for k, rate in rates.items()}
    if 1 in rates and 2 in rates:
        figures["speedup_2_over_1"] = round(rates[2] / rates[1], 3)
    print(json.dumps({"device": device, **figures}))


if __name__ == "__main__":
    main()
