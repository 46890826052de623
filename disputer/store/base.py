"""What every part of the disputer's state shares: the database, its transactions, hex for messages."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any, cast

from attest.storage import Database


def hex_or_none(value: bytes | None) -> str | None:
    return None if value is None else "0x" + bytes(value).hex()


def opt_bytes(value: Any) -> bytes | None:
    return None if value is None else bytes(value)


class StoreBase:
    """The open database the table classes of `DisputerStore` work on."""

    path: Path
    _database: Database
    _db: sqlite3.Connection

    def transaction(self, *, durable: bool = False) -> AbstractContextManager[sqlite3.Connection]:
        """All writes inside commit together or not at all; an inner use is a savepoint of the outer one.
        `durable`: on disk before the commit returns (attest.storage)."""
        return self._database.transaction(durable=durable)

    def _one(self, sql: str, args: Iterable[Any] = ()) -> sqlite3.Row | None:
        row = self._db.execute(sql, tuple(args)).fetchone()
        return cast(sqlite3.Row | None, row)
