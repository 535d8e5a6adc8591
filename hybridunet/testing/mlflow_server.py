"""A throwaway `mlflow server` or `mlflow ui` on 127.0.0.1 at a free port, up (its /health
answers) for the block and stopped after it.

    with mlflow_server("ui", ["--backend-store-uri", "sqlite:///mlflow.db"]) as url:
        ...                             # http://127.0.0.1:PORT
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator, Sequence
from pathlib import Path

from hybridunet.testing.postgres import free_port


@contextlib.contextmanager
def mlflow_server(command: str = "server", args: Sequence[str] = (), log: str | Path | None = None,
                  env: dict[str, str] | None = None, timeout: float = 120) -> Iterator[str]:
    """Start `python -m mlflow COMMAND --host 127.0.0.1 --port P ARGS...` (telemetry off unless
    the environment says otherwise), wait for /health and yield its URL; a server that exits or
    does not answer within `timeout` raises RuntimeError with the end of its log."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with contextlib.ExitStack() as stack:
        path = Path(log) if log else Path(stack.enter_context(tempfile.TemporaryDirectory())) / "server.log"
        out = stack.enter_context(open(path, "w"))
        environment = {"MLFLOW_DISABLE_TELEMETRY": "true", **(env if env is not None else os.environ)}
        proc = subprocess.Popen([sys.executable, "-m", "mlflow", command, "--host", "127.0.0.1", "--port", str(port),
                                 *args], stdout=out, stderr=subprocess.STDOUT, env=environment)
        try:
            deadline = time.time() + timeout
            while True:
                try:
                    urllib.request.urlopen(f"{url}/health", timeout=2)
                    break
                except OSError:
                    if proc.poll() is not None or time.time() > deadline:
                        raise RuntimeError(f"mlflow {command} did not start: {path.read_text()[-2000:]}") from None
                    time.sleep(0.5)
            yield url
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
