"""A folder's outbox: the MLflow calls its run could not send yet, kept on disk in order.

``<folder>/mlflow-outbox/`` exists while a process tracks the folder's run (it holds
``lock``, locked by that process, so `hybridunet sync` can tell a live run from a dead
one) and afterwards only if calls are left: ``calls.jsonl`` (a header line, then one call
per line, appended in order), ``sent`` (how many of them landed) and ``files/`` (what the
calls need that would not outlive the process: pictures, the exported model). The run's
id, once MLflow gave one, is kept beside it in ``<folder>/mlflow-run.json`` for good.

No MLflow here: a call is a JSON object (see `hybridunet.tracking.calls`).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from hybridunet.errors import UsageError

OUTBOX = "mlflow-outbox"
RUN_FILE = "mlflow-run.json"
FORMAT = 1


class Busy(UsageError):
    """Another live process holds the outbox (the training itself, or a second sync)."""


class Outbox:
    """The outbox of `folder` (a run folder, a comparison's or a study's)."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        self.path = self.folder / OUTBOX
        self.files = self.path / "files"
        self._lock: Any = None
        self.appended = self.count()  # calls in calls.jsonl, sent or not

    # -- the owner's lock ---------------------------------------------------------------
    def acquire(self, uri: str, shared: bool = False) -> None:
        """Lock the outbox for this process (created with its header if new); `Busy` if a live
        process holds it. The lock goes when the process does, however it ends. `shared`: its
        run is shared by several processes (a study's workers): one that dies does not end it."""
        import fcntl

        self.path.mkdir(parents=True, exist_ok=True)
        handle = open(self.path / "lock", "a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            raise Busy(f"{self.folder}: its MLflow outbox is held by a live process (the training itself, or "
                       "another `hybridunet sync`); wait for it to end") from None
        self._lock = handle
        handle.seek(0)
        handle.truncate()
        handle.write(json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "since": time.time()}))
        handle.flush()
        calls = self.path / "calls.jsonl"
        if not calls.exists():
            self._write_line({"outbox": FORMAT, "uri": uri, "created": time.time(), "shared": shared})
        else:  # a line a crash cut while it was written is no call: drop it before appending
            data = calls.read_bytes()
            if data and not data.endswith(b"\n"):
                with open(calls, "r+b") as file:
                    file.truncate(data.rfind(b"\n") + 1)
        self.appended = self.count()  # counted under the lock: the process that held it may have added some

    def release(self) -> None:
        """Unlock, and remove the outbox if nothing is left in it."""
        if self._lock is None:
            return
        if self.pending_count() == 0:
            shutil.rmtree(self.path, ignore_errors=True)
        self._lock.close()
        self._lock = None

    # -- calls -------------------------------------------------------------------------
    def exists(self) -> bool:
        return (self.path / "calls.jsonl").is_file()

    def header(self) -> dict[str, Any]:
        with open(self.path / "calls.jsonl") as file:
            return json.loads(file.readline())

    def append(self, call: dict[str, Any]) -> None:
        """Add one call (already in its stored form: JSON, files under `files`)."""
        self._write_line(call)
        self.appended += 1

    def _write_line(self, value: dict[str, Any]) -> None:
        with open(self.path / "calls.jsonl", "a") as file:  # flushed at close: a SIGKILL loses nothing written
            file.write(json.dumps(value, separators=(",", ":")) + "\n")

    def calls(self, start: int = 0, limit: int | None = None) -> list[dict[str, Any]]:
        """The stored calls from number `start` (0: the first after the header), at most `limit`."""
        found = []
        with open(self.path / "calls.jsonl") as file:
            file.readline()
            for i, line in enumerate(file):
                if i < start or not line.endswith("\n"):  # a line cut by a crash while written is not a call
                    continue
                found.append(json.loads(line))
                if limit is not None and len(found) >= limit:
                    break
        return found

    def count(self) -> int:
        """Calls stored (sent or not)."""
        if not self.exists():
            return 0
        with open(self.path / "calls.jsonl") as file:
            return max(0, sum(1 for line in file if line.endswith("\n")) - 1)

    @property
    def sent(self) -> int:
        try:
            return int((self.path / "sent").read_text())
        except (FileNotFoundError, ValueError):
            return 0

    def mark_sent(self, n: int) -> None:
        """The first `n` stored calls have landed (written atomically)."""
        temporary = self.path / "sent.tmp"
        temporary.write_text(str(n))
        os.replace(temporary, self.path / "sent")

    def pending_count(self) -> int:
        return max(0, self.appended - self.sent) if self.exists() else 0

    def last_write(self) -> float:
        """When the owning process last wrote here or its last checkpoint (the time a dead run
        is marked KILLED)."""
        found = (self.path / "calls.jsonl", self.path / "sent", self.folder / "last.json")
        return max((p.stat().st_mtime for p in found if p.exists()), default=time.time())

    def parent_folder(self) -> Path | None:
        """The folder of the parent run a kept create_run names by its outbox, if any."""
        for call in self.calls(self.sent):
            parent = call.get("parent") if call["call"] == "create_run" else None
            if isinstance(parent, dict) and "outbox" in parent:
                return Path(parent["outbox"]).resolve()
        return None

    # -- the run's id ------------------------------------------------------------------
    def run_id(self) -> str | None:
        """The MLflow run this folder logs to, once it was created."""
        try:
            return json.loads((self.folder / RUN_FILE).read_text())["run_id"]
        except (FileNotFoundError, ValueError, KeyError):
            return None

    def forget_run_id(self) -> None:
        """An earlier run's id, before a new run is created in this folder (a stale one would
        name the wrong parent to a child that looks it up here)."""
        (self.folder / RUN_FILE).unlink(missing_ok=True)

    def keep_run_id(self, run_id: str, uri: str) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        temporary = self.folder / (RUN_FILE + ".tmp")
        temporary.write_text(json.dumps({"run_id": run_id, "uri": uri}))
        os.replace(temporary, self.folder / RUN_FILE)


def outboxes(root: str | Path) -> Iterator[Outbox]:
    """Every outbox in `root` and below it, a parent run's before those of runs that name it
    (a child's run is created under its parent's id), else the shallowest first."""
    root = Path(root)
    found = sorted((p.parent.parent for p in root.rglob(f"{OUTBOX}/calls.jsonl")),
                   key=lambda p: (len(p.parts), str(p)))
    waiting = {folder.resolve(): Outbox(folder).parent_folder() for folder in found}
    while waiting:
        ready = [f for f, parent in waiting.items() if parent is None or parent not in waiting or parent == f]
        for folder in ready or list(waiting)[:1]:  # a cycle cannot happen; if it did, go on in order
            del waiting[folder]
            yield Outbox(folder)


@contextlib.contextmanager
def held(outbox: Outbox) -> Iterator[Outbox]:
    """An existing outbox, locked for the block (`Busy` if a live process holds it)."""
    outbox.acquire(outbox.header()["uri"])
    try:
        yield outbox
    finally:
        outbox.release()
