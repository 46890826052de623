"""The asserter's ledger: one row per attestation, one row per transaction, one event per step.

It is an outbox. Every step is written before it happens and again after: the signed record before it is
pinned, the signed transaction bytes before they are sent, the hash once sent, the receipt once mined. A crash
at any point leaves enough here for `attest resume` to finish the job by rebroadcasting the very same bytes,
so no transaction is ever signed twice for one intent.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from attest.errors import LedgerError
from attest.paths import attest_home
from attest.sqlitedb import Migration, migrate, open_db, utc_now

# started -> signed -> pinned -> asserting -> asserted -> (disputed) -> settled; pinned is final with --no-assert.
Status = Literal["signed", "pinned", "asserting", "asserted", "disputed", "settled", "failed"]
STATUSES: tuple[str, ...] = ("signed", "pinned", "asserting", "asserted", "disputed", "settled", "failed")
TxKind = Literal["approve", "assert", "settle"]
TxStatus = Literal["signed", "sent", "mined", "reverted", "dropped"]

_MIGRATIONS: tuple[Migration, ...] = (
    (
        1,
        "attestations, transactions, steps",
        """
        CREATE TABLE attestations(
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            status TEXT NOT NULL,
            network TEXT NOT NULL,
            chain_id INTEGER NOT NULL,
            account TEXT NOT NULL,
            asserter TEXT NOT NULL,
            query TEXT NOT NULL,
            record BLOB NOT NULL,
            digest TEXT NOT NULL,
            cid TEXT,
            rules_cid TEXT,
            pins TEXT,
            want_assert INTEGER NOT NULL,
            oov3 TEXT,
            registry TEXT,
            currency TEXT,
            bond TEXT,
            liveness INTEGER,
            identifier TEXT,
            claim BLOB,
            assertion_id TEXT UNIQUE,
            assert_tx TEXT,
            log_index INTEGER,
            block_number INTEGER,
            expiration INTEGER,
            disputer TEXT,
            outcome TEXT,
            settle_tx TEXT,
            error TEXT,
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL
        );
        CREATE INDEX attestations_by_status ON attestations(status);
        CREATE INDEX attestations_by_cid ON attestations(cid);
        CREATE TABLE txs(
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            attestation_id INTEGER NOT NULL REFERENCES attestations(id),
            kind TEXT NOT NULL,
            status TEXT NOT NULL,
            nonce INTEGER NOT NULL,
            tx_hash TEXT NOT NULL UNIQUE,
            raw BLOB NOT NULL,
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL
        );
        CREATE INDEX txs_by_attestation ON txs(attestation_id, kind);
        CREATE TABLE steps(
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            attestation_id INTEGER NOT NULL REFERENCES attestations(id),
            at TEXT NOT NULL,
            step TEXT NOT NULL,
            detail TEXT NOT NULL
        );
        CREATE INDEX steps_by_attestation ON steps(attestation_id);
        """,
    ),
)

_UPDATABLE = frozenset(
    {
        "status", "cid", "rules_cid", "pins", "oov3", "registry", "currency", "bond", "liveness", "identifier",
        "claim", "assertion_id", "assert_tx", "log_index", "block_number", "expiration", "disputer", "outcome",
        "settle_tx", "error",
    }
)  # fmt: skip


@dataclass(frozen=True)
class Attestation:
    id: int
    status: str
    network: str
    chain_id: int
    account: str
    asserter: str
    query: str
    record: bytes
    digest: str
    cid: str | None
    rules_cid: str | None
    pins: list[dict[str, Any]]
    want_assert: bool
    oov3: str | None
    registry: str | None
    currency: str | None
    bond: int | None
    liveness: int | None
    identifier: str | None
    claim: bytes | None
    assertion_id: str | None
    assert_tx: str | None
    log_index: int | None
    block_number: int | None
    expiration: int | None
    disputer: str | None
    outcome: str | None
    settle_tx: str | None
    error: str | None
    created_at: str
    updated_at: str

    @property
    def finished(self) -> bool:
        return self.status in ("settled", "failed") or (self.status == "pinned" and not self.want_assert)


@dataclass(frozen=True)
class TxRow:
    id: int
    attestation_id: int
    kind: str
    status: str
    nonce: int
    tx_hash: str
    raw: bytes


@dataclass(frozen=True)
class Step:
    at: str
    step: str
    detail: dict[str, Any]


class Ledger:
    def __init__(self, path: Path | None = None) -> None:
        self.path = path or attest_home() / "ledger.sqlite"
        self._db = open_db(self.path, LedgerError, "ledger")
        self._db.row_factory = sqlite3.Row
        migrate(self._db, _MIGRATIONS, self.path, LedgerError, "ledger")

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        try:
            self._db.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as err:
            raise LedgerError(f"cannot write to the ledger {self.path}: {err}; is it on a full disk?") from None
        try:
            yield self._db
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    # -- attestations ------------------------------------------------------------------------------------
    def begin(
        self,
        *,
        network: str,
        chain_id: int,
        account: str,
        asserter: str,
        query: str,
        record: bytes,
        digest: str,
        want_assert: bool,
        plan: dict[str, Any],
    ) -> int:
        """The signed record, before anything leaves this machine; `plan` holds the assertion's parameters."""
        now = utc_now()
        with self._write() as db:
            cursor = db.execute(
                "INSERT INTO attestations(status, network, chain_id, account, asserter, query, record, digest, "
                "want_assert, oov3, registry, currency, bond, liveness, identifier, created_at, updated_at) "
                "VALUES ('signed', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    network, chain_id, account, asserter, query, record, digest, int(want_assert),
                    plan.get("oov3"), plan.get("registry"), plan.get("currency"),
                    None if plan.get("bond") is None else str(plan["bond"]), plan.get("liveness"),
                    plan.get("identifier"), now, now,
                ),
            )  # fmt: skip
            attestation_id = int(cursor.lastrowid or 0)
            self._step(db, attestation_id, "signed", {"digest": digest, "bytes": len(record)})
        return attestation_id

    def update(self, attestation_id: int, step: str, detail: dict[str, Any] | None = None, **fields: Any) -> None:
        """Change fields and log the step in one transaction."""
        unknown = set(fields) - _UPDATABLE
        if unknown:
            raise ValueError(f"not ledger fields: {sorted(unknown)}")
        values = [_column_value(name, value) for name, value in fields.items()]
        with self._write() as db:
            if fields:
                assignments = ", ".join(f"{name} = ?" for name in fields)
                db.execute(
                    f"UPDATE attestations SET {assignments}, updated_at = ? WHERE id = ?",
                    (*values, utc_now(), attestation_id),
                )
            self._step(db, attestation_id, step, detail or {})

    def get(self, attestation_id: int) -> Attestation:
        row = self._db.execute("SELECT * FROM attestations WHERE id = ?", (attestation_id,)).fetchone()
        if row is None:
            raise LedgerError(f"no attestation #{attestation_id} in the ledger {self.path}; see `attest list`")
        return _attestation(row)

    def find(self, ref: str) -> Attestation:
        """By ledger number (`7` or `#7`), assertion id (0x + 64 hex) or record CID."""
        ref = ref.strip()
        if ref.lstrip("#").isdigit():
            return self.get(int(ref.lstrip("#")))
        column = "assertion_id" if ref.lower().startswith("0x") else "cid"
        value = ref.lower() if column == "assertion_id" else ref
        row = self._db.execute(
            f"SELECT * FROM attestations WHERE {column} = ? ORDER BY id DESC LIMIT 1", (value,)
        ).fetchone()
        if row is None:
            raise LedgerError(f"no attestation {ref} in the ledger {self.path}; see `attest list`")
        return _attestation(row)

    def select(
        self,
        *,
        statuses: Sequence[str] = (),
        network: str | None = None,
        since: str | None = None,
        until: str | None = None,
        limit: int | None = None,
    ) -> list[Attestation]:
        where, args = ["1 = 1"], list[Any]()
        if statuses:
            where.append(f"status IN ({', '.join('?' for _ in statuses)})")
            args.extend(statuses)
        if network:
            where.append("network = ?")
            args.append(network)
        if since:
            where.append("created_at >= ?")
            args.append(since)
        if until:
            where.append("created_at < ?")
            args.append(until)
        sql = f"SELECT * FROM attestations WHERE {' AND '.join(where)} ORDER BY id"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        return [_attestation(r) for r in self._db.execute(sql, args)]

    def unfinished(self) -> list[Attestation]:
        open_statuses = ("signed", "pinned", "asserting", "asserted", "disputed")
        return [a for a in self.select(statuses=open_statuses) if not a.finished]

    def steps(self, attestation_id: int) -> list[Step]:
        rows = self._db.execute(
            "SELECT at, step, detail FROM steps WHERE attestation_id = ? ORDER BY id", (attestation_id,)
        )
        return [Step(r["at"], r["step"], json.loads(r["detail"])) for r in rows]

    # -- transactions ------------------------------------------------------------------------------------
    def tx_signed(self, attestation_id: int, kind: TxKind, nonce: int, tx_hash: str, raw: bytes) -> None:
        """The exact bytes, before they are sent: after a crash they are rebroadcast, never re-signed."""
        now = utc_now()
        with self._write() as db:
            db.execute(
                "INSERT INTO txs(attestation_id, kind, status, nonce, tx_hash, raw, created_at, updated_at) "
                "VALUES (?, ?, 'signed', ?, ?, ?, ?, ?)",
                (attestation_id, kind, nonce, tx_hash, raw, now, now),
            )
            self._step(db, attestation_id, f"{kind} signed", {"tx": tx_hash, "nonce": nonce})

    def tx_status(self, tx_hash: str, status: TxStatus, detail: dict[str, Any] | None = None) -> None:
        with self._write() as db:
            row = db.execute("SELECT attestation_id, kind FROM txs WHERE tx_hash = ?", (tx_hash,)).fetchone()
            if row is None:
                raise LedgerError(f"transaction {tx_hash} is not in the ledger")
            db.execute("UPDATE txs SET status = ?, updated_at = ? WHERE tx_hash = ?", (status, utc_now(), tx_hash))
            self._step(db, row["attestation_id"], f"{row['kind']} {status}", {"tx": tx_hash, **(detail or {})})

    def open_tx(self, attestation_id: int, kind: TxKind) -> TxRow | None:
        """The transaction of this kind still in flight (signed or sent), if any."""
        row = self._db.execute(
            "SELECT * FROM txs WHERE attestation_id = ? AND kind = ? AND status IN ('signed', 'sent') "
            "ORDER BY id DESC LIMIT 1",
            (attestation_id, kind),
        ).fetchone()
        return None if row is None else _tx(row)

    def mined_tx(self, attestation_id: int, kind: TxKind) -> TxRow | None:
        row = self._db.execute(
            "SELECT * FROM txs WHERE attestation_id = ? AND kind = ? AND status = 'mined' ORDER BY id DESC LIMIT 1",
            (attestation_id, kind),
        ).fetchone()
        return None if row is None else _tx(row)

    def txs(self, attestation_id: int) -> list[TxRow]:
        rows = self._db.execute("SELECT * FROM txs WHERE attestation_id = ? ORDER BY id", (attestation_id,))
        return [_tx(r) for r in rows]

    @staticmethod
    def _step(db: sqlite3.Connection, attestation_id: int, step: str, detail: dict[str, Any]) -> None:
        db.execute(
            "INSERT INTO steps(attestation_id, at, step, detail) VALUES (?, ?, ?, ?)",
            (attestation_id, utc_now(), step, json.dumps(detail, sort_keys=True)),
        )


def _column_value(name: str, value: Any) -> Any:
    if name == "pins":
        return json.dumps(value)
    if name == "bond" and value is not None:
        return str(value)  # uint256 does not fit SQLite's integers
    return value


def _attestation(row: sqlite3.Row) -> Attestation:
    data = dict(row)
    data["pins"] = json.loads(data["pins"]) if data["pins"] else []
    data["want_assert"] = bool(data["want_assert"])
    data["bond"] = None if data["bond"] is None else int(data["bond"])
    return Attestation(**data)


def _tx(row: sqlite3.Row) -> TxRow:
    return TxRow(row["id"], row["attestation_id"], row["kind"], row["status"], row["nonce"], row["tx_hash"], row["raw"])
