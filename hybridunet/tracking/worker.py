"""The logging worker: MLflow calls in order, off the training thread, at idle priority;
a server that is away costs neither training nor a single call."""

from __future__ import annotations

import collections
import contextlib
import os
import re
import sys
import threading
import time
from pathlib import Path
from typing import Any, Protocol

from hybridunet.tracking.calls import NotReady, describe, is_outage, stored
from hybridunet.tracking.outbox import Outbox

TRACE: list[list] | None = None  # a list: every worker adds [kind, submitted, landed, backlog] (benchmarks)
MEMORY_BOUND = 1000  # calls held in memory; past it (a long outage, or logging slower than training) they wait in the file
RETRY_FIRST, RETRY_MAX = 1.0, 10.0  # seconds between attempts while the server is away: doubling, capped
STUCK = 120.0  # past close's timeout, a call in flight this long (a network that drops packets) is left behind


def _lowest_priority() -> None:
    """Put the calling thread at the lowest CPU priority the OS offers without privileges.

    On Linux that is SCHED_IDLE: the thread runs only on a core nothing else wants, and a
    training thread that wakes up takes the core back at once (at nice 19 it waits for
    the end of the logger's time slice, while its OpenMP team waits for it). Where
    SCHED_IDLE is refused, nice 19. Other systems are left alone: there a priority
    belongs to the whole process, training included.
    """
    if sys.platform != "linux":
        return
    with contextlib.suppress(OSError, AttributeError):
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))  # 0: this thread, not the process
        return
    with contextlib.suppress(OSError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)


class Sends(Protocol):
    uri: str
    client: Any  # an MlflowClient, for reads

    def send(self, call: dict[str, Any], run_id: str | None, check: bool = False) -> str | None: ...

    def forget(self) -> None: ...


def say(message: str) -> None:
    print(f"hybridunet: {message}", file=sys.stderr, flush=True)


def reason(error: BaseException) -> str:
    """Why a call failed, in a few words (MLflow's own messages hold a URL and a repr)."""
    text = str(error)
    found = re.search(r"\[Errno -?\d+\][^'\")]*", text) or re.search(r"Caused by (\w+)", text)
    return f"{type(error).__name__}: {found.group(0) if found else text[:200]}"


class LogWorker:
    """Makes MLflow calls (see `hybridunet.tracking.calls`) in order, and never lets a
    failed one stop the caller.

    With `background` the calls run on a worker thread at the lowest CPU priority (on
    Linux, see `_lowest_priority`), so they fill the moments training leaves a core idle
    instead of taking one from training's own threads; without it they run at once, in
    the caller. Only numpy, Pillow and MLflow run on the worker while training runs: a
    torch op there would start a second OpenMP thread team (BENCHMARKS.md, tracking).

    A server that is away (`is_outage`): one warning line, and from then on every call is
    also written to the outbox of `folder` before it is queued (`Outbox`), so neither a
    crash nor a SIGKILL loses it; the worker tries again (1 s, doubling to 10 s), sends the
    backlog in order when the server answers, each call once, and `close` waits for it
    at most its `timeout`. A call the server refuses (a 4xx answer) is reported and dropped.
    `cpu_seconds` is the CPU time the calls took, complete once `close` returns.
    """

    def __init__(self, sender: Sends, folder: str | Path | None = None, background: bool = True,
                 run_id: str | None = None, shared: bool = False) -> None:
        self.sender, self.run_id = sender, run_id
        self.cpu_seconds = 0.0
        self.outbox = Outbox(folder) if folder is not None else None
        self._pending: collections.deque[tuple[int | None, dict[str, Any]]] = collections.deque()
        self._unloaded: int | None = None  # first stored call not in memory (past MEMORY_BOUND), if any
        self._cond = threading.Condition()
        self._outage: BaseException | None = None  # the failure of the current outage
        self._keeping = False  # calls are written to the outbox (since the first failure)
        self._warned = False
        self._retry_at, self._delay = 0.0, RETRY_FIRST
        self._attempted = False  # the first pending call was tried and may have landed
        self._closing, self._deadline, self._abandoned = False, float("inf"), False
        self._in_flight: float | None = None  # when the call being made was started
        self.on_run: Any = None  # called with the run id when a create_run call lands
        self.model: Any = None  # the LoggedModelRef of a log_model call, once it landed
        if self.outbox is not None:
            self.outbox.acquire(sender.uri, shared)
            if self.outbox.pending_count():  # left by a process that died: a resumed training sends it first
                self.run_id = self.run_id or self.outbox.run_id()
                self._keeping, self._unloaded = True, self.outbox.sent
                self._attempted = True  # it may have been making the first one
                self._load()
            elif self.run_id is None:
                self.outbox.forget_run_id()  # an earlier run's: this worker's run is created anew
            if self.run_id is not None and self.outbox.run_id() != self.run_id:
                self.outbox.keep_run_id(self.run_id, sender.uri)  # what `hybridunet sync` sends to
        # the run this worker logs to exists, or a call that creates it waits: decided before any is sent
        self.adopted_run = self.run_id is not None or any(c["call"] == "create_run" for _, c in self._pending) or (
            self._unloaded is not None)
        self._thread: threading.Thread | None = None
        if background:
            self._thread = threading.Thread(target=self._work, name="hybridunet-mlflow", daemon=True)
            self._thread.start()

    @property
    def outbox_folder(self) -> Path | None:
        return self.outbox.folder if self.outbox is not None else None

    @property
    def away(self) -> bool:
        """Whether the server is away (since the last failed call)."""
        return self._outage is not None

    @property
    def kept(self) -> int:
        """Calls not sent yet."""
        with self._cond:
            return self._kept()

    def _kept(self) -> int:
        if self._keeping and self.outbox is not None:
            return self.outbox.pending_count()
        return len(self._pending)

    # -- the caller's side ------------------------------------------------------------
    def wait_for_run(self, timeout: float = 30.0) -> str | None:
        """The run's id once its create_run call landed; None if the server is away (or slower
        than `timeout`): then the run is created when it answers."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self.run_id is None and self._outage is None and time.monotonic() < deadline:
                if self._thread is None:
                    break
                self._cond.wait(0.02)
            return self.run_id

    def wait_idle(self, timeout: float) -> bool:
        """Wait (at most `timeout` seconds, less if the server is away) until every submitted
        call is sent; returns whether they are."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while (self._pending or self._unloaded is not None) and self._thread is not None:
                if self._outage is not None or time.monotonic() >= deadline:
                    break
                self._cond.wait(0.02)
            return not self._pending and self._unloaded is None

    def submit(self, call: dict[str, Any]) -> None:
        """Queue `call` (sent at once without `background`); never raises for the server."""
        if TRACE is not None:
            call = {**call, "trace": [call["call"], time.monotonic(), None, len(self._pending)]}
            TRACE.append(call["trace"])
        with self._cond:
            if self._keeping:
                number, kept = self._store(call)
                if self._unloaded is None and len(self._pending) >= MEMORY_BOUND:
                    self._unloaded = number
                if self._unloaded is None:
                    self._pending.append((number, kept))
            else:
                self._pending.append((None, call))
                if len(self._pending) > MEMORY_BOUND and self.outbox is not None:
                    self._keep_all()  # the server answers, but slower than training logs: memory stays bounded
            self._cond.notify()
        if self._thread is None:
            self._pump(wait=False)

    def close(self, timeout: float = 60.0) -> bool:
        """Wait for the submitted calls: as long as the server answers, and at most `timeout`
        seconds while it is away (a call already in flight then, in a network that drops
        packets, is given `STUCK` more seconds). Returns whether every call landed; what did
        not is in the outbox, which stays (for `hybridunet sync`) until it is sent."""
        with self._cond:
            self._closing, self._deadline = True, time.monotonic() + timeout
            self._cond.notify_all()
        if self._thread is not None:
            while self._thread.is_alive():
                self._thread.join(0.5)
                with self._cond:
                    now = time.monotonic()
                    if now > self._deadline and self._in_flight is not None and now - self._in_flight > STUCK:
                        self._abandoned = True  # the worker will touch nothing more: the outbox has that call
                        break
        else:
            self._pump(wait=True)
        with self._cond:
            if self._pending and not self._keeping:  # the deadline came before the calls were made
                self._keep_all()
            kept = self._kept()
        if self.outbox is not None:
            self.outbox.release()
        return kept == 0

    # -- the worker's side ------------------------------------------------------------
    def _work(self) -> None:
        _lowest_priority()
        self._pump(wait=True)

    def _pump(self, wait: bool) -> None:
        """Send pending calls in order. `wait`: until closed (with its deadline), sleeping out
        an outage; else only until the first call that cannot be sent now."""
        while True:
            with self._cond:
                while True:
                    if not self._pending and self._unloaded is not None:
                        self._load()
                    now = time.monotonic()
                    if self._closing and (not self._pending or self._outage is not None and now >= self._deadline):
                        return
                    if self._pending and (self._outage is None or now >= self._retry_at):
                        break
                    if not wait:
                        return
                    until = self._retry_at if self._outage is not None and self._pending else None
                    if self._closing:
                        until = min(until or self._deadline, self._deadline)
                    self._cond.wait(None if until is None else max(0.0, until - now))
                call = self._pending[0][1]
                check = self._attempted
                self._in_flight = time.monotonic()
            try:
                start = time.thread_time()
                try:
                    run_id = self.sender.send(call, self.run_id, check=check)
                finally:
                    self.cpu_seconds += time.thread_time() - start
            except Exception as error:  # noqa: BLE001  (no tracking failure reaches training)
                with self._cond:
                    self._in_flight = None
                    if self._abandoned:
                        return
                    if isinstance(error, NotReady) and not error.away and not (
                            self._closing and time.monotonic() >= self._deadline):
                        self._cond.wait(0.05)  # its parent is being created: a moment
                        continue
                    if is_outage(error):
                        self._enter_outage(error, call)
                        continue
                    say(f"MLflow at {self.sender.uri} refused {describe(call)} ({reason(error)}); that call is "
                        "dropped, training goes on")
                    self._done()
                continue
            created = run_id if call["call"] == "create_run" else None
            with self._cond:
                self._in_flight = None
                if self._abandoned:
                    return
                if "result" in call:  # a logged model
                    self.model = call["result"]
                if "trace" in call:
                    call["trace"][2] = time.monotonic()
                if created:
                    self.run_id = created
                    if self.outbox is not None:
                        self.outbox.keep_run_id(created, self.sender.uri)
                if self._outage is not None:
                    say(f"MLflow at {self.sender.uri} answers again; sending the {self._kept()} kept calls")
                self._outage, self._delay = None, RETRY_FIRST
                self._done()
            if created and self.on_run is not None:
                try:
                    self.on_run(created)
                except Exception as error:  # noqa: BLE001  (e.g. the system-metrics sampler did not start)
                    say(f"after creating MLflow run {created}: {type(error).__name__}: {error}")

    def _done(self) -> None:
        """The first pending call is made (or dropped). Its number is read here: the caller's
        copy may predate `_keep_all`, which stores the pending calls while one is being sent."""
        number, _ = self._pending.popleft()
        self._attempted = False
        if number is not None and self.outbox is not None:
            self.outbox.mark_sent(number + 1)

    def _enter_outage(self, error: BaseException, call: dict[str, Any]) -> None:
        first = self._outage is None
        self._outage, self._attempted = error, True
        self.sender.forget()
        self._retry_at = time.monotonic() + self._delay
        self._delay = min(self._delay * 2, RETRY_MAX)
        if self.outbox is not None and not self._keeping:
            self._keep_all()
        if first and not self._warned:
            self._warned = True
            where = f" in {self.outbox.path}" if self.outbox is not None else " in memory"
            say(f"MLflow at {self.sender.uri} did not take {describe(call)} ({reason(error)}); training goes on; "
                f"{self._kept()} calls kept{where}")

    def _keep_all(self) -> None:
        """From now on every call is written to the outbox first; the pending ones now."""
        if self.outbox is None:
            return
        self._keeping = True
        kept = [self._store(call) for _, call in self._pending]
        self._pending = collections.deque(kept[:MEMORY_BOUND])
        if len(kept) > MEMORY_BOUND:
            self._unloaded = kept[MEMORY_BOUND][0]

    def _store(self, call: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        """Append `call` to the outbox; its number there and its stored form."""
        number = self.outbox.appended
        kept = stored(call, self.outbox.files, number)
        self.outbox.append(kept)
        return number, kept

    def _load(self) -> None:
        """Bring stored calls past the memory bound back into memory, in order."""
        start = self._unloaded
        assert start is not None and self.outbox is not None
        calls = self.outbox.calls(start, MEMORY_BOUND)
        self._pending.extend((start + i, call) for i, call in enumerate(calls))
        self._unloaded = start + len(calls) if start + len(calls) < self.outbox.appended else None
