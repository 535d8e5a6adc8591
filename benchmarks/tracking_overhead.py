"""What MLflow tracking costs a small training run.

    python benchmarks/tracking_overhead.py [--recipe tiny|demo] [--rounds 6] [--epochs N] [--images N] [--size N] [--widths ...]

Trains a recipe with tracking off, on (the default: calls made by a low-priority worker
thread) and on with the calls made inline in the training loop (tracking.background=false),
in rotating order, in one process. The recipes: `tiny` is tiny.yaml on 32 synthetic 64x64
images for 6 epochs (~2.5 s); `demo` is one run of `make demo` (unet, seed 0, ~25 s).
--epochs, --images, --size and --widths change the recipe.

Two figures per mode. "overhead" is measured: the median over rounds of each round's
difference to that round's untracked run, over the median untracked run (these 2-core
machines drift by tens of percent between runs, so it needs many rounds on short runs
and cannot resolve 1% on long ones). "accounted" is counted: the time the training
thread spent inside the tracking hooks plus the CPU time of the worker's MLflow calls
(inline, the calls are inside the hooks); it double-counts the end of the run (the hooks
wait there for the worker's last calls) and leaves out contention, but is steady from
round to round. The once-per-process costs
(importing MLflow, creating the sqlite store) are measured apart. Prints a table, then a
JSON line.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
MODES = {"off": None, "on": "tracking.background=true", "on, inline": "tracking.background=false"}


def recipe(name: str) -> tuple[dict[str, Any], int]:
    """The config tree of a recipe and the size its synthetic photos are drawn at."""
    if name == "demo":
        from hybridunet.demo import RECIPE

        return {**copy.deepcopy(RECIPE), "seed": 0}, 256  # the demo's data: 256x256, resized to 48
    from hybridunet.config import config_tree

    tree = config_tree("tiny")
    tree["data"].update(limit_train=32, size=64)
    tree["train"]["epochs"] = 6
    return tree, 64


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipe", choices=["tiny", "demo"], default="tiny")
    parser.add_argument("--epochs", type=int)
    parser.add_argument("--images", type=int, help="training images")
    parser.add_argument("--size", type=int, help="crop size (the tiny recipe also draws its photos at this size)")
    parser.add_argument("--widths", type=int, nargs="+")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="config overrides for every mode")
    args = parser.parse_args(argv)
    home = os.getcwd()
    with tempfile.TemporaryDirectory() as folder:  # ~0.7 GB of checkpoints by the end of a tiny run
        os.chdir(folder)
        try:
            measure(args, Path(folder))
        finally:
            os.chdir(home)


def measure(args: argparse.Namespace, tmp: Path) -> None:
    from hybridunet.config import apply_overrides, parse_config
    from hybridunet.data.synthetic import write_split
    from hybridunet.engine import fit

    tree, photo_size = recipe(args.recipe)
    chosen = {"train.epochs": args.epochs, "data.limit_train": args.images, "data.size": args.size,
              "model.widths": f"[{','.join(map(str, args.widths))}]" if args.widths else None}
    # The model (tracking.log_model) is measured by model_logging.py: --set tracking.log_model=onnx adds it here.
    tree = apply_overrides(tree, [f"{k}={v}" for k, v in chosen.items() if v is not None]
                           + ["tracking.log_model=none", *args.set])
    if args.recipe == "tiny" and args.size:
        photo_size = args.size
    data = tree["data"]
    write_split(tmp / "data", "train", data["limit_train"], size=photo_size)
    write_split(tmp / "data", "val", data.get("limit_val", 8), size=photo_size)

    start = time.perf_counter()
    from hybridunet.tracking import MLflowCallback, experiment_id  # imports MLflow

    import_s = time.perf_counter() - start
    uri = f"sqlite:///{tmp / 'mlflow.db'}"
    start = time.perf_counter()
    experiment_id("bench", uri)
    store_s = time.perf_counter() - start

    from hybridunet.tracking import callback as tracking_callback

    chart_s: list[float] = []  # the end-of-run charts, drawn on the training thread
    draw_charts = tracking_callback.save_run_charts

    def timed_charts(*a, **k) -> None:
        start = time.perf_counter()
        draw_charts(*a, **k)
        chart_s.append(time.perf_counter() - start)

    tracking_callback.save_run_charts = timed_charts

    class TimedCallback(MLflowCallback):
        """Adds up the training thread's time inside the hooks."""

        hooks_s = 0.0

        def _timed(self, hook, *args):
            start = time.perf_counter()
            try:
                return hook(*args)
            finally:
                self.hooks_s += time.perf_counter() - start

        def on_fit_start(self, run):
            self._timed(super().on_fit_start, run)

        def on_epoch_end(self, run, epoch, metrics):
            self._timed(super().on_epoch_end, run, epoch, metrics)

        def on_fit_end(self, run, result):
            self._timed(super().on_fit_end, run, result)

    def run(mode: str, i: int) -> tuple[float, float]:
        overrides = [f"data.root={tmp / 'data'}", f"train.out_dir={tmp / f'run-{i}-{len(mode)}'}",
                     f"tracking.uri={uri}", "tracking.experiment=bench", MODES[mode] or "tracking.enabled=false"]
        config = parse_config(apply_overrides(tree, overrides), f"the {args.recipe} recipe")
        callbacks = [TimedCallback(config.tracking)] if MODES[mode] else []
        start = time.perf_counter()
        fit(config, callbacks=callbacks)
        seconds = time.perf_counter() - start
        return seconds, sum(cb.hooks_s + (cb.logging_cpu_s if cb.config.background else 0.0) for cb in callbacks)

    for mode in MODES:  # warm-up: first-call costs of the kernels and of the store
        run(mode, -1)
    times: dict[str, list[float]] = {mode: [] for mode in MODES}
    counted: dict[str, list[float]] = {mode: [] for mode in MODES}
    order = list(MODES)
    for i in range(args.rounds):
        for mode in order[i % len(order):] + order[: i % len(order)]:
            seconds, spent = run(mode, i)
            times[mode].append(seconds)
            counted[mode].append(spent)
    base = times["off"]
    print(f"tracking overhead, {args.recipe} recipe: {data['limit_train']} images, crops of {data['size']}, "
          f"widths {tree['model']['widths']}, {tree['train']['epochs']} epochs, {args.rounds} rounds ({sys.platform})")
    print(f"  {'mode':<12} {'median s':>9} {'min s':>7} {'overhead':>9} {'accounted':>17}")
    summary = {}
    for mode, values in times.items():
        diffs = [v - b for v, b in zip(values, base)]
        fraction = statistics.median(diffs) / statistics.median(base)
        spent = statistics.median(counted[mode])
        summary[mode] = (fraction, spent)
        cells = ("", "") if mode == "off" else (f"{100 * fraction:8.1f}%",
                                                f"{spent:.3f} s ({100 * spent / statistics.median(base):.1f}%)")
        print(f"  {mode:<12} {statistics.median(values):9.2f} {min(values):7.2f} {cells[0]:>9} {cells[1]:>17}")
    tracking_callback.save_run_charts = draw_charts
    charts = statistics.median(chart_s[2:] or chart_s)  # after the warm-up runs (font cache)
    print(f"  end-of-run charts (matplotlib): median {charts:.3f} s a run, "
          f"{100 * charts / statistics.median(base):.1f}% of an untracked run")
    print(f"  once per process: import mlflow {import_s:.2f} s; create the sqlite store {store_s:.2f} s")
    print(json.dumps({"recipe": args.recipe,
                      "run_s_tracking_off": round(statistics.median(base), 3),
                      "run_s_tracking_on": round(statistics.median(times["on"]), 3),
                      "overhead_fraction": round(summary["on"][0], 4),
                      "overhead_fraction_inline": round(summary["on, inline"][0], 4),
                      "accounted_s": round(summary["on"][1], 4),
                      "accounted_fraction": round(summary["on"][1] / statistics.median(base), 4),
                      "charts_s": round(charts, 3), "charts_fraction": round(charts / statistics.median(base), 4),
                      "import_mlflow_s": round(import_s, 2), "create_store_s": round(store_s, 2)}))


if __name__ == "__main__":
    main()
