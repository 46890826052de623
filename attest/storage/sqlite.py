"""The SQLite backend, every store's default: the ledger, the knowledge base, the disputer's state.

- Durability: write-ahead log (readers never block the writer) with `synchronous=NORMAL`: a commit survives a
  crash of the process, and the last moments before a power cut may be lost. A commit that must survive a power
  cut asks for it (`transaction(durable=True)`: synchronous=FULL, one fsync): the outboxes do, for the signed
  bytes of a transaction before they are sent, or a restart after a power cut could sign a second transaction
  for the same intent. The log is append-only, so that fsync makes every earlier commit durable too. Everything
  else (steps, pins, decisions) can be redone and does not pay an fsync per commit.
- Transactions: `Database.transaction()` nests. The outermost is `BEGIN IMMEDIATE` (the write lock is taken
  up front, so two writers queue rather than fail half-way), an inner one a SAVEPOINT, so an inner failure that
  its caller handles undoes only the inner writes.
- Migrations: named, applied in order, each in its own transaction, and recorded in one table,
  `migrations(version, name, applied_at)`; the version is the migration's place in its store's list. Releases
  before this module kept the disputer's list in `schema_version`; its rows move over when the file is opened.
- Time stamps: `utc_now()`, RFC 3339 in UTC with microseconds and a Z. `parse_time` also reads the
  whole-second stamps earlier releases wrote into the knowledge base and the disputer's state.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from attest.errors import AttestError
from attest.storage.common import Migration, run_script, utc_now

_LEGACY_BOOKKEEPING = "schema_version"  # the disputer's migration table before this module


class Database:
    """One SQLite file of one store. `what` names the store in messages ("knowledge base"); `error` is the
    store's error class. Refuses a file that is not SQLite, or was migrated by a newer release."""

    def __init__(self, path: Path, migrations: Sequence[Migration], *, what: str, error: type[AttestError]) -> None:
        self.path = path
        self.what = what
        self.error = error
        self.migrations = tuple(migrations)
        self._depth = 0
        self._durable = False
        # An auditor's copy of a home (a read-only mount, files of another user) is still read: commands that only
        # read work, and the first write says why it cannot happen.
        self.read_only = path.exists() and not (os.access(path, os.W_OK) and os.access(path.parent, os.W_OK))
        if self.read_only:
            self.conn = self._open_read_only()
            return
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self.conn = sqlite3.connect(path, isolation_level=None, timeout=30.0, check_same_thread=False)
        except (OSError, sqlite3.Error) as err:
            raise error(f"cannot open the {what} at {path}: {err}; check the path and its permissions") from None
        try:
            self.conn.execute("PRAGMA journal_mode = WAL")
            self.conn.execute("PRAGMA synchronous = NORMAL")
            self.conn.execute("PRAGMA foreign_keys = ON")
            # The write-ahead log is cut back to 8 MiB when next reset, so a big write leaves no big file behind.
            self.conn.execute("PRAGMA journal_size_limit = 8388608")
            self._migrate()
        except sqlite3.DatabaseError as err:
            self.conn.close()
            raise error(f"{path} is not a readable {what} ({err}); move it away or set ATTEST_HOME") from None
        except AttestError:
            self.conn.close()
            raise

    def _open_read_only(self) -> sqlite3.Connection:
        """`mode=ro` reads a live file (it needs the write-ahead log's index, -shm, to exist or be creatable);
        where not even that can be, `immutable=1` reads the file as it is, which is right for a copy."""
        uri = self.path.resolve().as_uri()
        last: sqlite3.Error | None = None
        for flags in ("mode=ro", "immutable=1"):
            try:
                conn = sqlite3.connect(f"{uri}?{flags}", uri=True, isolation_level=None, check_same_thread=False)
            except sqlite3.Error as err:
                last = err
                continue
            try:
                version = int(conn.execute("SELECT coalesce(max(version), 0) FROM migrations").fetchone()[0])
            except sqlite3.Error as err:
                conn.close()
                last = err
                continue
            if version != len(self.migrations):
                conn.close()
                raise self.error(
                    f"{self.path} is read-only and has {self.what} schema v{version}, not v{len(self.migrations)} as "
                    "this release reads; open it once where it is writable, or use the matching release"
                )
            conn.execute("PRAGMA query_only = ON")
            return conn
        raise self.error(f"cannot read the {self.what} at {self.path} ({last}); check the path and its permissions")

    def close(self) -> None:
        self.conn.close()

    @contextmanager
    def transaction(self, *, durable: bool = False) -> Iterator[sqlite3.Connection]:
        """All writes inside commit together or not at all; an inner use is a savepoint of the outer one.
        `durable`: the commit that includes these writes is on disk before it returns (see the module doc)."""
        if self._depth:
            if durable and not self._durable:
                # SQLite reads `synchronous` when the transaction begins, so the outermost one must ask.
                raise RuntimeError("a durable write inside a transaction that is not: open that one durable=True")
            name = f"nested{self._depth}"
            self.conn.execute(f"SAVEPOINT {name}")
            self._depth += 1
            try:
                yield self.conn
            except BaseException:
                if self.conn.in_transaction:  # SQLite may have rolled back all of it already (a full disk)
                    self.conn.execute(f"ROLLBACK TO {name}")
                    self.conn.execute(f"RELEASE {name}")
                raise
            else:
                self.conn.execute(f"RELEASE {name}")
            finally:
                self._depth -= 1
            return
        if self.read_only:
            raise self.error(
                f"the {self.what} at {self.path} is read-only; nothing was changed. Run this where ATTEST_HOME is "
                "writable, or set ATTEST_HOME to a writable copy"
            )
        try:
            if durable:
                self.conn.execute("PRAGMA synchronous = FULL")  # SQLite reads it when the transaction begins
                self._durable = True
            self.conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as err:
            self._durable = False
            self.conn.execute("PRAGMA synchronous = NORMAL")
            raise self.error(
                f"cannot write to the {self.what} at {self.path}: {err}; is another process writing to it, "
                "or is the disk full?"
            ) from None
        self._depth = 1
        try:
            yield self.conn
            self.conn.execute("COMMIT")
        except sqlite3.Error as err:
            self._rollback()
            raise self.error(f"the {self.what} at {self.path} failed: {err}; nothing was changed") from None
        except BaseException:
            self._rollback()
            raise
        finally:
            self._depth = 0
            if self._durable:
                self._durable = False
                self.conn.execute("PRAGMA synchronous = NORMAL")

    def _rollback(self) -> None:
        # After some errors (a full disk, an I/O error) SQLite has already rolled the transaction back, and a
        # second ROLLBACK would raise and hide the error that matters.
        if self.conn.in_transaction:
            self.conn.execute("ROLLBACK")

    def schema_version(self) -> int:
        return int(self.conn.execute("SELECT coalesce(max(version), 0) FROM migrations").fetchone()[0])

    def _migrate(self) -> None:
        db = self.conn
        db.execute(
            "CREATE TABLE IF NOT EXISTS migrations(version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT)"
        )
        if db.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (_LEGACY_BOOKKEEPING,)
        ).fetchone():
            with self.transaction():
                db.execute(
                    f"INSERT OR IGNORE INTO migrations SELECT version, name, applied_at FROM {_LEGACY_BOOKKEEPING}"
                )
                db.execute(f"DROP TABLE {_LEGACY_BOOKKEEPING}")
        current = self.schema_version()
        latest = len(self.migrations)
        if current > latest:
            raise self.error(
                f"{self.path} has {self.what} schema v{current}, newer than this release reads (v{latest}); "
                "upgrade llm-attest"
            )
        for version, migration in enumerate(self.migrations, start=1):
            if version <= current:
                continue
            with self.transaction():
                # Processes opening a new file together (two `attest ask` at once) all read version 0; the write
                # lock this transaction holds makes the check and the step one.
                if self.schema_version() >= version:
                    continue
                if callable(migration.apply):
                    migration.apply(db)
                else:
                    run_script(db, migration.apply)
                db.execute("INSERT INTO migrations VALUES (?, ?, ?)", (version, migration.name, utc_now()))
