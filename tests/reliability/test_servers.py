"""Every server the project starts or documents listens on 127.0.0.1 unless told otherwise."""

import re
from pathlib import Path

import mlflow.cli

REPO = Path(__file__).parents[2]
SERVER_COMMANDS = ("mlflow server", "mlflow ui", "optuna-dashboard")


def test_mlflow_server_defaults_to_loopback():
    (host,) = [p for p in mlflow.cli.server.params if p.name == "host"]
    assert host.default == "127.0.0.1"


def test_documented_server_commands_bind_loopback():
    documents = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md")), REPO / "BENCHMARKS.md"]
    commands = [
        line for doc in documents if doc.is_file() for line in doc.read_text().splitlines()
        if any(cmd in line for cmd in SERVER_COMMANDS)
    ]
    assert commands, "the README documents how to open mlflow ui"
    for line in commands:
        host = re.search(r"--host[= ](\S+)", line)
        assert host is None or host.group(1) == "127.0.0.1", line
    assert "0.0.0.0" not in "\n".join(d.read_text() for d in documents if d.is_file())
