"""A logging worker: MLflow calls in order, off the training thread, at idle priority."""

from __future__ import annotations

import contextlib
import os
import queue
import sys
import threading
import time
from collections.abc import Callable
from typing import Any


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


class LogWorker:
    """Runs logging calls in order, and turns a failed call into one RuntimeError.

    With `background` the calls run on a worker thread at the lowest CPU priority (on
    Linux, see `_lowest_priority`), so they fill the moments training leaves a core
    idle instead of taking one from training's own threads; a failure is raised by the
    next `submit` or by `close`, and the calls after it are dropped. Without it they run at once, in the caller.
    Only numpy, Pillow and MLflow run on the worker: a torch op there would start a
    second OpenMP thread team that competes with training's (BENCHMARKS.md, tracking).
    `cpu_seconds` is the CPU time the calls took, complete once `close` returns.
    """

    def __init__(self, background: bool = True) -> None:
        self._error: BaseException | None = None
        self.cpu_seconds = 0.0
        self._queue: queue.SimpleQueue | None = None
        if background:
            self._queue = queue.SimpleQueue()
            self._thread = threading.Thread(target=self._work, name="hybridunet-mlflow", daemon=True)
            self._thread.start()

    def _work(self) -> None:
        _lowest_priority()
        while (call := self._queue.get()) is not None:
            if self._error is None:
                try:
                    self._call(*call)
                except BaseException as error:  # raised again by the caller's next submit or close
                    self._error = error

    def _call(self, fn: Callable[..., Any], args: tuple, kwargs: dict) -> None:
        start = time.thread_time()
        try:
            fn(*args, **kwargs)
        finally:
            self.cpu_seconds += time.thread_time() - start

    def _raise(self) -> None:
        if self._error is not None:
            error, self._error = self._error, None
            raise RuntimeError(f"MLflow logging failed: {type(error).__name__}: {error}") from error

    def submit(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        self._raise()
        if self._queue is not None:
            self._queue.put((fn, args, kwargs))
            return
        try:
            self._call(fn, args, kwargs)
        except Exception as error:  # Ctrl-C stays a KeyboardInterrupt
            self._error = error
            self._raise()

    def close(self, timeout: float | None = None) -> None:
        """Wait (at most `timeout` seconds) for every submitted call; raise the first failure."""
        if self._queue is not None and self._thread.is_alive():
            self._queue.put(None)
            self._thread.join(timeout)
        self._raise()
