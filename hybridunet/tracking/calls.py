"""MLflow calls as data: what the logging worker queues, keeps in an outbox and sends.

A call is a JSON-able dict, ``{"call": KIND, ...}``, on the run of the worker that sends
it (or on ``run_id``, where given). In memory it may hold what is costly to store (a
picture as an array, a file's bytes); `stored` turns it into its outbox form, with those
in the outbox's files. `send` makes it, and with ``check`` first looks at what already
landed, so a call whose answer was lost is never made twice (no metric point twice,
no picture twice, no second run).
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from mlflow.entities import Metric, Param, RunTag
from mlflow.tracking import MlflowClient

from hybridunet.tracking.datasets import log_dataset_rows
from hybridunet.tracking.outage import NotReady, is_outage

__all__ = ["RUN_REF", "NotReady", "Sender", "describe", "is_outage", "metric_rows", "stored"]

RUN_REF = "hybridunet.run_ref"  # a run's tag: which outbox created it, so a create_run is never made twice
METRIC_FIELDS = ("key", "value", "timestamp", "step", "model_id", "dataset_name", "dataset_digest")


# -- building calls -----------------------------------------------------------------------
def metric_rows(values: dict[str, float], step: int = 0, timestamp: int | None = None, **links: Any) -> list[list]:
    """Metric points as stored: [key, value, timestamp ms, step, model_id, dataset name, digest]."""
    now = int(time.time() * 1000) if timestamp is None else timestamp
    return [[k, float(v), now, int(step), links.get("model_id"), links.get("dataset_name"),
             links.get("dataset_digest")] for k, v in values.items()]


def stored(call: dict[str, Any], files: Path, number: int) -> dict[str, Any]:
    """`call` in its outbox form: a picture or bytes written to `files` (named by `number`),
    the ONNX model of a `log_model` call exported there, a parent of this process named by
    its run id or its folder. Files a call names by path stay where they are (the run folder's)."""
    call = dict(call)
    if "image" in call:
        from PIL import Image

        files.mkdir(parents=True, exist_ok=True)
        path = files / f"{number:07d}.png"
        Image.fromarray(np.asarray(call.pop("image"))).save(path)
        call["file"] = str(path)
    elif "data" in call:
        files.mkdir(parents=True, exist_ok=True)
        path = files / f"{number:07d}-{Path(call['artifact_file']).name}"
        path.write_bytes(call.pop("data"))
        call["file"] = str(path)
    elif call["call"] == "log_model" and call["kind"] == "onnx" and "onnx" not in call:
        from hybridunet.export import export_onnx

        try:
            call["onnx"] = str(export_onnx(call["checkpoint"], files / f"{number:07d}-model" / "model.onnx"))
        except Exception:  # noqa: BLE001  (sending it exports again, and reports a failure as the run's tag)
            pass
    parent: Any = call.get("parent")
    if hasattr(parent, "outbox_folder"):  # a parent's worker in this process: its run id, or where to find it
        call["parent"] = parent.run_id or {"outbox": str(Path(parent.outbox_folder).resolve())}
    return call


# -- sending ----------------------------------------------------------------------------
class Sender:
    """Makes calls on one tracking server; remembers, for `check`, what it has read back."""

    def __init__(self, uri: str) -> None:
        from hybridunet.tracking.store import absolute_uri

        self.uri = absolute_uri(uri)
        self.client = MlflowClient(uri)
        self._landed: dict[tuple[str, str], set] = {}  # what `check` read back: (run, metric key or images/) -> points

    def forget(self) -> None:
        """After a failed call: what was read back may be out of date (the call may have landed)."""
        self._landed.clear()

    def send(self, call: dict[str, Any], run_id: str | None, check: bool = False) -> str | None:
        """Make `call` on `run_id` (or the call's own ``run_id``); returns the run's id (a
        created run's). `check`: this call may have landed already (its answer was lost)."""
        kind = call["call"]
        if kind == "create_run":
            return self._create_run(call)
        run_id = call.get("run_id") or run_id
        if run_id is None:
            raise NotReady("the run is not created yet")
        c = self.client
        if kind == "log_batch":
            metrics = [Metric(**dict(zip(METRIC_FIELDS, row))) for row in call.get("metrics", ())]
            if metrics and (check or call.get("new_steps_only")):
                metrics = self._not_landed(run_id, metrics, by_step=bool(call.get("new_steps_only")))
            for m in metrics:  # what check reads back stays up to date
                if (run_id, m.key) in self._landed:
                    self._landed[(run_id, m.key)].add((m.step, m.timestamp, m.value))
            params = [Param(k, v) for k, v in call.get("params", ())]
            tags = [RunTag(k, v) for k, v in call.get("tags", ())]
            for i in range(0, len(params), 100):  # the store's limits per batch
                c.log_batch(run_id, params=params[i : i + 100])
            for i in range(0, len(tags), 100):
                c.log_batch(run_id, tags=tags[i : i + 100])
            for i in range(0, len(metrics), 1000):
                c.log_batch(run_id, metrics=metrics[i : i + 1000])
        elif kind == "log_artifact":
            path = Path(call["path"])
            if path.is_dir():
                c.log_artifacts(run_id, str(path), call.get("artifact_path"))
            else:
                c.log_artifact(run_id, str(path), call.get("artifact_path"))
        elif kind == "log_bytes":
            data = call["data"] if "data" in call else Path(call["file"]).read_bytes()
            with tempfile.TemporaryDirectory() as folder:
                path = Path(folder) / Path(call["artifact_file"]).name
                path.write_bytes(data)
                folder = str(Path(call["artifact_file"]).parent)
                c.log_artifact(run_id, str(path), None if folder == "." else folder)
        elif kind == "log_image":
            image = call["image"] if "image" in call else _read_picture(call["file"])
            if check and self._image_landed(run_id, call, image):
                return run_id
            c.log_image(run_id, image, key=call["key"], step=call["step"], timestamp=call["timestamp"],
                        synchronous=True)
            if (run_id, "images/") in self._landed:
                self._landed[(run_id, "images/")].add(_image_prefix(call) + "x.png")
        elif kind == "log_datasets":
            log_dataset_rows(c, run_id, call["datasets"])
        elif kind == "update_run":
            c.update_run(run_id, status=call.get("status"), name=call.get("name"))
        elif kind == "set_terminated":
            c.set_terminated(run_id, call["status"], call.get("end_time"))
        elif kind == "log_model":
            self._log_model(run_id, call)
        elif kind == "prepare":
            from hybridunet.tracking.models import prepare

            prepare(call["kind"])
        else:
            raise ValueError(f"unknown tracking call {kind!r}")
        return run_id

    def _create_run(self, call: dict[str, Any]) -> str:
        from hybridunet.tracking.store import experiment_id

        tags = dict(call["tags"])
        parent = call.get("parent")
        if parent is not None:
            tags["mlflow.parentRunId"] = self._parent_id(parent)
        experiment = experiment_id(call["experiment"], self.uri)
        found = self.client.search_runs([experiment], f"tags.`{RUN_REF}` = '{tags[RUN_REF]}'", max_results=1)
        if found:  # created by an earlier attempt whose answer was lost
            return found[0].info.run_id
        return self.client.create_run(experiment, start_time=call["start_time"], tags=tags,
                                      run_name=call.get("run_name")).info.run_id

    def _parent_id(self, parent: Any) -> str:
        if isinstance(parent, str):
            return parent
        if hasattr(parent, "outbox_folder"):  # a parent worker of this process
            if parent.run_id is None:
                raise NotReady("its parent run waits for the server too" if parent.away else
                               "its parent run is being created", away=parent.away)
            return parent.run_id
        from hybridunet.tracking.outbox import Outbox

        folder = str(parent["outbox"])
        found = Outbox(folder).run_id()
        if found is None:
            raise NotReady(f"the parent run (outbox in {folder}) is not created yet")
        return found

    def _not_landed(self, run_id: str, metrics: list[Metric], by_step: bool) -> list[Metric]:
        """The points of `metrics` the run does not hold yet (by step alone with `by_step`)."""
        fresh = []
        for m in metrics:
            held = self._history(run_id, m.key)
            if not (m.step in {step for step, _, _ in held} if by_step else (m.step, m.timestamp, m.value) in held):
                fresh.append(m)
        return fresh

    def _history(self, run_id: str, key: str) -> set[tuple]:
        """(step, timestamp, value) of every point of metric `key`, read once, then kept up to date."""
        if (run_id, key) not in self._landed:
            points = self.client.get_metric_history(run_id, key)
            self._landed[(run_id, key)] = {(m.step, m.timestamp, m.value) for m in points}
        return self._landed[(run_id, key)]

    def _image_landed(self, run_id: str, call: dict[str, Any], image: np.ndarray) -> bool:
        """Whether MLflow's log_image for `call` landed; where only its picture did (the answer
        was lost before its thumbnail was sent), the thumbnail is sent now, under its name."""
        if (run_id, "images/") not in self._landed:
            self._landed[(run_id, "images/")] = {Path(a.path).name for a in self.client.list_artifacts(run_id, "images")}
        names = self._landed[(run_id, "images/")]
        picture = next((n for n in names if n.startswith(_image_prefix(call)) and n.endswith(".png")), None)
        if picture is None:
            return False
        thumbnail = picture.removesuffix(".png") + "+compressed.webp"
        if thumbnail not in names:
            from mlflow.tracking.multimedia import compress_image_size
            from mlflow.utils.mlflow_tags import MLFLOW_LOGGED_IMAGES
            from PIL import Image

            with tempfile.TemporaryDirectory() as folder:
                compress_image_size(Image.fromarray(np.asarray(image))).save(Path(folder) / thumbnail)
                self.client.log_artifact(run_id, str(Path(folder) / thumbnail), "images")
            self.client.set_tag(run_id, MLFLOW_LOGGED_IMAGES, True)
            names.add(thumbnail)
        return True

    def _log_model(self, run_id: str, call: dict[str, Any]) -> None:
        """The checkpoint's model (from the ONNX file the outbox kept, where it did), unless the
        run logged it already; the run's final metrics linked to it."""
        from hybridunet.checkpoint import read_meta
        from hybridunet.tracking.models import (
            CHECKPOINT_TAG,
            checkpoint_digest,
            link_metrics,
            log_onnx_model,
            logged_model,
            try_log_model,
        )

        digest = checkpoint_digest(call["checkpoint"])
        model = logged_model(run_id, self.uri, digest)
        if model is None and call.get("onnx"):
            step = int(read_meta(call["checkpoint"]).get("epoch") or 0)
            model = log_onnx_model(run_id, call["onnx"], call.get("registered_model"), self.uri, step,
                                   {CHECKPOINT_TAG: digest})
        elif model is None:
            model = try_log_model(run_id, call["checkpoint"], call["kind"], call.get("registered_model"), self.uri,
                                  digest)
        if model is not None:
            link_metrics(run_id, model.model_id, self.uri)
            call["result"] = model


def _image_prefix(call: dict[str, Any]) -> str:
    """How the names of the files MLflow's log_image writes for `call` begin."""
    return f"{call['key'].replace('/', '~')}+step+{call['step']}+timestamp+{call['timestamp']}+"


def _read_picture(path: str) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


def describe(call: dict[str, Any]) -> str:
    """A call in a few words, for a warning."""
    kind = call["call"]
    detail = call.get("key") or call.get("artifact_file") or call.get("status") or ""
    return f"{kind} {detail}".strip()
