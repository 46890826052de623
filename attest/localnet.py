"""Helpers for the local processes llm-attest starts (the devnet's anvil) and serves on: ports and logs."""

from __future__ import annotations

import contextlib
import socket
from pathlib import Path

HOST = "127.0.0.1"


def port_in_use(port: int, host: str = HOST) -> bool:
    """True when something holds `port`: binding it (as the daemon would) fails."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return True
    return False


def log_tail(path: Path, lines: int = 5) -> str:
    """ ": last | lines | of a log", for an error about a process that failed to start, or "" when none."""
    with contextlib.suppress(OSError):
        tail = path.read_text(errors="replace").strip().splitlines()[-lines:]
        if tail:
            return ": " + " | ".join(tail)
    return ""
