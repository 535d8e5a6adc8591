"""Shared fixtures: a network guard and small seeded inputs."""

from __future__ import annotations

import socket

import pytest
import torch

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
