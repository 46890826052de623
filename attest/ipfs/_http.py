"""Reading an HTTP body under a deadline, shared by the gateway and pinning-service clients.

A socket timeout alone bounds each wait, not the whole body: a server that drips one byte at a time could
hold a reader forever. Here every wait is cut to what is left of one deadline.
"""

from __future__ import annotations

import http.client
import socket
import time
from collections.abc import Callable


def time_left(deadline: float) -> Callable[[], float]:
    """A `left()` for `read_body`: seconds until the `time.monotonic()` deadline, TimeoutError once past it."""

    def left() -> float:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError
        return remaining

    return left


class BodyTooLarge(Exception):
    """The body grew past the caller's limit."""


class ShortBody(Exception):
    """The connection closed before the promised Content-Length arrived."""


def read_body(
    response: http.client.HTTPResponse, sock: socket.socket, left: Callable[[], float], max_bytes: int
) -> bytes:
    """The whole body. `left()` returns the seconds remaining or raises TimeoutError when there are none."""
    chunks: list[bytes] = []
    size = 0
    try:
        while True:
            sock.settimeout(left())
            chunk = response.read1(65536)
            if not chunk:
                break
            size += len(chunk)
            if size > max_bytes:
                raise BodyTooLarge
            chunks.append(chunk)
    except http.client.IncompleteRead:
        raise ShortBody from None
    if response.length:  # read1 does not notice a body cut shorter than its Content-Length
        raise ShortBody
    return b"".join(chunks)
