"""A parent MLflow run that holds nested runs: a comparison's seeds, a study's trials."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from mlflow.entities import Metric, Param, RunStatus, RunTag
from mlflow.tracking import MlflowClient

from hybridunet.config import TrackingConfig
from hybridunet.tracking.store import experiment_id, tracking_uri


class ParentRun:
    """Handle on a parent run: what it logs goes to it; its children name its `run_id`."""

    def __init__(self, client: MlflowClient, run_id: str) -> None:
        self.client, self.run_id = client, run_id

    def log_params(self, params: dict[str, Any]) -> None:
        self.client.log_batch(self.run_id, params=[Param(k, str(v)) for k, v in params.items()])

    def log_metrics(self, metrics: dict[str, float], step: int = 0, timestamp: int | None = None) -> None:
        """With `timestamp` (ms) fixed by what the values describe, logging them again adds
        nothing: the store drops a point equal in key, value, step and time."""
        now = int(time.time() * 1000) if timestamp is None else timestamp
        rows = [Metric(k, float(v), now, step) for k, v in metrics.items()]
        for i in range(0, len(rows), 1000):  # the store's limit per batch
            self.client.log_batch(self.run_id, metrics=rows[i : i + 1000])

    def log_image(self, image: Any, key: str, step: int = 0) -> None:
        """An image under `key`: MLflow's chart view draws it as a chart of this run."""
        self.client.log_image(self.run_id, image, key=key, step=step, synchronous=True)

    def rename(self, name: str) -> None:
        self.client.update_run(self.run_id, name=name[:250])

    def history(self, run_id: str, key: str) -> list[float]:
        """Another run's (a child's) metric `key`, one value per step in step order."""
        points = sorted(self.client.get_metric_history(run_id, key), key=lambda m: (m.step, m.timestamp))
        return list({m.step: m.value for m in points}.values())

    def set_tags(self, tags: dict[str, Any]) -> None:
        self.client.log_batch(self.run_id, tags=[RunTag(k, str(v)) for k, v in tags.items()])

    def log_text(self, text: str, artifact_file: str) -> None:
        self.client.log_text(self.run_id, text, artifact_file)

    def log_json(self, value: Any, artifact_file: str) -> None:
        self.log_text(json.dumps(value, indent=2), artifact_file)

    def log_figure(self, figure: Any, artifact_file: str) -> None:
        self.client.log_figure(self.run_id, figure, artifact_file)

    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None:
        self.client.log_artifact(self.run_id, str(path), artifact_path)


@contextlib.contextmanager
def parent_run(config: TrackingConfig, run_name: str, tags: dict[str, str] | None = None,
               run_id: str | None = None) -> Iterator[ParentRun]:
    """Create a parent run (or continue `run_id`, e.g. a resumed study's) for the block.

    It ends FINISHED when the block does, FAILED on an error and KILLED on Ctrl-C: a
    parent is never left RUNNING.
    """
    uri = tracking_uri(config)
    client = MlflowClient(uri)
    if run_id is None:
        created = client.create_run(experiment_id(config.experiment, uri), run_name=run_name, tags=tags or {})
        run_id = created.info.run_id
    else:
        client.update_run(run_id, status="RUNNING")
    try:
        yield ParentRun(client, run_id)
    except BaseException as error:
        status = RunStatus.KILLED if isinstance(error, KeyboardInterrupt) else RunStatus.FAILED
        client.set_terminated(run_id, RunStatus.to_string(status))
        raise
    client.set_terminated(run_id, "FINISHED")


PARENT_KEY = "hybridunet.parent_key"


def shared_parent_id(config: TrackingConfig, key: str, run_name: str, tags: dict[str, str] | None = None) -> str:
    """The id of the one parent run keyed `key` (e.g. a study shared by many workers), created
    if there is none. Workers that start together each create one, wait for the others'
    to land, and all keep the earliest; the others delete their own."""
    uri = tracking_uri(config)
    client = MlflowClient(uri)
    experiment = experiment_id(config.experiment, uri)
    query = f"tags.`{PARENT_KEY}` = '{key}'"
    order = ["attributes.start_time ASC", "attributes.run_id ASC"]

    def earliest() -> str | None:
        found = client.search_runs([experiment], query, order_by=order, max_results=1)
        return found[0].info.run_id if found else None

    known = earliest()
    if known is not None:
        return known
    mine = client.create_run(experiment, run_name=run_name, tags={**(tags or {}), PARENT_KEY: key}).info.run_id
    time.sleep(1.0)  # a run another worker created before ours has been committed by now
    first = earliest() or mine
    if first != mine:
        client.delete_run(mine)
    return first
