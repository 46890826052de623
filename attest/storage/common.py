"""What both storage backends share: time stamps, named migrations, where a store lives, portable errors."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol, TypeAlias
from urllib.parse import parse_qs, urlsplit

_STAMP = "%Y-%m-%dT%H:%M:%S.%fZ"

# A row of a query: read by column name or position, `dict(row)` gives the columns (sqlite3.Row on SQLite,
# attest.storage.postgres.Row on PostgreSQL).
Row: TypeAlias = Any


def utc_now() -> str:
    """Now, the way every store writes it; sorts as text in time order."""
    return datetime.now(UTC).strftime(_STAMP)


def parse_time(stamp: str) -> datetime:
    """A stored time stamp, with or without fractions of a second."""
    return datetime.fromisoformat(stamp)


class Cursor(Protocol):
    @property
    def rowcount(self) -> int: ...

    def fetchone(self) -> Row: ...

    def fetchall(self) -> list[Row]: ...

    def __iter__(self) -> Iterator[Row]: ...


class Connection(Protocol):
    """What the stores call on a database: SQL with `?` placeholders, as sqlite3 takes it."""

    def execute(self, sql: str, parameters: Sequence[Any] = (), /) -> Cursor: ...


@dataclass(frozen=True)
class Migration:
    """One named schema step: SQL statements separated by `;` (none holds one inside a literal), or a function run
    on the connection; either way inside the migration's transaction. The SQL is the portable subset both
    backends run (PostgreSQL maps SQLite's type names, see attest/storage/postgres.py)."""

    name: str
    apply: str | Callable[[sqlite3.Connection], None]


def run_script(db: Connection, sql: str) -> None:
    """Statements one by one: `executescript` would commit the open transaction."""
    for statement in sql.split(";"):
        if statement.strip():
            db.execute(statement)


def holds_password(url: str) -> bool:
    """Whether a postgresql:// URL carries a password (user:password@, or ?password=)."""
    parts = urlsplit(url)
    try:
        in_netloc = parts.password is not None
    except ValueError:  # a netloc urllib cannot split: refuse rather than guess
        return True
    return in_netloc or "password" in parse_qs(parts.query)


@dataclass(frozen=True)
class Postgres:
    """A store on a PostgreSQL server: `url` is postgresql://user@host:port/db, never with a password (that
    comes from ATTEST_DB_PASSWORD, or libpq's own PGPASSWORD or ~/.pgpass)."""

    url: str

    def __str__(self) -> str:
        return self.url


class DatabaseFailure(Exception):
    """A PostgreSQL statement failed (the backend's counterpart of sqlite3.Error); one line, no password."""


class IntegrityViolation(DatabaseFailure):
    """A PostgreSQL constraint refused a write (the counterpart of sqlite3.IntegrityError)."""


# What a caller catches to handle a failed statement whichever backend ran it.
DATABASE_ERRORS: tuple[type[Exception], ...] = (sqlite3.Error, DatabaseFailure)
INTEGRITY_ERRORS: tuple[type[Exception], ...] = (sqlite3.IntegrityError, IntegrityViolation)
