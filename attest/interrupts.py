"""Ctrl-C (SIGINT) held back where acting on it at once would leave a doubt, or dropped where the work is done.

`deferred()`: a signal that arrives inside the block is delivered when it ends, to the handler there was before
(Python's own raises KeyboardInterrupt). The outbox sends and records `sent` inside one, so a transaction an
interrupted process left `signed` was never broadcast by it, and an interrupted ask can cancel it for sure.
`ignored()`: the signal is dropped (the ask's result is being recorded or printed after its assertion is mined).
Both act in the main thread only, where Python runs signal handlers; elsewhere they change nothing.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any


def _main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


@contextmanager
def deferred() -> Iterator[None]:
    if not _main_thread():
        yield
        return
    caught: list[tuple[int, FrameType | None]] = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: caught.append((signum, frame)))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        if caught and callable(previous):
            handler: Callable[[int, FrameType | None], Any] = previous
            handler(*caught[0])


@contextmanager
def ignored() -> Iterator[None]:
    if not _main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
