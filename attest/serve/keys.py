"""API keys of `attest serve`, kept hashed in `$ATTEST_HOME/serve.sqlite`, and each key's records per UTC day.

A key is `sk-attest-` and 32 random bytes (256 bits, base64url). Only its SHA-256 is stored: with that much
entropy nobody can search the hash for the token, so a slow password hash (bcrypt, argon2) would add nothing but
milliseconds to every request. The token is shown once, when created.
"""

from __future__ import annotations

import hashlib
import secrets
import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from attest.errors import ServeError
from attest.paths import attest_home
from attest.storage import Database, Migration, utc_now

PREFIX = "sk-attest-"
_MIGRATIONS = (
    Migration(
        "API keys (SHA-256 of the token only) and records made per key and UTC day",
        """
        CREATE TABLE api_keys(
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            name TEXT NOT NULL,
            sha256 TEXT NOT NULL UNIQUE,
            hint TEXT NOT NULL,
            created_at TEXT NOT NULL,
            revoked_at TEXT
        );
        CREATE TABLE api_usage(
            key_id INTEGER NOT NULL REFERENCES api_keys(id),
            day TEXT NOT NULL,
            records INTEGER NOT NULL,
            PRIMARY KEY (key_id, day)
        )
        """,
    ),
)


@dataclass(frozen=True)
class ApiKey:
    id: int
    name: str
    hint: str  # the token's first characters, to tell keys apart in a list; not enough to use it
    created_at: str
    revoked_at: str | None


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def today() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%d")


class KeyBook:
    def __init__(self, path: Path | None = None) -> None:
        self.path = path or attest_home() / "serve.sqlite"
        self.database = Database(self.path, _MIGRATIONS, what="API key book", error=ServeError)
        self.database.conn.row_factory = sqlite3.Row

    def __enter__(self) -> KeyBook:
        return self

    def __exit__(self, *exc: object) -> None:
        self.database.close()

    def create(self, name: str) -> tuple[ApiKey, str]:
        """A new key and its token (the only time the token exists outside the client)."""
        name = name.strip()
        if not name or len(name) > 64:
            raise ServeError("a key needs a name of 1 to 64 characters: `attest serve keys create NAME`")
        token = PREFIX + secrets.token_urlsafe(32)
        with self.database.transaction() as db:
            cursor = db.execute(
                "INSERT INTO api_keys(name, sha256, hint, created_at) VALUES (?, ?, ?, ?)",
                (name, token_hash(token), token[: len(PREFIX) + 4], utc_now()),
            )
        return self.get(int(cursor.lastrowid or 0)), token

    def get(self, key_id: int) -> ApiKey:
        row = self.database.conn.execute("SELECT * FROM api_keys WHERE id = ?", (key_id,)).fetchone()
        if row is None:
            raise ServeError(f"no API key #{key_id}; see `attest serve keys list`")
        return _key(row)

    def list(self) -> list[ApiKey]:
        return [_key(r) for r in self.database.conn.execute("SELECT * FROM api_keys ORDER BY id")]

    def active(self) -> int:
        return int(self.database.conn.execute("SELECT count(*) FROM api_keys WHERE revoked_at IS NULL").fetchone()[0])

    def revoke(self, key_id: int) -> ApiKey:
        key = self.get(key_id)
        if key.revoked_at is None:
            with self.database.transaction() as db:
                db.execute("UPDATE api_keys SET revoked_at = ? WHERE id = ?", (utc_now(), key_id))
        return self.get(key_id)

    def check(self, token: str) -> ApiKey | None:
        """The key a token belongs to, None when it is unknown or revoked. Looked up by hash: nothing of the
        stored hashes is compared byte by byte against the token."""
        row = self.database.conn.execute(
            "SELECT * FROM api_keys WHERE sha256 = ? AND revoked_at IS NULL", (token_hash(token),)
        ).fetchone()
        return None if row is None else _key(row)

    def records_today(self, key_id: int) -> int:
        row = self.database.conn.execute(
            "SELECT records FROM api_usage WHERE key_id = ? AND day = ?", (key_id, today())
        ).fetchone()
        return 0 if row is None else int(row[0])

    def reserve_record(self, key_id: int, limit: int) -> bool:
        """Count one more record of the key today, unless it already has `limit`; in one write transaction."""
        day = today()
        with self.database.transaction() as db:
            row = db.execute("SELECT records FROM api_usage WHERE key_id = ? AND day = ?", (key_id, day)).fetchone()
            if row is not None and int(row[0]) >= limit:
                return False
            db.execute(
                "INSERT INTO api_usage(key_id, day, records) VALUES (?, ?, 1) "
                "ON CONFLICT(key_id, day) DO UPDATE SET records = records + 1",
                (key_id, day),
            )
        return True

    def release_record(self, key_id: int) -> None:
        """Give back a reserved record that was not made."""
        with self.database.transaction() as db:
            db.execute(
                "UPDATE api_usage SET records = max(records - 1, 0) WHERE key_id = ? AND day = ?", (key_id, today())
            )


def _key(row: sqlite3.Row) -> ApiKey:
    return ApiKey(row["id"], row["name"], row["hint"], row["created_at"], row["revoked_at"])
