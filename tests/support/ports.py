"""Ports for the servers and nodes the tests and benchmarks start on loopback."""

from __future__ import annotations

import socket

from attest.localnet import HOST


def free_port(host: str = HOST) -> int:
    """A port nothing holds right now (the OS picks it), for processes started on loopback."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])
