"""A real PostgreSQL server for the tests (Debian's `postgresql` package), in a temporary directory on a free
port. initdb and postgres refuse to run as root, so as root they run as the `postgres` system user, which owns
the data and socket directories. The tests' role logs in over TCP with a password (scram-sha-256), as a
deployment would; the server's superuser, over its Unix socket, only creates one database per test."""

from __future__ import annotations

import glob
import os
import pwd
import secrets
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from itertools import count
from pathlib import Path

import psycopg
import pytest

from attest.storage import Postgres
from tests.support.ports import free_port

ROLE = "attest"
INSTALL_HINT = "PostgreSQL is not installed: `apt-get install postgresql` (scripts/dev test installs it)"


def find_bindir() -> Path | None:
    """The newest installed server's bin directory (Debian keeps each major version apart)."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[4]))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


class PostgresServer:
    def __init__(self, bindir: Path) -> None:
        self.bindir = bindir
        self.root = Path(tempfile.mkdtemp(prefix="attest-pg-"))
        self.data = self.root / "data"
        self.sockets = self.root / "sockets"
        self.port = free_port()
        self.password = secrets.token_hex(16)
        self._as_user: list[str] = []
        self._names = count(1)
        self.sockets.mkdir()
        if os.geteuid() == 0:
            user = pwd.getpwnam("postgres")
            for path in (self.root, self.sockets):
                os.chown(path, user.pw_uid, user.pw_gid)
            self._as_user = ["runuser", "-u", "postgres", "--"]

    def _run(self, *args: str) -> None:
        subprocess.run([*self._as_user, *args], check=True, capture_output=True, timeout=120)

    def start(self) -> None:
        self._run(
            str(self.bindir / "initdb"), "-D", str(self.data), "-U", "postgres", "--auth-local=trust",
            "--auth-host=scram-sha-256", "--no-locale", "-E", "UTF8", "--no-sync",
        )  # fmt: skip
        self.resume()
        with self.admin() as conn:
            conn.execute(f"CREATE ROLE {ROLE} LOGIN PASSWORD '{self.password}'")

    def resume(self) -> None:
        """Start the server on its data directory (after `start` made it, or after `pause`)."""
        # No fsync: a test server's data need not survive a power cut, and the disk is shared.
        options = (
            f"-p {self.port} -k {self.sockets} -c listen_addresses=127.0.0.1 -c fsync=off "
            "-c full_page_writes=off -c synchronous_commit=off -c max_connections=60"
        )
        self._run(
            str(self.bindir / "pg_ctl"), "-D", str(self.data), "-l", str(self.root / "server.log"), "-o", options,
            "-w", "-t", "60", "start",
        )  # fmt: skip

    def pause(self) -> None:
        """Stop the server as an outage would (every session cut), keeping its data for `resume`."""
        self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop")

    def admin(self, database: str = "postgres") -> psycopg.Connection[tuple[object, ...]]:
        """The server's superuser, over its socket."""
        return psycopg.connect(
            host=str(self.sockets), port=self.port, user="postgres", dbname=database, autocommit=True
        )

    def url(self, database: str, *, port: int | None = None) -> str:
        return f"postgresql://{ROLE}@127.0.0.1:{port or self.port}/{database}"

    def new_database(self) -> str:
        """A fresh, empty database owned by the tests' role; its URL (no password in it)."""
        name = f"t{next(self._names)}"
        with self.admin() as conn:
            conn.execute(f"CREATE DATABASE {name} OWNER {ROLE} TEMPLATE template0")
        return self.url(name)

    def stop(self) -> None:
        try:
            self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)


# The `store_at` fixture (tests/conftest.py): a file name → where that store lives on the backend under test.
StoreAt = Callable[[str], Path | Postgres]


@contextmanager
def running_server() -> Iterator[PostgresServer]:
    """A started server of its own, stopped and deleted afterwards. Absent PostgreSQL, CI fails (both backends
    must be tested there) and a developer's machine skips with the fix."""
    bindir = find_bindir()
    if bindir is None:
        if os.environ.get("CI"):
            pytest.fail(INSTALL_HINT)
        pytest.skip(INSTALL_HINT)
    server = PostgresServer(bindir)
    try:
        server.start()
        yield server
    finally:
        server.stop()
