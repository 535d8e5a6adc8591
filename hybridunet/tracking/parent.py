"""A parent MLflow run that holds nested runs: a comparison's seeds, a study's trials."""

from __future__ import annotations

import contextlib
import io
import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from mlflow.entities import RunStatus
from mlflow.tracking import MlflowClient

from hybridunet.config import TrackingConfig
from hybridunet.tracking.calls import RUN_REF, Sender, is_outage, metric_rows
from hybridunet.tracking.store import experiment_id, tracking_uri
from hybridunet.tracking.sync import drain
from hybridunet.tracking.worker import LogWorker, say


class ParentRun:
    """Handle on a parent run: what it logs goes to it, through a `LogWorker` (a server that is
    away costs nothing but waiting calls); its children name it as their parent."""

    def __init__(self, worker: LogWorker) -> None:
        self.worker = worker

    @property
    def run_id(self) -> str | None:
        """The run's id, once MLflow has created it."""
        return self.worker.run_id

    def submit(self, call: dict[str, Any]) -> None:
        """Queue a tracking call (`hybridunet.tracking.calls`) on this run, or on the call's ``run_id``."""
        self.worker.submit(call)

    def log_params(self, params: dict[str, Any]) -> None:
        self.submit({"call": "log_batch", "params": [[k, str(v)] for k, v in params.items()]})

    def log_metrics(self, metrics: dict[str, float], step: int = 0, timestamp: int | None = None,
                    run_id: str | None = None) -> None:
        """With `timestamp` (ms) fixed by what the values describe, logging them again adds
        nothing: the store drops a point equal in key, value, step and time. `run_id`: on that
        run (a child's) instead."""
        self.submit({"call": "log_batch", "metrics": metric_rows(metrics, step, timestamp), "run_id": run_id})

    def log_image(self, image: Any, key: str, step: int = 0) -> None:
        """An image under `key`: MLflow's chart view draws it as a chart of this run."""
        self.submit({"call": "log_image", "image": np.asarray(image), "key": key, "step": step,
                     "timestamp": int(time.time() * 1000)})

    def rename(self, name: str) -> None:
        self.submit({"call": "update_run", "name": name[:250]})

    def history(self, run_id: str, key: str) -> list[float]:
        """Another run's (a child's) metric `key`, one value per step in step order; empty
        while the server is away."""
        try:
            found = self.worker.sender.client.get_metric_history(run_id, key)
        except Exception as error:  # noqa: BLE001
            if not is_outage(error):
                raise
            return []
        points = sorted(found, key=lambda m: (m.step, m.timestamp))
        return list({m.step: m.value for m in points}.values())

    def set_tags(self, tags: dict[str, Any]) -> None:
        self.submit({"call": "log_batch", "tags": [[k, str(v)] for k, v in tags.items()]})

    def log_text(self, text: str, artifact_file: str) -> None:
        self.submit({"call": "log_bytes", "data": text.encode(), "artifact_file": artifact_file})

    def log_json(self, value: Any, artifact_file: str) -> None:
        self.log_text(json.dumps(value, indent=2), artifact_file)

    def log_figure(self, figure: Any, artifact_file: str) -> None:
        """A matplotlib figure, drawn here (not on the worker) as a PNG."""
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png")
        self.submit({"call": "log_bytes", "data": buffer.getvalue(), "artifact_file": artifact_file})

    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None:
        self.submit({"call": "log_artifact", "path": str(path), "artifact_path": artifact_path})

    def log_model(self, run_id: str, checkpoint: str | Path, kind: str, registered_model: str | None = None) -> None:
        """Run `run_id` (a child's) logs `checkpoint`'s model as `kind`, unless it has already."""
        if not run_id:
            raise ValueError("log_model needs the run's id (a child's): without it the model would go to this run")
        self.submit({"call": "log_model", "run_id": run_id, "checkpoint": str(checkpoint), "kind": kind,
                     "registered_model": registered_model})


@contextlib.contextmanager
def parent_run(config: TrackingConfig, run_name: str, tags: dict[str, str] | None = None,
               run_id: str | None = None, folder: str | Path | None = None,
               children: str | Path | None = None, parent: Any = None, shared: bool = False) -> Iterator[ParentRun]:
    """Create a parent run (or continue `run_id`, e.g. a resumed study's) for the block; its
    outbox is in `folder` (a comparison's).

    It ends FINISHED when the block does, FAILED on an error and KILLED on Ctrl-C: a
    parent is never left RUNNING while the server answers. At the end, the calls its
    children's runs left below `children` (default: `folder`) are sent too: the server is
    waited for once, at most ``tracking.flush_timeout`` seconds. `parent`: nested under that
    run (an id, or a `ParentRun` of this process: a study's trial over seeds). `shared`: the
    run is shared by several processes (a study's workers; see `Outbox.acquire`).
    """
    children = children if children is not None else folder
    uri = tracking_uri(config)
    worker = LogWorker(Sender(uri), folder, run_id=run_id, shared=shared)
    if run_id is None:
        worker.submit({"call": "create_run", "experiment": config.experiment, "run_name": run_name,
                       "start_time": int(time.time() * 1000), "tags": {**(tags or {}), RUN_REF: uuid.uuid4().hex},
                       "parent": getattr(parent, "worker", parent)})
    else:
        worker.submit({"call": "update_run", "status": "RUNNING"})
    status = "FINISHED"
    try:
        yield ParentRun(worker)
    except BaseException as error:
        status = RunStatus.to_string(RunStatus.KILLED if isinstance(error, KeyboardInterrupt) else RunStatus.FAILED)
        raise
    finally:
        worker.submit({"call": "set_terminated", "status": status, "end_time": int(time.time() * 1000)})
        start = time.monotonic()
        worker.close(config.flush_timeout)
        kept = worker.kept
        if children is not None and config.flush_timeout > 0:  # else a study's end sends them
            kept += drain(children, max(0.0, config.flush_timeout - (time.monotonic() - start)))
        if kept and config.flush_timeout > 0:
            say(f"MLflow at {worker.sender.uri} did not answer for {config.flush_timeout:g} s; {kept} calls are "
                f"kept in {children}: send them with  hybridunet sync {children}")


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
