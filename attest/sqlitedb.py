"""The SQLite conventions every store here shares: WAL, foreign keys, forward-only versioned migrations."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from attest.errors import AttestError

Migration = tuple[int, str, str]  # (version, name, SQL script)


def utc_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def open_db(path: Path, error: type[AttestError], what: str) -> sqlite3.Connection:
    """A connection in autocommit mode (transactions are explicit), WAL so readers never block the writer."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        db = sqlite3.connect(path, isolation_level=None, timeout=30.0, check_same_thread=False)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA foreign_keys=ON")
        db.execute("PRAGMA synchronous=NORMAL")
    except sqlite3.Error as err:
        raise error(f"cannot open the {what} at {path}: {err}; check the path and its permissions") from None
    return db


def migrate(
    db: sqlite3.Connection, migrations: Sequence[Migration], path: Path, error: type[AttestError], what: str
) -> None:
    """Apply what is missing, each migration in one transaction; refuse a file written by a newer release."""
    latest = migrations[-1][0]
    try:
        db.execute(
            "CREATE TABLE IF NOT EXISTS migrations(version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT)"
        )
        current = int(db.execute("SELECT coalesce(max(version), 0) FROM migrations").fetchone()[0])
    except sqlite3.DatabaseError as err:
        raise error(f"{path} is not a readable {what} ({err}); move it aside and retry") from None
    if current > latest:
        raise error(
            f"{path} has {what} schema v{current}, newer than this release reads (v{latest}); upgrade llm-attest"
        )
    for version, name, sql in migrations:
        if version <= current:
            continue
        db.execute("BEGIN IMMEDIATE")
        try:
            for statement in sql.split(";"):
                if statement.strip():
                    db.execute(statement)
            db.execute("INSERT INTO migrations VALUES (?, ?, ?)", (version, name, utc_now()))
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")
