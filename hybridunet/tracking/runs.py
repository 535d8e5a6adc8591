"""Finished training runs as `RunRecord`s, read back from a store for `compare --experiment`,
and the held-out scores a comparison adds to a run after it ended."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from hybridunet.config import TrackingConfig
from hybridunet.errors import UsageError
from hybridunet.results import RunRecord, Scores
from hybridunet.tracking.store import client as make_client
from hybridunet.tracking.store import tracking_uri


def finished_runs(experiment: str, uri: str | None = None) -> list[RunRecord]:
    """Every FINISHED training run of `experiment` (those that logged best_val_dice), newest first."""
    c = make_client(uri)
    found = c.get_experiment_by_name(experiment)
    if found is None:
        raise UsageError(f"no MLflow experiment named {experiment!r} at {c.tracking_uri}")
    runs = c.search_runs([found.experiment_id], "attributes.status = 'FINISHED' and metrics.best_val_dice >= 0",
                         max_results=10000, order_by=["attributes.start_time DESC"])
    return [_record(r) for r in runs]


def _record(run: Any) -> RunRecord:
    metrics, tags = run.data.metrics, run.data.tags
    per_class = {k.removeprefix("best_val_dice/"): v for k, v in metrics.items() if k.startswith("best_val_dice/")}
    test = None
    if "test_dice" in metrics:
        test = Scores(metrics["test_dice"], metrics.get("test_miou", math.nan),
                      {k.removeprefix("test_dice/"): v for k, v in metrics.items() if k.startswith("test_dice/")})
    seconds = (run.info.end_time - run.info.start_time) / 1000 if run.info.end_time else None
    return RunRecord(
        label=tags.get("label") or tags.get("model", "?"), seed=int(tags.get("seed", -1)),
        val=Scores(metrics["best_val_dice"], metrics.get("best_val_miou", math.nan), per_class), test=test,
        config_hash=tags.get("config.hash"), data_fingerprint=tags.get("data.fingerprint"), seconds=seconds,
        run_id=run.info.run_id, checkpoint=None,
        cost={k.removeprefix("cost/"): v for k, v in metrics.items() if k.startswith("cost/")},
    )


def test_scores(metrics: Mapping[str, Any]) -> dict[str, float]:
    """A held-out split's scores as metrics: `test_dice`, `test_miou`, `test_dice/<class>`."""
    values = {"test_dice": metrics["dice"], "test_miou": metrics["miou"],
              **{f"test_dice/{k}": v for k, v in (metrics.get("per_class_dice") or {}).items()}}
    return {k: float(v) for k, v in values.items() if v is not None and math.isfinite(v)}


def log_test_scores(run_id: str, metrics: Mapping[str, Any], config: TrackingConfig) -> None:
    """Add a held-out split's scores (`test_scores`) to a run, now."""
    from hybridunet.tracking.calls import Sender, metric_rows

    Sender(tracking_uri(config)).send({"call": "log_batch", "metrics": metric_rows(test_scores(metrics))}, run_id)


def match_call(entries: Mapping[str, Any]) -> dict[str, Any]:
    """The tracking call that records a run trained at matched cost: the mode and multiplier
    as params, its steps and training TFLOPs as metrics."""
    from hybridunet.tracking.calls import metric_rows

    return {"call": "log_batch",
            "params": [[k, str(entries[k])] for k in ("match_cost", "cost_multiplier")],
            "metrics": metric_rows({k: float(entries[k]) for k in ("train_steps", "train_tflops")})}


def log_match(run_id: str, entries: Mapping[str, Any], config: TrackingConfig) -> None:
    """Record a run trained at matched cost (`match_call`), now."""
    from hybridunet.tracking.calls import Sender

    Sender(tracking_uri(config)).send(match_call(entries), run_id)


def trial_runs(config: TrackingConfig, study: str, number: int) -> list[dict[str, Any]]:
    """The FINISHED training runs of trial `number` of `study` (one per seed; a pruned one
    too): run_id, best_val_dice (None where pruned) and checkpoint (in the run's out_dir)."""
    c = make_client(tracking_uri(config))
    found = c.get_experiment_by_name(config.experiment)
    if found is None:
        return []
    runs = c.search_runs([found.experiment_id], f"tags.`optuna.study` = '{study}' and tags.`optuna.trial` = "
                         f"'{number}' and attributes.status = 'FINISHED'")
    return [{"run_id": r.info.run_id, "best_val_dice": r.data.metrics.get("best_val_dice"),
             "checkpoint": f"{r.data.tags['out_dir']}/best.safetensors"} for r in runs if "out_dir" in r.data.tags]
