"""Shared fixtures: a network guard and small seeded inputs."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
import torch

from hybridunet.config import ExperimentConfig, load_config

TINY = Path(__file__).parents[1] / "experiments" / "configs" / "tiny.yaml"

LOOPBACK = {"127.0.0.1", "localhost", "::1"}


class NetworkBlocked(RuntimeError):
    pass


def _host(address: object) -> str | None:
    return address[0] if isinstance(address, tuple) and address else None


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail any socket connection or DNS look-up that leaves 127.0.0.1."""
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


def tiny_config(data: Path, out: Path, *overrides: str) -> ExperimentConfig:
    """tiny.yaml on `data`, writing to `out`."""
    return load_config(TINY, [f"data.root={data}", f"train.out_dir={out}", *overrides])
