"""A tracking server that is away, told apart from one that refuses a call."""

from __future__ import annotations

from mlflow.exceptions import MlflowException


class NotReady(Exception):
    """A call that cannot be made yet: the run it belongs to (or its parent) has no id yet;
    `away`: because the server is away (else it is being created: wait a moment)."""

    def __init__(self, message: str, away: bool = True) -> None:
        super().__init__(message)
        self.away = away


def is_outage(error: BaseException) -> bool:
    """Whether `error` says the server is away (try again later) rather than that it refused
    the call (a 4xx answer, or a bug of ours: trying again cannot help)."""
    if isinstance(error, NotReady):
        return error.away
    if isinstance(error, OSError | TimeoutError):
        return True
    if isinstance(error, MlflowException):
        status = error.get_http_status_code()
        return status >= 500 or status in (408, 429)
    try:
        import requests
    except ImportError:  # pragma: no cover - MLflow depends on it
        return False
    return isinstance(error, requests.RequestException)
