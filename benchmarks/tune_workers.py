"""Optuna trials per minute with 1 and 2 workers sharing one storage: sqlite and PostgreSQL.

    python benchmarks/tune_workers.py [--trials 6] [--epochs 2] [--images 16] [--size 64]

Each worker is the documented `hybridunet tune` command on the tiny recipe (tiny.yaml on
synthetic data, tracking off), started together on one storage URL; PostgreSQL is a
throwaway cluster started for the run (hybridunet.testing). Trials per minute count the
finished trials over the wall time from the workers' start to the last one's exit, process
start-up included. On 2 cores two workers share the same cores: this checks the mechanics
(exactly --trials finished, unique numbers) more than scaling. Prints a table, then a JSON line.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SPACE = {"sampler": {"seed": 0, "n_startup_trials": 2}, "pruner": {"name": "none"},
         "params": {"optim.lr": {"type": "float", "low": 1e-3, "high": 1e-2, "log": True}}}


def run_workers(workers: int, storage: str, study: str, folder: Path, args: argparse.Namespace) -> dict:
    import yaml

    space = folder / "space.yaml"
    space.write_text(yaml.safe_dump(SPACE))
    cmd = [sys.executable, "-m", "hybridunet", "tune", "--config", str(REPO / "experiments/configs/tiny.yaml"),
           "--search", str(space), "--trials", str(args.trials), "--storage", storage, "--study", study,
           f"data.root={folder / 'data'}", f"train.epochs={args.epochs}", f"data.limit_train={args.images}",
           f"data.size={args.size}", "tracking.enabled=false"]
    threads = max(1, (os.cpu_count() or 2) // workers)  # the machine's cores shared out
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    start = time.perf_counter()
    procs = [subprocess.Popen(cmd, cwd=folder, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
             for _ in range(workers)]
    for proc in procs:
        if proc.wait() != 0:
            raise SystemExit(f"a worker failed on {storage.split(':')[0]}:\n{proc.stderr.read().decode()[-2000:]}")
    elapsed = time.perf_counter() - start
    import optuna
    from optuna.trial import TrialState

    trials = optuna.load_study(study_name=study, storage=storage).get_trials(
        states=(TrialState.COMPLETE, TrialState.PRUNED))
    return {"finished": len(trials), "unique": len({t.number for t in trials}) == len(trials),
            "seconds": elapsed, "trials_per_min": 60 * len(trials) / elapsed}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=6, help="finished trials per study")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--images", type=int, default=16, help="training images")
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--backends", nargs="+", default=["sqlite", "postgresql"], choices=["sqlite", "postgresql"])
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="worker counts to measure")
    args = parser.parse_args(argv)
    from hybridunet.data.synthetic import write_split
    from hybridunet.testing import PostgresUnavailable, postgres_cluster

    rows = {}
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
        folder = Path(tmp)
        write_split(folder / "data", "train", args.images, size=args.size)
        write_split(folder / "data", "val", 8, size=args.size)
        pg = None
        if "postgresql" in args.backends:
            try:
                pg = stack.enter_context(postgres_cluster())
            except PostgresUnavailable as err:
                print(f"skipping PostgreSQL: {err}", file=sys.stderr)
        for backend in args.backends:
            for workers in args.workers:
                name = f"{backend}_{workers}"
                if backend == "sqlite":
                    storage = f"sqlite:///{folder / f'{name}.db'}"
                elif pg is not None:
                    storage = pg.createdb(name)
                else:
                    continue
                rows[name] = run_workers(workers, storage, name, folder, args)
    print(f"tune_workers: tiny recipe ({args.images} images of {args.size}x{args.size}, {args.epochs} epochs), "
          f"{args.trials} finished trials per study, {os.cpu_count()} cores")
    print(f"  {'storage':<12} {'workers':>7} {'finished':>8} {'seconds':>8} {'trials/min':>10}")
    for name, r in rows.items():
        backend, workers = name.rsplit("_", 1)
        print(f"  {backend:<12} {workers:>7} {r['finished']:>8} {r['seconds']:>8.1f} {r['trials_per_min']:>10.1f}")
    print(json.dumps({**{f"{name}_trials_per_min": round(r["trials_per_min"], 2) for name, r in rows.items()},
                      **{f"{name}_finished": r["finished"] for name, r in rows.items()},
                      "all_unique": all(r["unique"] for r in rows.values())}))


if __name__ == "__main__":
    main()
