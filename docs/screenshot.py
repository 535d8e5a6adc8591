"""Screenshot what `make demo`'s link shows in `mlflow ui`, with headless Chromium.

    python docs/screenshot.py [--store sqlite:///mlflow.db] [--experiment hybridunet-demo]
        [--out docs/mlflow_demo.png] [--size 1600x1500] [--chromium chromium]
    python docs/screenshot.py --view models --out docs/mlflow_models.png --size 1600x700

Starts `mlflow ui` on the store (127.0.0.1, a free port, telemetry off), opens the link the
demo prints for the newest comparison of the experiment (its parent run's charts), or with
`--view models` the experiment's Models tab (each arm's logged model), and saves a
screenshot, then stops the server. Chromium comes from Debian's packages
(`apt-get install chromium`); nothing here needs the internet.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import tempfile
from pathlib import Path


def newest_comparison(store: str, experiment: str) -> str:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(store)
    found = client.get_experiment_by_name(experiment)
    if found is None:
        raise SystemExit(f"no experiment {experiment!r} in {store}: run `make demo` first")
    runs = client.search_runs([found.experiment_id], "tags.compare = 'parent'", order_by=["attributes.start_time DESC"],
                              max_results=1)
    if not runs:
        raise SystemExit(f"experiment {experiment!r} holds no comparison")
    return runs[0].info.run_id


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", default="sqlite:///mlflow.db")
    parser.add_argument("--experiment", default="hybridunet-demo")
    parser.add_argument("--out", default="docs/mlflow_demo.png")
    parser.add_argument("--size", default="1600x1500", help="the window, WIDTHxHEIGHT")
    parser.add_argument("--chromium", default="chromium")
    parser.add_argument("--view", choices=["charts", "models"], default="charts")
    parser.add_argument("--wait", type=float, default=20, help="seconds the page may take to draw")
    args = parser.parse_args(argv)
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    from hybridunet.testing import mlflow_server
    from hybridunet.tracking import ui_links

    with mlflow_server("ui", ["--backend-store-uri", args.store]) as ui:
        link, _ = ui_links(newest_comparison(args.store, args.experiment), args.store, ui)
        if args.view == "models":  # the same experiment's Models tab, in the model-training view
            link = link.split("/runs?")[0] + "/models?workflowType=machine_learning"
        width, height = args.size.split("x")
        out = Path(args.out).resolve()
        with tempfile.TemporaryDirectory() as profile:
            subprocess.run([args.chromium, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                            f"--user-data-dir={profile}", f"--window-size={width},{height}",
                            f"--virtual-time-budget={int(args.wait * 1000)}", f"--screenshot={out}", link],
                           check=True, capture_output=True, timeout=180)
        print(f"{out}: {link}")


if __name__ == "__main__":
    main()
