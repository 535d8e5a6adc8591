"""What MLflow tracking costs a small training run.

    python benchmarks/tracking_overhead.py [--epochs 6] [--images 32] [--size 64] [--widths 8 16 32 64 128] [--rounds 6]

Trains tiny.yaml (by default 64x64, widths 8..128) on `--images` synthetic images with tracking off,
on (the default: calls made by a low-priority worker thread) and on with the calls made
inline in the training loop (tracking.background=false), in rotating order, in one process. These
2-core machines drift by tens of percent between runs, so the overhead is the median over
rounds of each round's difference to that round's untracked run. The once-per-process
costs (importing MLflow, creating the sqlite store) are measured apart. Prints a table,
then a JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MODES = {"off": None, "on": "tracking.background=true", "on, inline": "tracking.background=false"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--images", type=int, default=32)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--widths", type=int, nargs="+", default=[8, 16, 32, 64, 128])
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="config overrides for every mode")
    args = parser.parse_args()
    home = os.getcwd()
    with tempfile.TemporaryDirectory() as folder:  # ~0.7 GB of checkpoints by the end
        os.chdir(folder)
        try:
            measure(args, Path(folder))
        finally:
            os.chdir(home)


def measure(args: argparse.Namespace, tmp: Path) -> None:
    from hybridunet.config import load_config
    from hybridunet.data.synthetic import write_split
    from hybridunet.engine import fit

    write_split(tmp / "data", "train", args.images, size=args.size)
    write_split(tmp / "data", "val", 8, size=args.size)

    start = time.perf_counter()
    import mlflow  # noqa: F401

    from hybridunet.tracking import MLflowCallback, experiment_id

    import_s = time.perf_counter() - start
    uri = f"sqlite:///{tmp / 'mlflow.db'}"
    start = time.perf_counter()
    experiment_id("bench", uri)
    store_s = time.perf_counter() - start

    def run(mode: str, i: int) -> float:
        overrides = [
            f"data.root={tmp / 'data'}", f"data.limit_train={args.images}", f"data.size={args.size}",
            f"model.widths=[{','.join(map(str, args.widths))}]", f"train.epochs={args.epochs}",
            f"train.out_dir={tmp / f'run-{i}-{len(mode)}'}", f"tracking.uri={uri}", "tracking.experiment=bench",
        ]
        config = load_config(REPO / "experiments/configs/tiny.yaml",
                             overrides + args.set + [MODES[mode] or "tracking.enabled=false"])
        callbacks = [MLflowCallback(config.tracking)] if MODES[mode] else []
        start = time.perf_counter()
        fit(config, callbacks=callbacks)
        return time.perf_counter() - start

    for mode in MODES:  # warm-up: first-call costs of the kernels and of the store
        run(mode, -1)
    times: dict[str, list[float]] = {mode: [] for mode in MODES}
    order = list(MODES)
    for i in range(args.rounds):
        for mode in order[i % len(order):] + order[: i % len(order)]:
            times[mode].append(run(mode, i))
    base = times["off"]
    print(f"tracking overhead, tiny.yaml, {args.images} images of {args.size}x{args.size}, widths {args.widths}, "
          f"{args.epochs} epochs, {args.rounds} rounds ({sys.platform})")
    print(f"  {'mode':<22} {'median s':>9} {'min s':>7} {'overhead':>9}")
    summary = {}
    for mode, values in times.items():
        diffs = [v - b for v, b in zip(values, base)]
        fraction = statistics.median(diffs) / statistics.median(base)
        summary[mode] = fraction
        cell = "" if mode == "off" else f"{100 * fraction:8.1f}%"
        print(f"  {mode:<22} {statistics.median(values):9.2f} {min(values):7.2f} {cell:>9}")
    print(f"  once per process: import mlflow {import_s:.2f} s; create the sqlite store {store_s:.2f} s")
    print(json.dumps({"run_s_tracking_off": round(statistics.median(base), 3),
                      "run_s_tracking_on": round(statistics.median(times["on"]), 3),
                      "overhead_fraction": round(summary["on"], 4),
                      "overhead_fraction_inline": round(summary["on, inline"], 4),
                      "import_mlflow_s": round(import_s, 2), "create_store_s": round(store_s, 2)}))


if __name__ == "__main__":
    main()
