"""The dashboard's index of OptimisticOracleV3 events: every assertion on a network, kept in SQLite so the list
page answers from indexes, not from `eth_getLogs`, however many assertions the chain holds.

It is a cache of public chain data (it can be deleted and rebuilt): `$ATTEST_HOME/ui/index-<network>.sqlite`,
one file per network, tied to one chain history (genesis hash) and one OOv3; a different one empties it. A chain
that went back (a devnet snapshot reverted, a reorg) loses the rows above its head and is scanned again.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from attest.batch.claim import parse_batch_claim
from attest.chain.oov3 import AssertionDisputed, AssertionMade, AssertionSettled, OracleEvent
from attest.claim import parse_claim, ui_view
from attest.errors import ClaimError, LedgerError
from attest.storage import Database, Migration

PAGE_SIZE = 50
SCAN_WINDOW = 10_000  # blocks per eth_getLogs: public RPCs commonly cap a query there
STATUSES = ("asserted", "disputed", "settled")

MIGRATIONS = (
    Migration(
        "assertions of one OOv3 on one chain history, and how far they were scanned",
        """
        CREATE TABLE assertions(
            assertion_id TEXT PRIMARY KEY,
            position INTEGER NOT NULL,
            block_number INTEGER NOT NULL,
            log_index INTEGER NOT NULL,
            tx_hash TEXT NOT NULL,
            made_at INTEGER,
            asserter TEXT NOT NULL,
            callback_recipient TEXT NOT NULL,
            escalation_manager TEXT NOT NULL,
            domain_id TEXT NOT NULL,
            claim BLOB NOT NULL,
            title TEXT,
            kind TEXT NOT NULL,
            record_cid TEXT,
            currency TEXT NOT NULL,
            bond TEXT NOT NULL,
            expiration INTEGER NOT NULL,
            status TEXT NOT NULL,
            disputed INTEGER NOT NULL DEFAULT 0,
            disputer TEXT,
            dispute_tx TEXT,
            dispute_block INTEGER,
            resolution INTEGER,
            settle_tx TEXT,
            settle_block INTEGER,
            ours INTEGER NOT NULL DEFAULT 0
        );
        CREATE INDEX assertions_newest ON assertions(position DESC);
        CREATE INDEX assertions_by_status ON assertions(status, position DESC);
        CREATE INDEX assertions_disputed ON assertions(disputed, position DESC);
        CREATE INDEX assertions_by_kind ON assertions(kind, position DESC);
        CREATE INDEX assertions_by_asserter ON assertions(asserter, position DESC);
        CREATE INDEX assertions_ours ON assertions(ours, position DESC);
        CREATE INDEX assertions_by_record ON assertions(record_cid);
        CREATE TABLE scan(key TEXT PRIMARY KEY, value TEXT NOT NULL)
        """,
    ),
)


def position_of(block_number: int, log_index: int) -> int:
    """One sortable number per log: newest first is `position DESC`."""
    return block_number * 1_000_000 + log_index


@dataclass(frozen=True)
class Filters:
    ours: bool = False
    status: str | None = None  # one of STATUSES
    disputed: bool = False
    batch: bool = False
    asserter: str | None = None  # a checksummed address

    def query(self) -> dict[str, str]:
        """The filters as URL query parameters (pagination keeps them)."""
        out = {"ours": "1" if self.ours else "", "status": self.status or "", "disputed": "1" if self.disputed else ""}
        out |= {"batch": "1" if self.batch else "", "asserter": self.asserter or ""}
        return {k: v for k, v in out.items() if v}


@dataclass(frozen=True)
class Row:
    assertion_id: str
    position: int
    block_number: int
    log_index: int
    tx_hash: str
    made_at: int | None
    asserter: str
    callback_recipient: str
    escalation_manager: str
    domain_id: str
    claim: bytes
    title: str | None
    kind: str  # record | batch | other
    record_cid: str | None  # the record's CID, or a batch's manifest CID
    currency: str
    bond: int
    expiration: int
    status: str
    disputed: bool
    disputer: str | None
    dispute_tx: str | None
    dispute_block: int | None
    resolution: bool | None
    settle_tx: str | None
    settle_block: int | None
    ours: bool


def describe(claim: bytes) -> tuple[str | None, str, str | None]:
    """(the title the Oracle UI shows, the kind of claim, the record or manifest CID it names)."""
    view = ui_view(claim)
    title = view[0] if view else None
    try:
        return title, "record", parse_claim(claim).record_cid
    except ClaimError:
        pass
    try:
        return title, "batch", parse_batch_claim(claim).manifest_cid
    except ClaimError:
        return title, "other", None


class AssertionIndex:
    def __init__(self, path: Path) -> None:
        self._database = Database(path, MIGRATIONS, what="dashboard index", error=LedgerError)
        self.conn = self._database.conn
        self.conn.row_factory = sqlite3.Row

    def close(self) -> None:
        self._database.close()

    # -- writing (the scanner) ---------------------------------------------------------------------------------
    def scanned(self) -> dict[str, str]:
        return {str(k): str(v) for k, v in self.conn.execute("SELECT key, value FROM scan")}

    def reset(self, chain: str, first_block: int) -> None:
        """Forget everything: the index now follows `chain` (genesis hash + OOv3 address) from `first_block`."""
        with self._database.transaction() as db:
            db.execute("DELETE FROM assertions")
            db.execute("DELETE FROM scan")
            db.executemany("INSERT INTO scan VALUES (?, ?)", [("chain", chain), ("next_block", str(first_block))])

    def rewind(self, head: int) -> None:
        """The chain is back at `head`: what came after is gone (a disputed or settled one is scanned again)."""
        with self._database.transaction() as db:
            db.execute("DELETE FROM assertions WHERE block_number > ?", (head,))
            db.execute(
                "UPDATE assertions SET status = 'asserted', disputed = 0, disputer = NULL, dispute_tx = NULL, "
                "dispute_block = NULL WHERE dispute_block > ?",
                (head,),
            )
            db.execute(
                "UPDATE assertions SET status = CASE disputed WHEN 1 THEN 'disputed' ELSE 'asserted' END, "
                "resolution = NULL, settle_tx = NULL, settle_block = NULL WHERE settle_block > ?",
                (head,),
            )
            db.execute("UPDATE scan SET value = ? WHERE key = 'next_block'", (str(head + 1),))
            db.execute("DELETE FROM scan WHERE key = 'last_hash'")

    def apply(
        self,
        events: Sequence[OracleEvent],
        times: dict[int, int],
        next_block: int,
        last_hash: str,
        ours: Iterable[str] = (),
    ) -> None:
        """Record a scanned range's events (in chain order), where the next scan starts and the hash of the block
        before it (a reorg is seen as that hash changing), in one commit."""
        mine = {a.lower() for a in ours}
        with self._database.transaction() as db:
            for e in events:
                aid = "0x" + e.assertion_id.hex()
                if isinstance(e, AssertionMade):
                    title, kind, cid = describe(e.claim)
                    db.execute(
                        "INSERT OR IGNORE INTO assertions(assertion_id, position, block_number, log_index, tx_hash, "
                        "made_at, asserter, callback_recipient, escalation_manager, domain_id, claim, title, kind, "
                        "record_cid, currency, bond, expiration, status, ours) "
                        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'asserted', ?)",
                        (
                            aid, position_of(e.block_number, e.log_index), e.block_number, e.log_index,
                            "0x" + e.tx_hash.hex(), times.get(e.block_number), e.asserter, e.callback_recipient,
                            e.escalation_manager, "0x" + e.domain_id.hex(), e.claim, title, kind, cid, e.currency,
                            str(e.bond), e.expiration_time, int(aid in mine),
                        ),
                    )  # fmt: skip
                elif isinstance(e, AssertionDisputed):
                    db.execute(
                        "UPDATE assertions SET status = 'disputed', disputed = 1, disputer = ?, dispute_tx = ?, "
                        "dispute_block = ? WHERE assertion_id = ?",
                        (e.disputer, "0x" + e.tx_hash.hex(), e.block_number, aid),
                    )
                elif isinstance(e, AssertionSettled):
                    db.execute(
                        "UPDATE assertions SET status = 'settled', resolution = ?, settle_tx = ?, settle_block = ? "
                        "WHERE assertion_id = ?",
                        (int(e.settlement_resolution), "0x" + e.tx_hash.hex(), e.block_number, aid),
                    )
            db.executemany(
                "INSERT OR REPLACE INTO scan VALUES (?, ?)", [("next_block", str(next_block)), ("last_hash", last_hash)]
            )

    def mark_ours(self, assertion_ids: Iterable[str]) -> None:
        """Our ledger's assertions (made by this home's `attest ask` and batches) are marked as ours."""
        ids = [(a.lower(),) for a in assertion_ids]
        with self._database.transaction() as db:
            db.executemany("UPDATE assertions SET ours = 1 WHERE assertion_id = ? AND ours = 0", ids)

    # -- reading (the pages) -----------------------------------------------------------------------------------
    def page(self, filters: Filters, *, before: int | None = None, limit: int = PAGE_SIZE) -> list[Row]:
        """Newest first; `before` is the position the previous page ended at (keyset pagination: page 200 costs
        what page 1 does)."""
        where, args = _where(filters)
        if before is not None:
            where.append("position < ?")
            args.append(before)
        sql = f"SELECT * FROM assertions WHERE {' AND '.join(where)} ORDER BY position DESC LIMIT ?"
        return [_row(r) for r in self.conn.execute(sql, [*args, limit])]

    def newer(self, filters: Filters, after: int, limit: int = PAGE_SIZE) -> list[Row]:
        """What arrived after `after` (the live update), newest first."""
        where, args = _where(filters)
        where.append("position > ?")
        sql = f"SELECT * FROM assertions WHERE {' AND '.join(where)} ORDER BY position DESC LIMIT ?"
        return [_row(r) for r in self.conn.execute(sql, [*args, after, limit])]

    def count(self, filters: Filters) -> int:
        where, args = _where(filters)
        sql = f"SELECT count(*) FROM assertions WHERE {' AND '.join(where)}"
        return int(self.conn.execute(sql, args).fetchone()[0])

    def get(self, assertion_id: str) -> Row | None:
        found = self.conn.execute("SELECT * FROM assertions WHERE assertion_id = ?", (assertion_id.lower(),)).fetchone()
        return None if found is None else _row(found)

    def of_record(self, cid: str) -> list[Row]:
        rows = self.conn.execute("SELECT * FROM assertions WHERE record_cid = ? ORDER BY position DESC", (cid,))
        return [_row(r) for r in rows]


def _where(f: Filters) -> tuple[list[str], list[Any]]:
    where: list[str] = ["1 = 1"]
    args: list[Any] = []
    if f.ours:
        where.append("ours = 1")
    if f.status:
        where.append("status = ?")
        args.append(f.status)
    if f.disputed:
        where.append("disputed = 1")
    if f.batch:
        where.append("kind = 'batch'")
    if f.asserter:
        where.append("asserter = ?")
        args.append(f.asserter)
    return where, args


def _row(r: sqlite3.Row) -> Row:
    values = dict(r)
    values["bond"] = int(values["bond"])
    values["claim"] = bytes(values["claim"])
    values["disputed"] = bool(values["disputed"])
    values["ours"] = bool(values["ours"])
    values["resolution"] = None if values["resolution"] is None else bool(values["resolution"])
    return Row(**values)
