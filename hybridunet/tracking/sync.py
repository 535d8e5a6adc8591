"""Sending what a run folder's outbox holds: `hybridunet sync`, a comparison's or a study's
end, and a training that starts in a folder an earlier run left calls in."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from hybridunet.errors import UsageError
from hybridunet.tracking import worker
from hybridunet.tracking.calls import Sender, describe, is_outage
from hybridunet.tracking.outage import credentials
from hybridunet.tracking.outbox import OUTBOX, Busy, Outbox, held, outboxes
from hybridunet.tracking.worker import reason, say


class Unreachable(UsageError):
    """The tracking server did not answer (in the time given)."""


class Refused(UsageError):
    """The tracking server refused a call (a 4xx answer, or a file the call names is gone)."""


@dataclass(frozen=True)
class Synced:
    folder: Path
    run_id: str | None
    sent: int  # calls sent now
    killed: bool  # the run's process had died: the run was marked KILLED


def send_outbox(outbox: Outbox, deadline: float | None = None, skip_refused: bool = False) -> Synced:
    """Send the calls `outbox` holds, in order, each once (what landed before is checked),
    to the server its run logs to; then remove it. A run whose process died before it
    ended (SIGKILL, power loss) is marked KILLED, at the time of its last call.

    `deadline` (time.monotonic()): while the server is away, try again until then; None:
    one attempt. Raises `Unreachable` (what was sent stays sent), `Refused` at a call the
    server refuses (unless `skip_refused`: then it is reported and dropped), `Busy` if a live
    process holds the outbox."""
    with held(outbox):
        uri = outbox.header()["uri"]
        sender, run_id = Sender(uri), outbox.run_id()
        start = outbox.sent
        every = outbox.calls()
        calls = every[start:]
        ended = _ended(every)  # else its process died before the run ended
        for number, call in enumerate(calls, start):
            # only the first may have landed: a process sends one call at a time and counts it sent when it has
            run_id = _send(sender, call, run_id, deadline, outbox, len(calls) - (number - start),
                           check=number == start, skip_refused=skip_refused) or run_id
            if call["call"] == "create_run" and run_id is not None:
                outbox.keep_run_id(run_id, uri)
            outbox.mark_sent(number + 1)
        killed = not ended and run_id is not None and not outbox.header().get("shared")
        if killed:  # kept first: a server that goes away now leaves the mark for the next sync
            mark = {"call": "set_terminated", "status": "KILLED", "end_time": int(outbox.last_write() * 1000)}
            outbox.append(mark)
            _send(sender, mark, run_id, deadline, outbox, 1)
            outbox.mark_sent(outbox.appended)
        return Synced(outbox.folder, run_id, len(calls), killed)


def _ended(calls: list[dict]) -> bool:
    """Whether the calls end their run: a set_terminated after the last start (a resumed run
    starts again), whatever follows it (a comparison adds its best seed's model)."""
    ended = False
    for call in calls:
        if call["call"] == "set_terminated":
            ended = True
        elif call["call"] == "create_run" or call["call"] == "update_run" and call.get("status") == "RUNNING":
            ended = False
    return ended


def _send(sender: Sender, call: dict, run_id: str | None, deadline: float | None, outbox: Outbox,
          left: int, check: bool = True, skip_refused: bool = False) -> str | None:
    delay = worker.RETRY_FIRST
    while True:
        try:
            return sender.send(call, run_id, check=check)
        except Exception as error:  # noqa: BLE001  (sorted below: away, or refused)
            if credentials(error):
                raise Refused(f"MLflow at {sender.uri} does not take this shell's credentials ({reason(error)}): "
                              f"set MLFLOW_TRACKING_TOKEN or MLFLOW_TRACKING_USERNAME/PASSWORD; {left} calls are "
                              f"still kept in {outbox.path}") from None
            if not is_outage(error):
                if not skip_refused:
                    raise Refused(f"MLflow at {sender.uri} refused {describe(call)} ({reason(error)}); {left} calls "
                                  f"are still kept in {outbox.path}: fix the cause, or drop that call with  "
                                  f"hybridunet sync {outbox.folder} --skip-refused") from None
                say(f"MLflow at {sender.uri} refused {describe(call)} of {outbox.folder} ({reason(error)}); that "
                    "call is dropped")
                return run_id
            sender.forget()
            check = True  # its answer may be what was lost
            if deadline is None or time.monotonic() + delay > deadline:
                raise Unreachable(f"the tracking server at {sender.uri} does not answer ({reason(error)}); {left} "
                                  f"calls are still kept in {outbox.path}") from None
            time.sleep(delay)
            delay = min(delay * 2, worker.RETRY_MAX)


def sync(folder: str | Path, wait: float = 0.0, skip_refused: bool = False) -> list[Synced]:
    """Send what a tracking server that was away did not take: every outbox in `folder` and
    below it, a comparison's or study's parent run before its seeds'.

    Args:
        folder: A run, comparison or study folder.
        wait: Seconds to keep trying a server that is away.
        skip_refused: Drop calls the server refuses (a 4xx answer) instead of stopping.

    Returns:
        One result per outbox sent.

    Raises:
        hybridunet.tracking.sync.Unreachable: The server is still away after `wait`.
        hybridunet.tracking.sync.Refused: The server refused a call (the outbox is kept).
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise UsageError(f"{folder}: no such run folder")
    found = list(outboxes(folder))
    if not found:
        raise UsageError(f"{folder}: no MLflow outbox ({OUTBOX}/) in it or below it: nothing to send "
                         "(its tracking is complete)")
    deadline = time.monotonic() + wait if wait > 0 else None
    done, failed = [], []
    for outbox in found:  # one that cannot be sent does not hold back the others
        try:
            done.append(send_outbox(outbox, deadline, skip_refused))
        except UsageError as error:
            failed.append(error)
    if failed:
        sent = f"; {len(done)} other outboxes were sent" if done else ""
        more = f" (and {len(failed) - 1} more like it)" if len(failed) > 1 else ""
        raise type(failed[0])(f"{failed[0]}{more}{sent}")
    return done


def send_leftovers(folder: str | Path) -> None:
    """Before a new run trains into `folder`: send what an earlier run left in its outbox
    (one attempt), so its calls are never mixed into the new run's; a `UsageError` if the
    server does not take them."""
    outbox = Outbox(folder)
    if not outbox.exists():
        return
    try:
        send_outbox(outbox)
    except (Unreachable, Refused) as error:
        raise UsageError(f"{folder} holds MLflow calls of an earlier run that could not be sent ({error}); send "
                         f"them with  hybridunet sync {folder}  before training into it again") from None


def keep(folder: str | Path, call: dict) -> None:
    """Append `call` to the outbox of `folder`, after the calls kept there (a run whose
    process has ended, and whose run a server that was away has not created yet)."""
    from hybridunet.tracking.calls import stored

    with held(Outbox(folder)) as outbox:
        outbox.append(stored(call, outbox.files, outbox.appended))


def drain(folder: str | Path, timeout: float) -> int:
    """At a comparison's or study's end: send the outboxes its runs left below `folder`,
    waiting at most `timeout` seconds for the server; returns how many calls are still kept.
    An outbox a live process holds (another worker's trial) is its own to send."""
    deadline = time.monotonic() + timeout
    kept = 0
    for outbox in outboxes(folder):
        try:
            send_outbox(outbox, deadline)
        except Busy:
            continue
        except Unreachable:
            kept += outbox.pending_count()
        except Refused as error:
            say(str(error))
            kept += outbox.pending_count()
    return kept
