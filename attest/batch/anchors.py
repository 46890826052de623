"""Preference anchors in the asserter's ledger: the tables (a named ledger migration), and their transaction log
for the one outbox.

An anchor is one `anchor(root)` transaction of the registry for the Merkle root of one or more signed
preferences of one ranker (attest/batch/merkle.py over their digests): its Anchored event is the timestamped
public proof they existed. Creating an anchor claims its preferences in one SQLite transaction (each in exactly one
anchor) and keeps every one's proof; the anchor then goes anchoring → anchored, its transaction a row of
`anchor_txs` (kind `anchor`), so a crash anywhere never sends a second anchor for the same preferences.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from attest.batch import merkle
from attest.chain.outbox import TxRow, TxState, decode_earlier, earlier_after, encode_earlier
from attest.storage import Connection, Migration, Row, Store, utc_now

if TYPE_CHECKING:
    from contextlib import AbstractContextManager

    from web3.types import TxReceipt

    from attest.chain.tx import SignedTx

ANCHORING, ANCHORED = "anchoring", "anchored"

MIGRATION = Migration(
    "preference anchors: a Merkle root of preference digests in one Anchored event, each preference's proof",
    """
    CREATE TABLE anchors(
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        status TEXT NOT NULL,
        network TEXT NOT NULL,
        chain_id INTEGER NOT NULL,
        registry TEXT NOT NULL,
        ranker TEXT NOT NULL,
        root TEXT NOT NULL,
        count INTEGER NOT NULL,
        tx_hash TEXT,
        block_number INTEGER,
        block_time INTEGER,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
    );
    ALTER TABLE preferences ADD COLUMN anchor_id INTEGER REFERENCES anchors(id);
    ALTER TABLE preferences ADD COLUMN anchor_root TEXT;
    ALTER TABLE preferences ADD COLUMN anchor_proof TEXT;
    ALTER TABLE preferences ADD COLUMN anchor_tx TEXT;
    ALTER TABLE preferences ADD COLUMN anchor_block INTEGER;
    ALTER TABLE preferences ADD COLUMN anchor_receipt TEXT;
    CREATE INDEX preferences_by_anchor ON preferences(anchor_id);
    CREATE TABLE anchor_txs(
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        anchor_id INTEGER NOT NULL REFERENCES anchors(id),
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
    CREATE INDEX anchor_txs_by_anchor ON anchor_txs(anchor_id, kind)
    """,
)


@dataclass(frozen=True)
class Anchor:
    id: int
    status: str
    network: str
    chain_id: int
    registry: str
    ranker: str
    root: str
    count: int
    tx_hash: str | None
    block_number: int | None
    block_time: int | None
    created_at: str
    updated_at: str


@dataclass(frozen=True)
class Leaf:
    """A preference of an anchor: the ledger row, its CID, digest and Merkle proof under the anchor's root."""

    preference_id: int
    cid: str
    digest: str
    proof: list[str]


class AnchorBook:
    """Anchors over the ledger's database (`Ledger.database`); also the outbox's TxLog for anchor transactions."""

    def __init__(self, database: Store) -> None:
        self._database = database
        self._db = database.conn

    def transaction(self, *, durable: bool = False) -> AbstractContextManager[Connection]:
        return self._database.transaction(durable=durable)

    def create(
        self,
        leaves: Sequence[tuple[int, str]],
        *,
        network: str,
        chain_id: int,
        registry: str,
        ranker: str,
    ) -> Anchor | None:
        """One anchor over the preferences `leaves` (ledger id, 0x digest) still unanchored, each given its
        proof, in one transaction; None when another process claimed them all first."""
        with self.transaction() as db:
            ids = [pid for pid, _ in leaves]
            free = {
                int(r[0])
                for r in db.execute(
                    f"SELECT id FROM preferences WHERE anchor_id IS NULL AND id IN ({', '.join('?' for _ in ids)})",
                    ids,
                )
            }
            mine = [(pid, digest) for pid, digest in leaves if pid in free]
            if not mine:
                return None
            tree = merkle.build([bytes.fromhex(digest[2:]) for _, digest in mine])
            root, now = "0x" + tree.root.hex(), utc_now()
            cursor = db.execute(
                "INSERT INTO anchors(status, network, chain_id, registry, ranker, root, count, created_at, updated_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
                (ANCHORING, network, chain_id, registry, ranker, root, len(mine), now, now),
            )
            anchor_id = int(cursor.fetchone()[0])
            for index, (pid, _digest) in enumerate(mine):
                proof = json.dumps(["0x" + node.hex() for node in tree.proof(index)])
                db.execute(
                    "UPDATE preferences SET anchor_id = ?, anchor_root = ?, anchor_proof = ? WHERE id = ?",
                    (anchor_id, root, proof, pid),
                )
        return self.get(anchor_id)

    def get(self, anchor_id: int) -> Anchor:
        return _anchor(self._db.execute("SELECT * FROM anchors WHERE id = ?", (anchor_id,)).fetchone())

    def open(self, ranker: str | None = None, network: str | None = None) -> list[Anchor]:
        """Anchors not finished (a crash, an RPC outage, no gas money), oldest first: not anchored yet, or anchored
        with a preference whose receipt is not pinned yet."""
        rows = self._db.execute(
            "SELECT * FROM anchors n WHERE (status = ? OR EXISTS (SELECT 1 FROM preferences p WHERE p.anchor_id = n.id "
            "AND p.anchor_receipt IS NULL)) AND coalesce(?, ranker) = ranker AND coalesce(?, network) = network "
            "ORDER BY id",
            (ANCHORING, ranker, network),
        )
        return [_anchor(r) for r in rows]

    def unanchored_networks(self) -> list[str]:
        """The networks of the preferences not in any anchor (a pair's network is its answers')."""
        rows = self._db.execute(f"SELECT DISTINCT a.network {_UNANCHORED} ORDER BY a.network")
        return [str(r[0]) for r in rows]

    def unanchored(self, ranker: str, network: str, ids: Sequence[int] | None = None) -> list[tuple[int, str]]:
        """(ledger id, 0x digest) of the ranker's preferences on `network` not in any anchor (of `ids`, or all)."""
        rows = self._db.execute(
            f"SELECT p.id, p.record, a.network {_UNANCHORED} AND p.ranker = ? AND a.network = ? ORDER BY p.id",
            (ranker, network),
        )
        wanted = None if ids is None else set(ids)
        return [(int(r[0]), _digest_of(r[1])) for r in rows if wanted is None or int(r[0]) in wanted]

    def claim_of(self, cid: str) -> dict[str, Any] | None:
        """What the ledger knows of preference `cid`'s anchor (its anchor's columns joined), None when the
        preference is not in this ledger."""
        row = self._db.execute(
            "SELECT p.anchor_id, p.anchor_root, p.anchor_proof, p.anchor_tx, n.network, n.chain_id, n.registry, "
            "n.count FROM preferences p LEFT JOIN anchors n ON n.id = p.anchor_id WHERE p.cid = ?",
            (cid,),
        ).fetchone()
        return None if row is None else dict(row)

    def leaves(self, anchor_id: int) -> list[Leaf]:
        rows = self._db.execute(
            "SELECT id, cid, record, anchor_proof FROM preferences WHERE anchor_id = ? ORDER BY id", (anchor_id,)
        )
        return [Leaf(int(r[0]), r[1], _digest_of(r[2]), json.loads(r[3])) for r in rows]

    def anchored(self, anchor_id: int, *, tx_hash: str, block: int, block_time: int) -> Anchor:
        """The transaction landed: the anchor and each of its preferences keep its hash and block."""
        with self.transaction() as db:
            db.execute(
                "UPDATE anchors SET status = ?, tx_hash = ?, block_number = ?, block_time = ?, updated_at = ? "
                "WHERE id = ?",
                (ANCHORED, tx_hash, block, block_time, utc_now(), anchor_id),
            )
            db.execute(
                "UPDATE preferences SET anchor_tx = ?, anchor_block = ? WHERE anchor_id = ?",
                (tx_hash, block, anchor_id),
            )
        return self.get(anchor_id)

    def set_receipt(self, preference_id: int, cid: str) -> None:
        with self.transaction() as db:
            db.execute("UPDATE preferences SET anchor_receipt = ? WHERE id = ?", (cid, preference_id))

    # -- transactions: the outbox's log ------------------------------------------------------------------
    def tx_intent(self, subject: int, kind: str) -> TxRow[int]:
        row = self._db.execute(
            "SELECT * FROM anchor_txs WHERE anchor_id = ? AND kind = ? ORDER BY id DESC LIMIT 1", (subject, kind)
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
                "INSERT INTO anchor_txs(anchor_id, kind, status, nonce, tx_hash, raw, created_at, updated_at) "
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
                "UPDATE anchor_txs SET status = ?, error = ?, updated_at = ? WHERE id = ?",
                (status, error, utc_now(), row.id),
            )
        return self._tx_by_id(row.id)

    def tx_record_replaced(self, row: TxRow[int], signed: SignedTx) -> TxRow[int]:
        with self.transaction(durable=True) as db:
            db.execute(
                "UPDATE anchor_txs SET tx_hash = ?, raw = ?, earlier = ?, updated_at = ? WHERE id = ?",
                (signed.tx_hash, signed.raw, encode_earlier(earlier_after(row, signed)), utc_now(), row.id),
            )
        return self._tx_by_id(row.id)

    def txs(self, anchor_id: int) -> list[TxRow[int]]:
        return [
            _tx(r) for r in self._db.execute("SELECT * FROM anchor_txs WHERE anchor_id = ? ORDER BY id", (anchor_id,))
        ]

    def _tx_by_id(self, row_id: int) -> TxRow[int]:
        return _tx(self._db.execute("SELECT * FROM anchor_txs WHERE id = ?", (row_id,)).fetchone())


_UNANCHORED = (
    "FROM preferences p JOIN pairs ON pairs.id = p.pair_id JOIN attestations a ON a.id = pairs.first_id "
    "WHERE p.anchor_id IS NULL"
)


def _digest_of(record: bytes) -> str:
    from attest.record.preference import decode_preference, preference_digest

    return "0x" + preference_digest(decode_preference(record)).hex()


def _anchor(row: Row) -> Anchor:
    return Anchor(**dict(row))


def _tx(row: Row) -> TxRow[int]:
    return TxRow(
        row["id"], row["anchor_id"], row["kind"], row["status"], row["nonce"], bytes.fromhex(row["tx_hash"][2:]),
        row["raw"], None, 1, row["error"], row["created_at"], row["updated_at"], decode_earlier(row["earlier"]),
    )  # fmt: skip
