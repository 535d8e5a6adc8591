"""Reading finished training runs back from a store, for `compare --experiment`."""

from __future__ import annotations

import math
from dataclasses import dataclass

from hybridunet.errors import UsageError
from hybridunet.tracking.store import client as make_client


@dataclass(frozen=True)
class FinishedRun:
    run_id: str
    label: str
    seed: int
    dice: float
    miou: float
    start_time: int
    config_hash: str | None
    data_fingerprint: str | None


def finished_runs(experiment: str, uri: str | None = None) -> list[FinishedRun]:
    """Every FINISHED training run of `experiment` (those that logged best_val_dice), newest first."""
    c = make_client(uri)
    found = c.get_experiment_by_name(experiment)
    if found is None:
        raise UsageError(f"no MLflow experiment named {experiment!r} at {c.tracking_uri}")
    runs = c.search_runs([found.experiment_id], "attributes.status = 'FINISHED' and metrics.best_val_dice >= 0",
                         max_results=10000, order_by=["attributes.start_time DESC"])
    return [
        FinishedRun(
            run_id=r.info.run_id,
            label=r.data.tags.get("label") or r.data.tags.get("model", "?"),
            seed=int(r.data.tags.get("seed", -1)),
            dice=r.data.metrics["best_val_dice"],
            miou=r.data.metrics.get("best_val_miou", math.nan),
            start_time=r.info.start_time,
            config_hash=r.data.tags.get("config.hash"),
            data_fingerprint=r.data.tags.get("data.fingerprint"),
        )
        for r in runs
    ]
