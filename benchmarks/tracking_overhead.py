"""What MLflow tracking costs a small training run.

    python benchmarks/tracking_overhead.py [--epochs 6] [--repeats 2]

Trains tiny.yaml (64x64, 32 images, widths 8..128) with tracking off and on, alternating,
in one process. The once-per-process costs (importing MLflow, creating the sqlite store)
are measured apart from the per-run overhead. Prints a table, then a JSON line.
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp())
    os.chdir(tmp)
    from hybridunet.config import load_config
    from hybridunet.data.synthetic import write_split
    from hybridunet.engine import fit

    write_split(tmp / "data", "train", 32, size=64)
    write_split(tmp / "data", "val", 8, size=64)

    start = time.perf_counter()
    import mlflow  # noqa: F401

    from hybridunet.tracking import MLflowCallback, experiment_id, tracking_uri

    import_s = time.perf_counter() - start
    uri = f"sqlite:///{tmp / 'mlflow.db'}"
    start = time.perf_counter()
    experiment_id("bench", uri)
    store_s = time.perf_counter() - start

    def run(tracking: bool, i: int) -> float:
        config = load_config(REPO / "experiments/configs/tiny.yaml", [
            f"data.root={tmp / 'data'}", "data.limit_train=32", f"train.epochs={args.epochs}",
            f"train.out_dir={tmp / f'run-{tracking}-{i}'}", f"tracking.uri={uri}", "tracking.experiment=bench",
        ])
        callbacks = [MLflowCallback(config.tracking)] if tracking else []
        start = time.perf_counter()
        fit(config, callbacks=callbacks)
        return time.perf_counter() - start

    run(False, -1)  # warm-up: first-call costs of the kernels
    off, on = [], []
    for i in range(args.repeats):
        off.append(run(False, i))
        on.append(run(True, i))
    t_off, t_on = statistics.median(off), statistics.median(on)
    overhead = (t_on - t_off) / t_off
    print(f"tracking overhead, tiny.yaml, {args.epochs} epochs, median of {args.repeats} ({sys.platform})")
    print(f"  {'training, tracking off':<36} {t_off:8.2f} s")
    print(f"  {'training, tracking on':<36} {t_on:8.2f} s")
    print(f"  {'per-run overhead':<36} {100 * overhead:7.1f} %")
    print(f"  {'once per process: import mlflow':<36} {import_s:8.2f} s")
    print(f"  {'once per store: create sqlite store':<36} {store_s:8.2f} s")
    print(json.dumps({"run_s_tracking_off": round(t_off, 3), "run_s_tracking_on": round(t_on, 3),
                      "overhead_fraction": round(overhead, 4), "import_mlflow_s": round(import_s, 2),
                      "create_store_s": round(store_s, 2)}))


if __name__ == "__main__":
    main()
