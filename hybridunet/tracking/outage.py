"""A tracking server that is away, told apart from one that refuses a call."""

from __future__ import annotations

import socket

from mlflow.exceptions import MlflowException


class NotReady(Exception):
    """A call that cannot be made yet: the run it belongs to (or its parent) has no id yet;
    `away`: because the server is away (else it is being created: wait a moment)."""

    def __init__(self, message: str, away: bool = True) -> None:
        super().__init__(message)
        self.away = away


def is_outage(error: BaseException) -> bool:
    """Whether `error` says the server is away (try again later; also a server that does not
    take our credentials: they can be fixed, and `hybridunet sync` sends the calls then)
    rather than that it refused the call (a 4xx answer, a local file that is gone, a bug of
    ours: trying again cannot help)."""
    if isinstance(error, NotReady):
        return error.away
    if isinstance(error, ConnectionError | TimeoutError | socket.gaierror):  # not a local file's OSError
        return True
    if isinstance(error, MlflowException):
        status = error.get_http_status_code()
        return status >= 500 or status in (401, 403, 408, 429)  # 401/403: credentials to fix, calls to keep
    try:
        import requests
    except ImportError:  # pragma: no cover - MLflow depends on it
        return False
    return isinstance(error, requests.RequestException)


def credentials(error: BaseException) -> bool:
    """Whether the server refused our credentials (401, 403): the training worker keeps such
    calls as in an outage; `hybridunet sync` says what to set."""
    return isinstance(error, MlflowException) and error.get_http_status_code() in (401, 403)
