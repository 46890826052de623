"""One way to keep state, for every store here: the ledger, the knowledge base, the disputer's state.

Two backends behind one interface: SQLite files under ATTEST_HOME, the default (attest/storage/sqlite.py, whose
doc says how durability, transactions and migrations work), and a PostgreSQL server that several processes and
machines share (attest/storage/postgres.py, which says how each SQLite-specific spot maps). A store names where
it lives with `open_database`; its SQL, migrations and time stamps are the same on both.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Protocol

from attest.errors import AttestError
from attest.storage.common import (
    DATABASE_ERRORS,
    INTEGRITY_ERRORS,
    Connection,
    Cursor,
    DatabaseFailure,
    Migration,
    Postgres,
    Row,
    holds_password,
    parse_time,
    run_script,
    utc_now,
)
from attest.storage.sqlite import Database

__all__ = [
    "DATABASE_ERRORS",
    "INTEGRITY_ERRORS",
    "Connection",
    "Cursor",
    "Database",
    "DatabaseFailure",
    "Migration",
    "Postgres",
    "Row",
    "Store",
    "holds_password",
    "open_database",
    "parse_time",
    "run_script",
    "utc_now",
]


class Store(Protocol):
    """An open store on either backend."""

    @property
    def path(self) -> Path | Postgres: ...

    @property
    def conn(self) -> Connection: ...

    def transaction(self, *, durable: bool = False) -> AbstractContextManager[Connection]: ...

    def schema_version(self) -> int: ...

    def close(self) -> None: ...


def open_database(
    where: Path | Postgres, migrations: Sequence[Migration], *, what: str, error: type[AttestError], schema: str
) -> Store:
    """The store's SQLite file at `where`, or its `schema` on a PostgreSQL server; rows read by column name."""
    if isinstance(where, Postgres):
        from attest.storage.postgres import PostgresDatabase  # psycopg loads only when a server is configured

        return PostgresDatabase(where, migrations, what=what, error=error, schema=schema)
    database = Database(where, migrations, what=what, error=error)
    database.conn.row_factory = sqlite3.Row
    return database
