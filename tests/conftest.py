"""Shared fixtures: a network guard, small seeded inputs and configs, checkpoints, stores and a
PostgreSQL cluster. Test files share helpers only through these fixtures, never by importing
each other."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest
import torch

from hybridunet.config import ExperimentConfig, load_config
from hybridunet.engine import Callback

TINY = Path(__file__).parents[1] / "experiments" / "configs" / "tiny.yaml"

if os.environ.get("PYTEST_XDIST_WORKER"):
    # Tests run in parallel processes (pytest -n 2): one thread each, and for what they start,
    # rather than two threads each fighting for the same two cores.
    os.environ["OMP_NUM_THREADS"] = "1"
    torch.set_num_threads(1)

# Servers and tools the tests start (an `mlflow server`, say) inherit this: none of them writes
# MLflow's telemetry id into the real home folder. The empty-HOME test removes it on purpose.
os.environ["MLFLOW_DISABLE_TELEMETRY"] = "true"

LOOPBACK = {"127.0.0.1", "localhost", "::1"}


class NetworkBlocked(RuntimeError):
    pass


def _host(address: object) -> str | None:
    return address[0] if isinstance(address, tuple) and address else None


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch) -> type[NetworkBlocked]:
    """Fail any socket connection or DNS look-up that leaves 127.0.0.1; gives the error raised."""
    real_connect, real_connect_ex = socket.socket.connect, socket.socket.connect_ex
    real_getaddrinfo = socket.getaddrinfo

    def check(sock: socket.socket, address: object) -> None:
        if sock.family != socket.AF_UNIX and _host(address) not in LOOPBACK:
            raise NetworkBlocked(f"network access attempted: {address!r}")

    def connect(sock, address):
        check(sock, address)
        return real_connect(sock, address)

    def connect_ex(sock, address):
        check(sock, address)
        return real_connect_ex(sock, address)

    def getaddrinfo(host, *args, **kwargs):
        if host not in LOOPBACK and host is not None:
            raise NetworkBlocked(f"DNS look-up attempted: {host!r}")
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket.socket, "connect_ex", connect_ex)
    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return NetworkBlocked


@pytest.fixture
def images() -> torch.Tensor:
    """Two RGB images of an odd size that no model's stride divides."""
    return torch.randn(2, 3, 61, 93, generator=torch.Generator().manual_seed(0))


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory) -> Path:
    """16 train and 5 val synthetic pairs at 64x64 (5: batches of 4 leave a remainder)."""
    from hybridunet.data.synthetic import write_split

    root = tmp_path_factory.mktemp("tiny_data")
    write_split(root, "train", 16, size=64, seed=0)
    write_split(root, "val", 5, size=64, seed=0)
    return root


@pytest.fixture(scope="session")
def tiny_yaml() -> Path:
    """experiments/configs/tiny.yaml: the smallest recipe that trains."""
    return TINY


@pytest.fixture(scope="session")
def tiny_config():
    """`tiny_config(data, out, *overrides)`: tiny.yaml on `data`, writing to `out`."""
    def make(data: Path, out: Path, *overrides: str) -> ExperimentConfig:
        return load_config(TINY, [f"data.root={data}", f"train.out_dir={out}", *overrides])

    return make


@pytest.fixture(scope="session")
def tracked(tiny_config):
    """`tracked(data, out, uri, *overrides)`: tiny_config with MLflow tracking on, into `uri`
    (no model logged unless `tracking.log_model` is among the overrides)."""
    def make(data: Path, out: Path, uri: str, *overrides: str) -> ExperimentConfig:
        return tiny_config(data, out, "tracking.enabled=true", f"tracking.uri={uri}", "tracking.experiment=tests",
                           "tracking.log_images=2", "tracking.log_model=none", *overrides)  # models: where tested

    return make


class CrashAfter(Callback):
    """Raises `error` at the end of epoch `epoch`: a crash or a Ctrl-C mid-training."""

    def __init__(self, epoch: int, error: type[BaseException] = RuntimeError) -> None:
        self.epoch, self.error = epoch, error

    def on_epoch_end(self, run, epoch, metrics) -> None:
        if epoch == self.epoch:
            raise self.error("simulated crash")


@pytest.fixture(scope="session")
def crash_after() -> type[CrashAfter]:
    """`crash_after(epoch, error=RuntimeError)`: a callback that stops a training there."""
    return CrashAfter


@pytest.fixture(scope="session")
def make_checkpoint():
    """`make_checkpoint(folder, name, normalize="imagenet")`: an untrained model's checkpoint
    (5 classes, 64x64 training size) with the metadata a training writes."""
    import hybridunet as hu
    from hybridunet.checkpoint import save_checkpoint
    from hybridunet.config import parse_config

    def make(folder: Path, name: str, normalize: str = "imagenet") -> Path:
        widths = {} if name.startswith("smp_") else {"widths": [4, 8, 16, 32, 64]}
        extra = {"bottleneck_kwargs": {"heads": 4}} if "hybrid" in name else {}
        config = parse_config({"model": {"name": name, "num_classes": 5, **widths, **extra},
                               "data": {"size": 64, "normalize": normalize}}, "test")
        torch.manual_seed(0)
        model = hu.create_model(name, **config.model.build_kwargs())
        with torch.no_grad():  # BatchNorm statistics away from their defaults, as after training
            for m in model.modules():
                if isinstance(m, torch.nn.BatchNorm2d):
                    m.running_mean.uniform_(-0.5, 0.5)
                    m.running_var.uniform_(0.5, 2.0)
        meta = {"model": {"name": name, **config.model.build_kwargs()}, "class_names": [f"c{i}" for i in range(5)],
                "config": config.to_dict()}
        return save_checkpoint(folder / f"{name}.safetensors", model, meta)

    return make


REPO = Path(__file__).resolve().parents[1]


def _tree_state() -> set[str]:
    """Untracked and modified files of the checkout (ignored ones included)."""
    import subprocess

    out = subprocess.run(["git", "status", "--porcelain", "--ignored", "--untracked-files=all", "--", ".",
                          ":!.venv", ":!*.egg-info"], cwd=REPO, capture_output=True, text=True)
    return {line for line in out.stdout.splitlines() if "__pycache__" not in line and ".pytest_cache" not in line
            } if out.returncode == 0 else set()


@pytest.fixture(scope="session", autouse=True)
def working_tree_untouched(tmp_path_factory):
    """No test writes into the checkout: runs, stores and outputs go to temporary folders."""
    before = _tree_state()
    yield
    written = _tree_state() - before
    assert not written, f"tests wrote into the working tree: {sorted(written)[:10]}"


@pytest.fixture(scope="session")
def mlflow_store(tmp_path_factory) -> str:
    """One sqlite MLflow store for the session: creating one costs seconds of migrations,
    so it is made once, here, before any subprocess shares it."""
    uri = f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'mlflow.db'}"
    from mlflow.tracking import MlflowClient

    MlflowClient(uri).search_experiments()
    return uri


@pytest.fixture(scope="session")
def mlflow_server_url(tmp_path_factory, request) -> str:
    """One `mlflow server` on 127.0.0.1 for the session (each xdist worker its own), with a
    PostgreSQL backend (the README's team recipe), or sqlite where no PostgreSQL can be
    started here; artifacts in a local folder. Tests keep to experiments of their own."""
    from hybridunet.testing import mlflow_server

    root = tmp_path_factory.mktemp("mlflow-server")
    try:
        backend = request.getfixturevalue("postgres").createdb(f"mlflow_{root.name.lower()}")
        pytest.importorskip("psycopg")
    except pytest.skip.Exception:
        backend = f"sqlite:///{root / 'mlflow.db'}"
    args = ["--backend-store-uri", backend, "--artifacts-destination", str(root / "artifacts"), "--workers", "1"]
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}  # no job consumers: starts faster
    try:
        with mlflow_server("server", args, log=root / "server.log", env=env) as uri:
            yield uri
    except RuntimeError as err:
        pytest.fail(str(err))


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    """Each test runs in its own folder, so default outputs and MLflow stores land there."""
    monkeypatch.chdir(tmp_path)


@pytest.fixture(scope="session")
def postgres():
    """A throwaway PostgreSQL cluster on 127.0.0.1 for the session, removed afterwards."""
    from hybridunet.testing import PostgresUnavailable, postgres_cluster

    try:
        cluster = postgres_cluster()
        server = cluster.__enter__()
    except PostgresUnavailable as err:
        pytest.skip(str(err))
    try:
        yield server
    finally:
        cluster.__exit__(None, None, None)


def _storage(kind: str, request, tmp_path) -> str:
    if kind == "sqlite":
        return f"sqlite:///{tmp_path / 'optuna.db'}"
    pytest.importorskip("psycopg", reason="the PostgreSQL driver comes with the [postgres] extra")
    return request.getfixturevalue("postgres").createdb(f"optuna_{tmp_path.name.lower()[-40:]}")


@pytest.fixture
def shared_storage(request, tmp_path) -> str:
    """An empty Optuna storage of the kind many machines share: PostgreSQL, else sqlite."""
    try:
        return _storage("postgresql", request, tmp_path)
    except pytest.skip.Exception:
        return _storage("sqlite", request, tmp_path)
