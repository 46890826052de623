"""What every part of the disputer's state shares: the database, its transactions, hex for messages."""

from __future__ import annotations

from collections.abc import Iterable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

from attest.storage import Connection, Postgres, Row, Store


def hex_or_none(value: bytes | None) -> str | None:
    return None if value is None else "0x" + bytes(value).hex()


def opt_bytes(value: Any) -> bytes | None:
    return None if value is None else bytes(value)


class StoreBase:
    """The open database the table classes of `DisputerStore` work on."""

    path: Path | Postgres
    _database: Store
    _db: Connection

    def transaction(self, *, durable: bool = False) -> AbstractContextManager[Connection]:
        """All writes inside commit together or not at all; an inner use is a savepoint of the outer one.
        `durable`: on disk before the commit returns (attest.storage)."""
        return self._database.transaction(durable=durable)

    def _one(self, sql: str, args: Iterable[Any] = ()) -> Row | None:
        return self._db.execute(sql, tuple(args)).fetchone()
