"""How late tracking calls land while training holds both cores, and how long the backlog gets.

    python benchmarks/tracking_latency.py [--recipe demo|tiny] [--store server|sqlite] [--set KEY=VALUE ...]

Trains one run of a recipe (`demo`: one run of `make demo`, unet, seed 0; `tiny`: tiny.yaml
on 32 synthetic 64x64 images for 6 epochs) tracked with the default settings
(tracking.flush_secs=5, four validation pictures an epoch, the ONNX model at the end),
into a local `mlflow server` on 127.0.0.1 (or the sqlite store), and times each call the
logging worker (idle priority: it gets a core only when training leaves one) makes:
from its submission to its landing. Prints a table by kind of call, for the calls
submitted while training ran and for those submitted at its end, then a JSON line.
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


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipe", choices=["demo", "tiny"], default="demo")
    parser.add_argument("--store", choices=["server", "sqlite"], default="server")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="config overrides")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(REPO / "benchmarks"))
    import torch
    from common import machine
    from tracking_overhead import recipe

    from hybridunet.config import apply_overrides, parse_config
    from hybridunet.data.synthetic import write_split
    from hybridunet.engine import fit
    from hybridunet.testing import mlflow_server
    from hybridunet.tracking import MLflowCallback, worker

    tree, size = recipe(args.recipe)
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        for split, count in (("train", tree["data"].get("limit_train") or 240), ("val", 48)):
            write_split(root / "data", split, count, size=size, seed=0)
        server = mlflow_server("server", ["--backend-store-uri", f"sqlite:///{root / 'server.db'}",
                                          "--artifacts-destination", str(root / "artifacts"), "--workers", "1"],
                               env={**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"})
        uri = server.__enter__() if args.store == "server" else f"sqlite:///{root / 'mlflow.db'}"
        try:
            overrides = [f"data.root={root / 'data'}", f"train.out_dir={root / 'run'}", "tracking.enabled=true",
                         f"tracking.uri={uri}", "tracking.experiment=latency", "train.progress=false", *args.set]
            config = parse_config(apply_overrides({**tree, "seed": 0}, overrides), f"the {args.recipe} recipe")
            worker.TRACE = []
            ended = {}

            class EndOfTraining(MLflowCallback):
                def on_fit_end(self, run, result):
                    ended["at"] = time.monotonic()
                    super().on_fit_end(run, result)

            start = time.monotonic()
            fit(config, callbacks=[EndOfTraining(config.tracking)])
            took = time.monotonic() - start
            trace, worker.TRACE = worker.TRACE, None
        finally:
            if args.store == "server":
                server.__exit__(None, None, None)
    rows = summarise(trace, ended["at"])
    print(f"{args.recipe} recipe, {args.store} store, {machine(torch.device('cpu'))}; run {took:.1f} s, "
          f"of which {took - (ended['at'] - start):.1f} s after training (the end's calls, the model)")
    print(f"{'when':<16} {'call':<14} {'n':>4} {'median s':>9} {'p95 s':>7} {'max s':>7} {'max backlog':>12}")
    for row in rows:
        print(f"{row['when']:<16} {row['call']:<14} {row['n']:>4} {row['median_s']:>9.3f} {row['p95_s']:>7.3f} "
              f"{row['max_s']:>7.3f} {row['max_backlog']:>12}")
    print(json.dumps({"recipe": args.recipe, "store": args.store, "seconds": took, "rows": rows}))


def summarise(trace: list[list], end: float) -> list[dict]:
    """Latency by (during training | at the end, kind of call): n, median, p95, max, and the
    most calls waiting when one of them was submitted."""
    groups: dict[tuple[str, str], list[list]] = {}
    for kind, submitted, landed, backlog in trace:
        if landed is None:
            continue
        groups.setdefault(("during training" if submitted < end else "at the end", kind), []).append(
            [landed - submitted, backlog])
    rows = []
    for (when, kind), found in sorted(groups.items()):
        latencies = sorted(x for x, _ in found)
        rows.append({"when": when, "call": kind, "n": len(found), "median_s": statistics.median(latencies),
                     "p95_s": latencies[min(len(latencies) - 1, int(0.95 * len(latencies)))],
                     "max_s": latencies[-1], "max_backlog": max(b for _, b in found)})
    return rows


if __name__ == "__main__":
    main()
