"""Locks between processes: one process at a time signs for an account on a chain, one asserts the batches of an
account on a chain, and one disputer runs per home and network and per signer.

One mechanism per backend, chosen by where the ledger lives (`[storage] url`), since what the lock guards (nonces,
the outbox's records, the batch queue) is shared exactly as widely as the ledger:
- SQLite (the default): `flock` files under ATTEST_HOME (`locks/`). The kernel releases them when the process dies,
  SIGKILL included, so a crash never leaves a lock behind. A daemon writes its pid into its lock file, for the
  message of whoever is refused. They coordinate the processes of one home on one machine, which is all that
  shares a SQLite ledger.
- PostgreSQL: session-level advisory locks on the server the ledger is on, each on a connection of its own, held
  for as long as the lock is: every process and machine using that ledger sees them. PostgreSQL releases a
  session's locks when its connection ends, so a process killed (or a machine lost) frees them as soon as the
  server notices the connection gone. A lock holder whose own connection breaks has lost the lock: the signing
  lock notices at release; the batch leader at its next poll, and stops leading until it wins the lock again.

The daemon's `ExclusiveLock` is per home in either case: a disputer's home names its network and signer.
"""

from __future__ import annotations

import fcntl
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from attest.config import load_config
from attest.errors import AttestError, StorageError
from attest.paths import attest_home
from attest.storage import Postgres

if TYPE_CHECKING:
    import psycopg


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


def shared_server() -> Postgres | None:
    """The PostgreSQL server the ledger is on (`[storage] url`), or None for the home's SQLite files."""
    url = load_config().storage.url
    return Postgres(url) if url is not None else None


def _advisory_key(purpose: str, chain_id: int, address: str) -> int:
    from attest.storage.postgres import lock_key

    # Not one store's: the ledger and the disputer's state both sign for accounts, from the same server.
    return lock_key("accounts", f"{purpose}/{chain_id}/{address.lower()}")


def _session(server: Postgres, what: str) -> psycopg.Connection[Any]:
    from attest.storage.postgres import connect  # psycopg loads only when a server is configured

    return connect(server, what=what)


class _Held:
    """One lock of this process: a thread lock (neither flock nor a session's advisory lock excludes threads of
    one process) and what holds it across processes while any holder is inside: the locked file, or the session
    that holds the advisory lock (kept open between holds, so taking the lock costs no new connection)."""

    def __init__(self) -> None:
        self.thread_lock = threading.RLock()
        self.depth = 0
        self.handle: IO[str] | None = None
        self.session: psycopg.Connection[Any] | None = None


_HELD: dict[Path | tuple[str, int], _Held] = {}
_HELD_GUARD = threading.Lock()


class SigningLock:
    """Serializes nonce allocation, signing, recording and sending for one (chain id, account) across every
    process sharing the ledger: those of one ATTEST_HOME (SQLite), or of every home and machine using one
    PostgreSQL server (`server`). Reentrant within a process, so a flow may hold it around a decision and the
    sends that follow from it."""

    def __init__(self, chain_id: int, address: str, home: Path | None = None, server: Postgres | None = None) -> None:
        self.address = address
        self.server = server
        base = (home / "locks") if home is not None else lock_dir()
        self.path = base / f"signer-{chain_id}-{address.lower()}.lock"
        self.key = 0 if server is None else _advisory_key("sign", chain_id, address)
        self._id: Path | tuple[str, int] = self.path if server is None else (server.url, self.key)

    @classmethod
    def configured(cls, chain_id: int, address: str) -> SigningLock:
        """The lock where the configured ledger is: on its PostgreSQL server, else under ATTEST_HOME."""
        return cls(chain_id, address, server=shared_server())

    @contextmanager
    def held(self) -> Iterator[None]:
        with _HELD_GUARD:
            held = _HELD.setdefault(self._id, _Held())
        with held.thread_lock:
            if held.depth == 0:
                self._take(held)
            held.depth += 1
            try:
                yield
            finally:
                held.depth -= 1
                if held.depth == 0:
                    self._give_back(held)

    def _take(self, held: _Held) -> None:
        if self.server is None:
            handle = _open(self.path)
            try:
                fcntl.flock(handle, fcntl.LOCK_EX)
            except BaseException:
                handle.close()
                raise
            held.handle = handle
            return
        import psycopg

        from attest.storage.postgres import one_line

        if held.session is None or held.session.closed:
            held.session = _session(self.server, "signing lock's database")
        try:
            held.session.execute("SELECT pg_advisory_lock(%s)", (self.key,))  # waits for the holder, anywhere
        except BaseException as err:
            # Interrupted, the lock may have been granted all the same: ending the session gives it back.
            held.session.close()
            if isinstance(err, psycopg.Error):
                raise StorageError(
                    f"cannot take the signing lock of {self.address} on {self.server}: {one_line(err)}; check that "
                    "the server is up, then try again"
                ) from None
            raise

    def _give_back(self, held: _Held) -> None:
        if held.handle is not None:
            fcntl.flock(held.handle, fcntl.LOCK_UN)
            held.handle.close()
            held.handle = None
        if held.session is not None:
            import psycopg

            try:
                held.session.execute("SELECT pg_advisory_unlock(%s)", (self.key,))
            except psycopg.Error:  # the session is gone, and the lock with it
                held.session.close()


class BatchLeadership:
    """Which (chain id, account) pairs this process asserts the batches of: each pair has one leader among the
    processes sharing the ledger. On PostgreSQL a pair's leader holds its advisory lock on one session kept for
    the purpose, taken without waiting (`lead` each poll: a crashed leader's session ends and the next poll of
    another process wins the lock). On SQLite every process leads, as one home's processes always did: the
    store's write lock keeps them to one batch per record, and the outbox to one assertion per batch."""

    def __init__(self, server: Postgres | None) -> None:
        self.server = server
        self._session: psycopg.Connection[Any] | None = None
        self._leading: set[int] = set()
        self._guard = threading.Lock()

    def lead(self, chain_id: int, address: str) -> bool:
        """Whether this process leads the pair now, winning it if no other process does."""
        if self.server is None:
            return True
        import psycopg

        key = _advisory_key("batch-leader", chain_id, address)
        with self._guard:
            try:
                if self._session is not None and not self._session.closed:
                    self._session.execute("SELECT 1")  # still the session that holds what we lead?
                else:
                    self._drop()
                    self._session = _session(self.server, "batch leader lock's database")
                if key not in self._leading:
                    row = self._session.execute("SELECT pg_try_advisory_lock(%s)", (key,)).fetchone()
                    if row is not None and row[0]:
                        self._leading.add(key)
            except psycopg.Error:  # the session broke: whatever it led is another's to win now
                self._drop()
                return False
            return key in self._leading

    def _drop(self) -> None:
        self._leading.clear()
        if self._session is not None:
            with suppress(Exception):
                self._session.close()
            self._session = None

    def close(self) -> None:
        """Stop leading (closing the session releases its locks)."""
        with self._guard:
            self._drop()


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
