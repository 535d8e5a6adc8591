"""What logging the trained model (tracking.log_model: onnx, the default) costs a demo run.

    python benchmarks/model_logging.py [--arms unet hybrid_unet_resdec] [--kind onnx] [--rounds 2]
        [--epochs N] [--images N] [--size N] [--widths ...] [--data DIR] [--store URI] [--no-full]

Each arm trains the demo's recipe (seed 0, tracked, on the demo's synthetic data) in a
fresh process, as `hybridunet train` does, and the time inside the model step (export,
`log_model`, linking the metrics) is taken apart from the run's wall time, and so is the
CPU time the logging worker spends ahead, during training, on the model's once-a-process
costs (importing onnx, MLflow's scan of the installed packages; `models.prepare`). The same
process then logs the checkpoint again: what a comparison's or study's later model costs.
Each round runs an arm without and with the model back to back (alternating which goes
first), and the differences are taken within a round, so that a machine that slows down
over minutes (shared cores) shifts both runs of a pair alike; the process's CPU time (user +
system) is reported beside its wall time. Also the models' size on disk, at the demo's and
the full presets' widths (untrained, exported the same way). Prints a table, then a JSON
line.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def cpu_seconds() -> float:
    """This process's CPU time, its finished children's (data-loader workers) included."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def paired(runs: list[dict], arm: str, kind: str, key: str) -> list[float]:
    """Per round, (with the model - without) / without for `key`: a round's two runs ran back to back."""
    mine = [r for r in runs if r["arm"] == arm]
    pairs = zip([r for r in mine if r["kind"] == "none"], [r for r in mine if r["kind"] == kind])
    return [(b[key] - a[key]) / a[key] for a, b in pairs]


def child(arm: str, kind: str, folder: Path, data: Path, shrink: list[str], store: str | None) -> dict:
    """One arm's tracked demo run in this process; the model step timed."""
    from hybridunet.config import apply_overrides, parse_config
    from hybridunet.demo import RECIPE
    from hybridunet.engine import fit
    from hybridunet.tracking import MLflowCallback, models

    spent: dict[str, float] = {"model_s": 0.0, "ahead_cpu_s": 0.0}
    log, prepare = models.try_log_model, models.prepare

    def timed_prepare(*args, **kwargs):  # on the logging worker's thread: its own CPU time
        start = time.thread_time()
        try:
            return prepare(*args, **kwargs)
        finally:
            spent["ahead_cpu_s"] += time.thread_time() - start

    def timed_log(*args, **kwargs):
        start = time.perf_counter()
        try:
            return log(*args, **kwargs)
        finally:
            spent["model_s"] += time.perf_counter() - start

    models.try_log_model, models.prepare = timed_log, timed_prepare
    tree = {**RECIPE, "model": {**RECIPE["model"], "name": arm}, "seed": 0,
            "data": {**RECIPE["data"], "root": str(data)}, "train": {**RECIPE["train"], "out_dir": str(folder / arm)},
            "tracking": {**RECIPE["tracking"], "uri": store or f"sqlite:///{folder / 'mlflow.db'}",
                         "log_model": kind}}
    config = parse_config(apply_overrides(tree, shrink), "the demo recipe")
    start, cpu = time.perf_counter(), cpu_seconds()
    try:
        result = fit(config, callbacks=[MLflowCallback(config.tracking)])
    finally:
        models.try_log_model, models.prepare = log, prepare
    row = {"arm": arm, "kind": kind, "run_s": time.perf_counter() - start, "cpu_s": cpu_seconds() - cpu, **spent}
    if kind == "none":
        return row
    if "model_uri" not in result:
        raise SystemExit(f"{arm}: the model was not logged")
    again = time.perf_counter()
    models.log_checkpoint_model(result["run_id"], result["checkpoint"], kind, uri=config.tracking.uri)
    row["again_s"] = time.perf_counter() - again
    from mlflow.artifacts import download_artifacts

    stored = Path(download_artifacts(result["model_uri"], dst_path=str(folder / "model")))
    row["model_mb"] = sum(p.stat().st_size for p in stored.rglob("*") if p.is_file()) / 1e6
    return row


def full_width_mb(recipe: str, folder: Path) -> float:
    """ONNX size of an untrained model at the widths of the packaged recipe `recipe`."""
    from hybridunet.checkpoint import save_checkpoint
    from hybridunet.config import load_config
    from hybridunet.export import export_onnx
    from hybridunet.models import create_model

    config = load_config(recipe)
    kwargs = config.model.build_kwargs()
    model = create_model(config.model.name, **kwargs)
    spec = {"name": config.model.name, **kwargs}
    checkpoint = save_checkpoint(folder / f"{recipe}.safetensors", model, {
        "model": spec, "class_names": [f"class_{i}" for i in range(config.model.num_classes)],
        "config": config.to_dict(), "epoch": 0})
    return export_onnx(checkpoint, folder / f"{recipe}.onnx").stat().st_size / 1e6


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arms", nargs="+", default=["unet", "hybrid_unet_resdec"])
    parser.add_argument("--kind", default="onnx", choices=["onnx", "pt2", "pickle"])
    parser.add_argument("--rounds", type=int, default=2, help="fresh runs of each arm with and without the model")
    parser.add_argument("--epochs", type=int, help="the demo recipe's 16 by default")
    parser.add_argument("--images", type=int, help="training images (the demo's 200 by default)")
    parser.add_argument("--size", type=int, help="the demo's 48 by default")
    parser.add_argument("--widths", type=int, nargs="+")
    parser.add_argument("--data", type=Path, help="the demo's synthetic data (made if missing; default data/synthetic)")
    parser.add_argument("--store", help="an MLflow tracking URI for every run (default: a new sqlite store a run)")
    parser.add_argument("--full", action=argparse.BooleanOptionalAction, default=True,
                        help="also export each arm at its full recipe's widths for its size on disk")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--child-kind", help=argparse.SUPPRESS)
    parser.add_argument("--folder", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    shrink = [f"train.epochs={args.epochs}" if args.epochs else None, f"data.size={args.size}" if args.size else None,
              f"data.limit_train={args.images}" if args.images else None,
              f"model.widths=[{','.join(map(str, args.widths))}]" if args.widths else None]
    shrink = [s for s in shrink if s]
    if args.child:
        print(json.dumps(child(args.child, args.child_kind, Path(args.folder), args.data, shrink, args.store)))
        return
    from hybridunet.data.synthetic import ensure_synthetic
    from hybridunet.demo import DATA, SYNTHETIC

    data = (args.data or REPO / DATA).resolve()
    ensure_synthetic(data, **SYNTHETIC)
    runs: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.rounds):
            for arm in args.arms:
                kinds = ("none", args.kind) if i % 2 == 0 else (args.kind, "none")  # alternating order
                for kind in kinds:
                    folder = Path(tmp) / f"{arm}-{kind}-{i}"
                    folder.mkdir()
                    command = [sys.executable, __file__, "--child", arm, "--child-kind", kind, "--folder", str(folder),
                               "--data", str(data)] + [f"--{k}={v}" for k, v in (("epochs", args.epochs),
                               ("images", args.images), ("size", args.size), ("store", args.store)) if v]
                    command += ["--widths", *map(str, args.widths)] if args.widths else []
                    out = subprocess.run(command, capture_output=True, text=True, cwd=folder)
                    if out.returncode != 0:
                        sys.exit(f"{arm}: {out.stderr[-3000:]}")
                    runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
        full = {arm: full_width_mb(arm, Path(tmp)) for arm in args.arms} if args.kind == "onnx" and args.full else {}
    print(f"tracking.log_model={args.kind} against none: the demo recipe, seed 0, a fresh process a run, "
          f"{args.rounds} rounds (medians; diffs paired within a round)")
    print(f"{'arm':<20} {'none s':>7} {args.kind + ' s':>7} {'wall diff':>9} {'range':>15} {'cpu diff':>8} "
          f"{'ahead s':>8} {'model s':>8} {'again s':>8} {'demo MB':>8} {'full MB':>8}")
    rows = []
    for arm in args.arms:
        def median(kind: str, key: str, arm: str = arm) -> float:
            return statistics.median(r[key] for r in runs if r["arm"] == arm and r["kind"] == kind)

        wall, cpu = paired(runs, arm, args.kind, "run_s"), paired(runs, arm, args.kind, "cpu_s")
        row = {"arm": arm, "none_s": median("none", "run_s"), "model_run_s": median(args.kind, "run_s"),
               "wall_diff": statistics.median(wall), "wall_diffs": wall, "cpu_diff": statistics.median(cpu),
               "ahead_cpu_s": median(args.kind, "ahead_cpu_s"), "model_s": median(args.kind, "model_s"),
               "again_s": median(args.kind, "again_s"), "model_mb": median(args.kind, "model_mb"),
               "full_mb": full.get(arm)}
        rows.append(row)
        spread = f"{min(wall):+.1%}..{max(wall):+.1%}"
        print(f"{arm:<20} {row['none_s']:7.1f} {row['model_run_s']:7.1f} {row['wall_diff']:+9.1%} {spread:>15} "
              f"{row['cpu_diff']:+8.1%} {row['ahead_cpu_s']:8.2f} {row['model_s']:8.2f} {row['again_s']:8.2f} "
              f"{row['model_mb']:8.1f} " + (f"{row['full_mb']:8.1f}" if row["full_mb"] else f"{'-':>8}"))
    print("wall diff: the run's wall time with the model against without, the median of the rounds' pairs (range: "
          "all pairs); cpu diff: the same for the process's CPU time; ahead s: CPU the logging worker spent on the "
          "model's once-a-process costs during training; model s: the model step at the run's end; again s: a "
          "second model in the same process (what a comparison's or a study's later model costs)")
    print(json.dumps({"rows": rows, "runs": runs}))


if __name__ == "__main__":
    main()
