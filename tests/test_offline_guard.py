import socket

import pytest


def test_the_offline_guard_blocks_outside_connections(offline):
    with pytest.raises(offline):
        socket.create_connection(("203.0.113.1", 443), timeout=1)
    with pytest.raises(offline):
        socket.getaddrinfo("download.pytorch.org", 443)
