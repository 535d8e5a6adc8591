"""A throwaway PostgreSQL cluster: initdb in a temporary folder, a server on 127.0.0.1 at a
free port with a generated password, removed again when the block ends (also on errors).

    with postgres_cluster() as pg:
        url = pg.url("optuna")          # postgresql+psycopg://hybridunet:...@127.0.0.1:PORT/optuna

PostgreSQL refuses to run as root, so as root the server runs as the `postgres` user
(Debian's package creates it), else as `nobody`.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

USER = "hybridunet"


class PostgresUnavailable(RuntimeError):
    """No PostgreSQL server binaries here (initdb, pg_ctl)."""


TOOLS = ("initdb", "pg_ctl", "createdb")


def find_bin() -> Path:
    """The folder holding initdb, pg_ctl and createdb: Debian's /usr/lib/postgresql/<version>/bin
    (newest first), else the folder of initdb on PATH."""
    folders = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: Path(p).parent.name.zfill(4), reverse=True)
    on_path = shutil.which("initdb")
    for folder in [*folders, *([str(Path(on_path).resolve().parent)] if on_path else [])]:
        if all((Path(folder) / tool).is_file() for tool in TOOLS):
            return Path(folder)
    raise PostgresUnavailable("PostgreSQL server binaries (initdb, pg_ctl) not found: install the 'postgresql' "
                              "package (Debian/Ubuntu: apt-get install postgresql)")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass(frozen=True)
class PostgresCluster:
    port: int
    password: str
    bin: Path
    host: str = "127.0.0.1"

    def url(self, database: str = "postgres", driver: str = "psycopg") -> str:
        """A SQLAlchemy URL of `database` (`driver` None: a plain ``postgresql://`` URL)."""
        scheme = f"postgresql+{driver}" if driver else "postgresql"
        return f"{scheme}://{USER}:{self.password}@{self.host}:{self.port}/{database}"

    def createdb(self, name: str) -> str:
        """Create database `name`; returns its SQLAlchemy URL."""
        env = {**os.environ, "PGPASSWORD": self.password}
        subprocess.run([str(self.bin / "createdb"), "-h", self.host, "-p", str(self.port), "-U", USER, name],
                       check=True, capture_output=True, env=env, timeout=30)
        return self.url(name)


def _runner() -> tuple[list[str], int | None, int | None]:
    """How to run the server's commands: as ourselves, or as root through an unprivileged user."""
    if os.geteuid() != 0:
        return [], None, None
    for name in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            entry = pwd.getpwnam(name)
            return ["setpriv", f"--reuid={entry.pw_uid}", f"--regid={entry.pw_gid}", "--clear-groups", "--"], \
                entry.pw_uid, entry.pw_gid
    raise PostgresUnavailable("running as root and no unprivileged user (postgres, nobody) to run PostgreSQL as")


@contextlib.contextmanager
def postgres_cluster(timeout: float = 60) -> Iterator[PostgresCluster]:
    """Start a throwaway cluster for the block; stop it and remove its files afterwards."""
    bin = find_bin()
    prefix, uid, gid = _runner()
    root = Path(tempfile.mkdtemp(prefix="hybridunet-pg-"))
    data, password = root / "data", secrets.token_urlsafe(16)
    (root / "pw").write_text(password)
    if uid is not None:
        os.chown(root, uid, gid)
        os.chown(root / "pw", uid, gid)
    port = free_port()
    started = False

    def run(*cmd: str) -> None:
        done = subprocess.run([*prefix, *cmd], capture_output=True, text=True, timeout=timeout, cwd=root)
        if done.returncode != 0:
            log = root / "server.log"
            tail = log.read_text()[-2000:] if log.is_file() else ""
            raise RuntimeError(f"{Path(cmd[0]).name} failed ({done.returncode}): {done.stderr[-2000:]}\n{tail}")

    try:
        run(str(bin / "initdb"), "-D", str(data), "-U", USER, f"--pwfile={root / 'pw'}", "--auth=scram-sha-256",
            "--encoding=UTF8", "--no-instructions")
        options = f"-c listen_addresses=127.0.0.1 -c port={port} -c unix_socket_directories='{root}' -c fsync=off"
        run(str(bin / "pg_ctl"), "-D", str(data), "-o", options, "-l", str(root / "server.log"), "-w",
            "-t", str(int(timeout)), "start")
        started = True
        yield PostgresCluster(port, password, bin)
    finally:
        if started:
            with contextlib.suppress(Exception):
                run(str(bin / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop")
        shutil.rmtree(root, ignore_errors=True)
