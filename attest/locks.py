"""File locks under ATTEST_HOME (`locks/`): one process at a time signs for an account on a chain, and one
disputer runs per home and network and per signer.

They are `flock` locks: the kernel releases them when the process dies, SIGKILL included, so a crash never
leaves a lock behind. A daemon writes its pid into its lock file, for the message of whoever is refused. The limit:
they coordinate processes that share one ATTEST_HOME on one machine; another home or another machine using
the same account is not seen (the outbox finds out when a nonce went elsewhere, and signs anew).
"""

from __future__ import annotations

import fcntl
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from attest.errors import AttestError
from attest.paths import attest_home


def lock_dir() -> Path:
    return attest_home() / "locks"


def _open(path: Path) -> IO[str]:
    path.parent.mkdir(parents=True, exist_ok=True)
    return path.open("a+")


def holder(path: Path) -> str:
    """Who holds the lock at `path`, as the pid its holder wrote ("an unknown process" when unreadable)."""
    try:
        text = path.read_text().strip()
    except OSError:
        text = ""
    return f"pid {text}" if text.isdigit() else "an unknown process"


def _write_pid(handle: IO[str]) -> None:
    handle.seek(0)
    handle.truncate()
    handle.write(str(os.getpid()))
    handle.flush()


class _Held:
    """One lock file of this process: a thread lock (flock does not exclude threads of one process) and the
    file, locked while any holder is inside."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.thread_lock = threading.RLock()
        self.depth = 0
        self.handle: IO[str] | None = None


_HELD: dict[Path, _Held] = {}
_HELD_GUARD = threading.Lock()


class SigningLock:
    """Serializes nonce allocation, signing, recording and sending for one (chain id, account) across the
    processes of one ATTEST_HOME. Reentrant within a process, so a flow may hold it around a decision and the
    sends that follow from it."""

    def __init__(self, chain_id: int, address: str, home: Path | None = None) -> None:
        base = (home / "locks") if home is not None else lock_dir()
        self.path = base / f"signer-{chain_id}-{address.lower()}.lock"

    @contextmanager
    def held(self) -> Iterator[None]:
        with _HELD_GUARD:
            held = _HELD.setdefault(self.path, _Held(self.path))
        with held.thread_lock:
            if held.depth == 0:
                handle = _open(self.path)
                try:
                    fcntl.flock(handle, fcntl.LOCK_EX)
                except BaseException:
                    handle.close()
                    raise
                held.handle = handle
            held.depth += 1
            try:
                yield
            finally:
                held.depth -= 1
                if held.depth == 0 and held.handle is not None:
                    fcntl.flock(held.handle, fcntl.LOCK_UN)
                    held.handle.close()
                    held.handle = None


class ExclusiveLock:
    """A lock held for a process's lifetime (a daemon's), taken without waiting: `acquire` raises `refusal`, its
    message `what` with `{holder}` replaced by the holder's pid, when another process has it."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._handle: IO[str] | None = None

    def acquire(self, refusal: type[AttestError], what: str) -> None:
        handle = _open(self.path)
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            raise refusal(what.replace("{holder}", holder(self.path))) from None
        _write_pid(handle)
        self._handle = handle

    def release(self) -> None:
        if self._handle is not None:
            fcntl.flock(self._handle, fcntl.LOCK_UN)
            self._handle.close()
            self._handle = None
