"""Batches in the asserter's ledger: the tables (a named ledger migration), the record states, and the batch's
transaction log for the one outbox.

A record asked with `--batch` is signed and pinned like any other, then `queued`. Flushing moves queued records
into one new batch in a single transaction (`in batch`, with their leaf index), so a record is in
exactly one batch. The batch then goes building → pinned (manifest and rules v2) → asserting → asserted →
(disputed) → settled, and its records follow it (`asserted`, `settled`). Its transactions (approve, assert,
settle) are rows of `batch_txs`, a TxLog like the ledger's own, so the outbox never signs twice for one intent.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from attest.chain.outbox import TxRow, TxState, decode_earlier, earlier_after, encode_earlier
from attest.errors import LedgerError
from attest.storage import Connection, Migration, Row, Store, utc_now

if TYPE_CHECKING:
    from contextlib import AbstractContextManager

    from web3.types import TxReceipt

    from attest.chain.tx import SignedTx

QUEUED, IN_BATCH = "queued", "in batch"
BATCH_OPEN = ("building", "pinned", "asserting", "asserted", "disputed")

MIGRATION = Migration(
    "batches: queued records, Merkle batches (manifest, root, assertion) and their transactions",
    """
    CREATE TABLE batches(
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        status TEXT NOT NULL,
        network TEXT NOT NULL,
        chain_id INTEGER NOT NULL,
        account TEXT NOT NULL,
        asserter TEXT NOT NULL,
        plan TEXT NOT NULL,
        count INTEGER NOT NULL,
        manifest BLOB,
        manifest_cid TEXT,
        root TEXT,
        rules_cid TEXT,
        claim BLOB,
        assertion_id TEXT UNIQUE,
        assert_tx TEXT,
        log_index INTEGER,
        expiration INTEGER,
        disputer TEXT,
        outcome TEXT,
        settle_tx TEXT,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
    );
    ALTER TABLE attestations ADD COLUMN batch_id INTEGER REFERENCES batches(id);
    ALTER TABLE attestations ADD COLUMN leaf_index INTEGER;
    CREATE UNIQUE INDEX attestations_by_leaf ON attestations(batch_id, leaf_index);
    CREATE TABLE batch_txs(
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        batch_id INTEGER NOT NULL REFERENCES batches(id),
        kind TEXT NOT NULL,
        status TEXT NOT NULL,
        nonce INTEGER NOT NULL,
        tx_hash TEXT NOT NULL UNIQUE,
        raw BLOB NOT NULL,
        error TEXT,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        earlier TEXT
    );
    CREATE INDEX batch_txs_by_batch ON batch_txs(batch_id, kind)
    """,
)

_UPDATABLE = frozenset(
    {
        "status", "manifest", "manifest_cid", "root", "rules_cid", "claim", "assertion_id", "assert_tx",
        "log_index", "expiration", "disputer", "outcome", "settle_tx",
    }
)  # fmt: skip


@dataclass(frozen=True)
class Batch:
    id: int
    status: str
    network: str
    chain_id: int
    account: str
    asserter: str
    plan: dict[str, Any]
    count: int
    manifest: bytes | None
    manifest_cid: str | None
    root: str | None
    rules_cid: str | None
    claim: bytes | None
    assertion_id: str | None
    assert_tx: str | None
    log_index: int | None
    expiration: int | None
    disputer: str | None
    outcome: str | None
    settle_tx: str | None
    created_at: str
    updated_at: str

    @property
    def bond(self) -> int:
        return int(self.plan["bond"])


@dataclass(frozen=True)
class Answered:
    """A record signed and pinned outside the ledger, to add to it: queued for the next batch, or (an answer
    that answers nothing) only pinned."""

    network: str
    chain_id: int
    account: str
    asserter: str
    query: str
    record: bytes
    digest: str
    cid: str
    rules_cid: str
    pins: list[dict[str, Any]]
    queue: bool


@dataclass(frozen=True)
class Member:
    """A record of a batch, as the manifest lists it."""

    attestation_id: int
    leaf_index: int
    cid: str
    digest: str


class BatchBook:
    """Batches over the ledger's database (`Ledger.database`); also the outbox's TxLog for batch transactions."""

    def __init__(self, database: Store) -> None:
        self._database = database
        self._db = database.conn

    def transaction(self, *, durable: bool = False) -> AbstractContextManager[Connection]:
        return self._database.transaction(durable=durable)

    # -- records and batches -----------------------------------------------------------------------------
    def queue(self, attestation_id: int) -> None:
        """A signed, pinned record waits for the next batch of its network and account."""
        with self.transaction() as db:
            db.execute(
                "UPDATE attestations SET status = ?, updated_at = ? WHERE id = ? AND status = 'pinned'",
                (QUEUED, utc_now(), attestation_id),
            )
            _step(db, attestation_id, QUEUED, {})

    def add_answered(self, records: Sequence[Answered]) -> list[int]:
        """Many records in one transaction (a server's group commit), each with the steps a one-by-one ask
        writes (signed, pinned, queued); their ids, in order."""
        now = utc_now()
        ids = []
        with self.transaction() as db:
            for r in records:
                cursor = db.execute(
                    "INSERT INTO attestations(status, network, chain_id, account, asserter, query, record, digest, "
                    "cid, rules_cid, pins, want_assert, created_at, updated_at) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0, ?, ?) RETURNING id",
                    (
                        QUEUED if r.queue else "pinned", r.network, r.chain_id, r.account, r.asserter, r.query,
                        r.record, r.digest, r.cid, r.rules_cid, json.dumps(r.pins), now, now,
                    ),
                )  # fmt: skip
                attestation_id = int(cursor.fetchone()[0])
                _step(db, attestation_id, "signed", {"digest": r.digest, "bytes": len(r.record)})
                _step(db, attestation_id, "pinned", {"cid": r.cid, "rules": r.rules_cid})
                if r.queue:
                    _step(db, attestation_id, QUEUED, {})
                ids.append(attestation_id)
        return ids

    def queued(self, *, network: str | None = None, account: str | None = None) -> list[tuple[int, str, str]]:
        """(attestation id, network, account) of every queued record, oldest first."""
        where, args = ["status = ?"], [QUEUED]
        for column, value in (("network", network), ("account", account)):
            if value is not None:
                where.append(f"{column} = ?")
                args.append(value)
        rows = self._db.execute(
            f"SELECT id, network, account, created_at FROM attestations WHERE {' AND '.join(where)} ORDER BY id", args
        )
        return [(int(r[0]), str(r[1]), str(r[2])) for r in rows]

    def oldest_queued_at(self) -> str | None:
        row = self._db.execute("SELECT min(created_at) FROM attestations WHERE status = ?", (QUEUED,)).fetchone()
        return None if row[0] is None else str(row[0])

    def create(
        self, *, network: str, chain_id: int, account: str, asserter: str, plan: dict[str, Any], limit: int
    ) -> Batch | None:
        """Move up to `limit` queued records of (network, account) into one new batch, atomically; None when
        none is queued.

        The same record made twice (two servers answering one question in the same microsecond sign the same
        bytes) is one claim, asserted once: a row whose record is already a leaf (of this batch or an earlier one)
        joins that leaf's batch without a leaf of its own and shares its rows' fate; a manifest never lists a
        record twice."""
        with self.transaction() as db:
            now = utc_now()
            self._join_leaves(db, network, account, now)
            leaves: dict[str, int] = {}  # record CID -> the row that is its leaf
            for r in db.execute(
                "SELECT id, cid FROM attestations WHERE status = ? AND network = ? AND account = ? ORDER BY id",
                (QUEUED, network, account),
            ):
                if len(leaves) < limit:
                    leaves.setdefault(str(r[1]), int(r[0]))
            if not leaves:
                return None
            cursor = db.execute(
                "INSERT INTO batches(status, network, chain_id, account, asserter, plan, count, created_at, "
                "updated_at) VALUES ('building', ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
                (network, chain_id, account, asserter, json.dumps(_plain(plan), sort_keys=True), len(leaves), now, now),
            )
            batch_id = int(cursor.fetchone()[0])
            for index, attestation_id in enumerate(leaves.values()):
                db.execute(
                    "UPDATE attestations SET status = ?, batch_id = ?, leaf_index = ?, updated_at = ? WHERE id = ?",
                    (IN_BATCH, batch_id, index, now, attestation_id),
                )
                _step(db, attestation_id, IN_BATCH, {"batch": batch_id, "leaf_index": index})
            self._join_leaves(db, network, account, now)  # the other rows of this batch's records
        return self.get(batch_id)

    @staticmethod
    def _join_leaves(db: Connection, network: str, account: str, now: str) -> None:
        """Every queued row of (network, account) whose record is already a batch's leaf joins that batch."""
        rows = db.execute(
            "SELECT q.id, leaf.batch_id, leaf.status, leaf.id FROM attestations q JOIN attestations leaf "
            "ON leaf.cid = q.cid AND leaf.leaf_index IS NOT NULL "
            "WHERE q.status = ? AND q.network = ? AND q.account = ? AND q.batch_id IS NULL",
            (QUEUED, network, account),
        ).fetchall()
        for attestation_id, batch_id, status, leaf_id in rows:
            db.execute(
                "UPDATE attestations SET status = ?, batch_id = ?, updated_at = ? WHERE id = ?",
                (status, batch_id, now, attestation_id),
            )
            _step(db, int(attestation_id), str(status), {"batch": int(batch_id), "same_record_as": int(leaf_id)})

    def update(self, batch_id: int, *, records_status: str | None = None, **fields: Any) -> Batch:
        """Change the batch's fields (and, with `records_status`, its records' status) in one transaction."""
        unknown = set(fields) - _UPDATABLE
        if unknown:
            raise ValueError(f"not batch fields: {sorted(unknown)}")
        now = utc_now()
        with self.transaction() as db:
            if fields:
                assignments = ", ".join(f"{name} = ?" for name in fields)
                db.execute(
                    f"UPDATE batches SET {assignments}, updated_at = ? WHERE id = ?", (*fields.values(), now, batch_id)
                )
            if records_status is not None:
                detail = {"batch": batch_id} | {k: v for k, v in fields.items() if k in ("assertion_id", "outcome")}
                rows = db.execute("SELECT id FROM attestations WHERE batch_id = ? ORDER BY id", (batch_id,)).fetchall()
                for (attestation_id,) in rows:  # leaves and the rows that joined them
                    db.execute(
                        "UPDATE attestations SET status = ?, outcome = coalesce(?, outcome), updated_at = ? "
                        "WHERE id = ?",
                        (records_status, fields.get("outcome"), now, attestation_id),
                    )
                    _step(db, int(attestation_id), records_status, detail)
        return self.get(batch_id)

    def get(self, batch_id: int) -> Batch:
        row = self._db.execute("SELECT * FROM batches WHERE id = ?", (batch_id,)).fetchone()
        if row is None:
            raise LedgerError(f"no batch #{batch_id} in the ledger; see `attest batch status`")
        return _batch(row)

    def select(self, statuses: tuple[str, ...] = ()) -> list[Batch]:
        sql, args = "SELECT * FROM batches", list[Any]()
        if statuses:
            sql += f" WHERE status IN ({', '.join('?' for _ in statuses)})"
            args.extend(statuses)
        return [_batch(r) for r in self._db.execute(sql + " ORDER BY id", args)]

    def members(self, batch_id: int) -> list[Member]:
        """The batch's leaves, in order (rows that joined a leaf of the same record are not leaves)."""
        rows = self._db.execute(
            "SELECT id, leaf_index, cid, digest FROM attestations WHERE batch_id = ? AND leaf_index IS NOT NULL "
            "ORDER BY leaf_index",
            (batch_id,),
        )
        return [Member(int(r[0]), int(r[1]), str(r[2]), str(r[3])) for r in rows]

    def count_assertions(self, assertion_id: str) -> int:
        row = self._db.execute("SELECT count(*) FROM batches WHERE assertion_id = ?", (assertion_id,)).fetchone()
        return int(row[0])

    # -- transactions: the outbox's log ------------------------------------------------------------------
    def tx_intent(self, subject: int, kind: str) -> TxRow[int]:
        row = self._db.execute(
            "SELECT * FROM batch_txs WHERE batch_id = ? AND kind = ? ORDER BY id DESC LIMIT 1", (subject, kind)
        ).fetchone()
        if row is not None:
            return _tx(row)
        now = utc_now()
        return TxRow(0, subject, kind, "intent", None, None, None, None, 0, None, now, now)

    def tx_record_signed(self, row: TxRow[int], signed: SignedTx, sender: str) -> TxRow[int]:
        """The exact bytes, durable before they are sent: after a crash they are rebroadcast, never re-signed."""
        now = utc_now()
        with self.transaction(durable=True) as db:
            cursor = db.execute(
                "INSERT INTO batch_txs(batch_id, kind, status, nonce, tx_hash, raw, created_at, updated_at) "
                "VALUES (?, ?, 'signed', ?, ?, ?, ?, ?) RETURNING id",
                (row.subject, row.kind, signed.nonce, signed.tx_hash, signed.raw, now, now),
            )
            row_id = int(cursor.fetchone()[0])
        return self._tx_by_id(row_id)

    def tx_record(
        self, row: TxRow[int], status: TxState, *, error: str | None = None, receipt: TxReceipt | None = None
    ) -> TxRow[int]:
        if row.id == 0:  # refused by its static call: nothing was signed
            return row
        with self.transaction() as db:
            db.execute(
                "UPDATE batch_txs SET status = ?, error = ?, updated_at = ? WHERE id = ?",
                (status, error, utc_now(), row.id),
            )
        return self._tx_by_id(row.id)

    def tx_record_replaced(self, row: TxRow[int], signed: SignedTx) -> TxRow[int]:
        """A replacement about to be sent (or the earlier signing found mined): the same row, its earlier
        signings kept, so whichever is mined is recognised."""
        with self.transaction(durable=True) as db:
            db.execute(
                "UPDATE batch_txs SET tx_hash = ?, raw = ?, earlier = ?, updated_at = ? WHERE id = ?",
                (signed.tx_hash, signed.raw, encode_earlier(earlier_after(row, signed)), utc_now(), row.id),
            )
        return self._tx_by_id(row.id)

    def mined_tx(self, batch_id: int, kind: str) -> TxRow[int] | None:
        row = self._db.execute(
            "SELECT * FROM batch_txs WHERE batch_id = ? AND kind = ? AND status = 'mined' ORDER BY id DESC LIMIT 1",
            (batch_id, kind),
        ).fetchone()
        return None if row is None else _tx(row)

    def _tx_by_id(self, row_id: int) -> TxRow[int]:
        return _tx(self._db.execute("SELECT * FROM batch_txs WHERE id = ?", (row_id,)).fetchone())


def _plain(plan: dict[str, Any]) -> dict[str, Any]:
    return {k: str(v) if k == "bond" else v for k, v in plan.items()}  # uint256 does not fit SQLite's integers


def _step(db: Connection, attestation_id: int, step: str, detail: dict[str, Any]) -> None:
    db.execute(
        "INSERT INTO steps(attestation_id, at, step, detail) VALUES (?, ?, ?, ?)",
        (attestation_id, utc_now(), step, json.dumps(detail, sort_keys=True)),
    )


def _batch(row: Row) -> Batch:
    data = dict(row)
    data["plan"] = json.loads(data["plan"])
    return Batch(**data)


def _tx(row: Row) -> TxRow[int]:
    return TxRow(
        row["id"], row["batch_id"], row["kind"], row["status"], row["nonce"], bytes.fromhex(row["tx_hash"][2:]),
        row["raw"], None, 1, row["error"], row["created_at"], row["updated_at"], decode_earlier(row["earlier"]),
    )  # fmt: skip
