"""What the watcher saw on chain: per-oracle checkpoints (with a history to trace reorgs) and assertions."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

from attest.chain.oov3 import AssertionMade
from attest.storage import Row, utc_now
from disputer.store.base import StoreBase, opt_bytes

AssertionStatus = Literal["new", "evaluated", "disputed", "settled", "gone"]
ASSERTION_STATUSES: tuple[AssertionStatus, ...] = ("new", "evaluated", "disputed", "settled", "gone")

# OOv3 computes expirationTime as uint64 time + liveness, so a hostile asserter can push it past SQLite's
# int64; anything that far out (~292 billion years) means "never expires" to every policy, so it is clamped.
MAX_SQLITE_INT = 2**63 - 1
CHECKPOINT_HISTORY = 256  # past checkpoints kept per oracle: how far back a deep reorg can be traced


@dataclass(frozen=True)
class Checkpoint:
    """Every block up to `block_number` (whose hash was `block_hash`) has been scanned for one oracle."""

    chain_id: int
    oov3: str
    block_number: int
    block_hash: bytes
    updated_at: str


@dataclass(frozen=True)
class StoredAssertion:
    assertion_id: bytes
    chain_id: int
    oov3: str
    block_number: int
    block_hash: bytes
    tx_hash: bytes
    log_index: int
    domain_id: bytes
    claim: bytes
    asserter: str
    callback_recipient: str
    escalation_manager: str
    caller: str
    expiration_time: int  # clamped to MAX_SQLITE_INT
    currency: str
    bond: int
    identifier: bytes
    is_ours: bool
    seen_at: str
    status: AssertionStatus
    disputed_by: str | None
    disputed_tx: bytes | None
    disputed_block: int | None
    settled_resolution: bool | None
    settled_tx: bytes | None
    settled_block: int | None


ASSERTION_COLUMNS = (
    "assertion_id, chain_id, oov3, block_number, block_hash, tx_hash, log_index, domain_id, claim, asserter, "
    "callback_recipient, escalation_manager, caller, expiration_time, currency, bond, identifier, is_ours, seen_at, "
    "status, disputed_by, disputed_tx, disputed_block, settled_resolution, settled_tx, settled_block"
)
# The status an assertion falls back to when a dispute or settlement it had is undone by a reorg.
_UNDISPUTED = (
    "CASE WHEN EXISTS (SELECT 1 FROM decisions d WHERE d.assertion_id = assertions.assertion_id) "
    "THEN 'evaluated' ELSE 'new' END"
)


def stored_assertion(row: Row) -> StoredAssertion:
    return StoredAssertion(
        assertion_id=bytes(row["assertion_id"]),
        chain_id=row["chain_id"],
        oov3=row["oov3"],
        block_number=row["block_number"],
        block_hash=bytes(row["block_hash"]),
        tx_hash=bytes(row["tx_hash"]),
        log_index=row["log_index"],
        domain_id=bytes(row["domain_id"]),
        claim=bytes(row["claim"]),
        asserter=row["asserter"],
        callback_recipient=row["callback_recipient"],
        escalation_manager=row["escalation_manager"],
        caller=row["caller"],
        expiration_time=row["expiration_time"],
        currency=row["currency"],
        bond=int(row["bond"]),
        identifier=bytes(row["identifier"]),
        is_ours=bool(row["is_ours"]),
        seen_at=row["seen_at"],
        status=row["status"],
        disputed_by=row["disputed_by"],
        disputed_tx=opt_bytes(row["disputed_tx"]),
        disputed_block=row["disputed_block"],
        settled_resolution=None if row["settled_resolution"] is None else bool(row["settled_resolution"]),
        settled_tx=opt_bytes(row["settled_tx"]),
        settled_block=row["settled_block"],
    )


class AssertionTables(StoreBase):
    # -- checkpoints ---------------------------------------------------------------------------------------
    def checkpoint(self, chain_id: int, oov3: str) -> Checkpoint | None:
        row = self._one("SELECT * FROM checkpoints WHERE chain_id = ? AND oov3 = ?", (chain_id, oov3.lower()))
        if row is None:
            return None
        return Checkpoint(row["chain_id"], oov3, row["block_number"], bytes(row["block_hash"]), row["updated_at"])

    def save_checkpoint(self, chain_id: int, oov3: str, block_number: int, block_hash: bytes) -> Checkpoint:
        """Set the checkpoint (it may move back when a reorg is healed) and remember it in the history.

        History entries above `block_number` are dropped: they name blocks of a fork that is no longer followed.
        """
        key = (chain_id, oov3.lower())
        now = utc_now()
        with self.transaction():
            self._db.execute(
                "INSERT INTO checkpoints VALUES (?, ?, ?, ?, ?) ON CONFLICT(chain_id, oov3) DO UPDATE SET "
                "block_number = excluded.block_number, block_hash = excluded.block_hash, "
                "updated_at = excluded.updated_at",
                (*key, block_number, bytes(block_hash), now),
            )
            self._db.execute(
                "DELETE FROM checkpoint_history WHERE chain_id = ? AND oov3 = ? AND block_number >= ?",
                (*key, block_number),
            )
            self._db.execute(
                "INSERT INTO checkpoint_history VALUES (?, ?, ?, ?)", (*key, block_number, bytes(block_hash))
            )
            self._db.execute(
                "DELETE FROM checkpoint_history WHERE chain_id = ? AND oov3 = ? AND block_number NOT IN "
                "(SELECT block_number FROM checkpoint_history WHERE chain_id = ? AND oov3 = ? "
                "ORDER BY block_number DESC LIMIT ?)",
                (*key, *key, CHECKPOINT_HISTORY),
            )
        return Checkpoint(chain_id, oov3, block_number, bytes(block_hash), now)

    def checkpoint_history(self, chain_id: int, oov3: str) -> list[tuple[int, bytes]]:
        """Past checkpoints as (block number, block hash), newest first: where to look for a reorg's fork point."""
        rows = self._db.execute(
            "SELECT block_number, block_hash FROM checkpoint_history WHERE chain_id = ? AND oov3 = ? "
            "ORDER BY block_number DESC",
            (chain_id, oov3.lower()),
        )
        return [(r["block_number"], bytes(r["block_hash"])) for r in rows]

    # -- chain histories -----------------------------------------------------------------------------------
    def follow_chain(self, chain_id: int, genesis_hash: bytes) -> int:
        """Follow `chain_id` on the history that starts with `genesis_hash`. When the store followed another
        one (the devnet was reset), what it saw there is gone: its open assertions become `gone`, their open
        transactions `failed` (their bytes must never reach the new chain, which would take them), and the
        checkpoints start over. Returns how many assertions that retired; 0 on the chain already followed."""
        genesis_hash = bytes(genesis_hash)
        with self.transaction():
            row = self._one("SELECT genesis_hash FROM chains WHERE chain_id = ?", (chain_id,))
            if row is not None and bytes(row["genesis_hash"]) == genesis_hash:
                return 0
            if row is None:  # first followed here: rows of earlier releases were seen on this very history
                self._db.execute(
                    "UPDATE assertions SET genesis_hash = ? WHERE chain_id = ? AND genesis_hash IS NULL",
                    (genesis_hash, chain_id),
                )
            old = "chain_id = ? AND (genesis_hash IS NULL OR genesis_hash != ?)"
            self._db.execute(
                "UPDATE txs SET status = 'failed', error = 'its chain is gone', updated_at = ? WHERE status IN "
                f"('intent', 'signed', 'sent') AND assertion_id IN (SELECT assertion_id FROM assertions WHERE {old})",
                (utc_now(), chain_id, genesis_hash),
            )
            retired = self._db.execute(
                f"UPDATE assertions SET status = 'gone' WHERE {old} AND status NOT IN ('gone', 'settled')",
                (chain_id, genesis_hash),
            ).rowcount
            if row is not None:
                self._db.execute("DELETE FROM checkpoints WHERE chain_id = ?", (chain_id,))
                self._db.execute("DELETE FROM checkpoint_history WHERE chain_id = ?", (chain_id,))
            self._db.execute(
                "INSERT INTO chains VALUES (?, ?, ?) ON CONFLICT(chain_id) DO UPDATE SET "
                "genesis_hash = excluded.genesis_hash, followed_since = excluded.followed_since",
                (chain_id, genesis_hash, utc_now()),
            )
        return int(retired)

    # -- assertions ----------------------------------------------------------------------------------------
    def upsert_made(self, chain_id: int, event: AssertionMade, block_hash: bytes, is_ours: bool, *, oov3: str) -> bool:
        """Store an AssertionMade event; True when it was not stored before (or had been marked gone).

        Seen again from another block (a reorg moved it), its position is updated. A `gone` assertion that
        reappears becomes `new` again, or `evaluated` when a decision for it exists.
        """
        position = (event.block_number, bytes(block_hash), event.tx_hash, event.log_index)
        with self.transaction():
            existing = self._one("SELECT status FROM assertions WHERE assertion_id = ?", (event.assertion_id,))
            if existing is None:
                self._db.execute(
                    "INSERT INTO assertions(assertion_id, chain_id, oov3, block_number, block_hash, tx_hash, "
                    "log_index, domain_id, claim, asserter, callback_recipient, escalation_manager, caller, "
                    "expiration_time, currency, bond, identifier, is_ours, seen_at, status, genesis_hash) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'new', "
                    "(SELECT genesis_hash FROM chains WHERE chain_id = ?))",
                    (
                        event.assertion_id,
                        chain_id,
                        oov3.lower(),
                        *position,
                        event.domain_id,
                        event.claim,
                        event.asserter,
                        event.callback_recipient,
                        event.escalation_manager,
                        event.caller,
                        min(event.expiration_time, MAX_SQLITE_INT),
                        event.currency,
                        str(event.bond),
                        event.identifier,
                        int(is_ours),
                        utc_now(),
                        chain_id,
                    ),
                )
                return True
            self._db.execute(
                f"UPDATE assertions SET block_number = ?, block_hash = ?, tx_hash = ?, log_index = ?, "
                f"status = CASE WHEN status = 'gone' THEN {_UNDISPUTED} ELSE status END WHERE assertion_id = ?",
                (*position, event.assertion_id),
            )
        return bool(existing["status"] == "gone")

    def get(self, assertion_id: bytes) -> StoredAssertion | None:
        row = self._one(f"SELECT {ASSERTION_COLUMNS} FROM assertions WHERE assertion_id = ?", (assertion_id,))
        return None if row is None else stored_assertion(row)

    def mark_disputed(
        self, assertion_id: bytes, disputer: str, tx_hash: bytes, block_number: int, block_hash: bytes
    ) -> bool:
        """Record a dispute; True only when the assertion was stored, not gone and not yet known as disputed.

        A dispute seen again (a rescan, or a reorg that moved it) only updates where its event is.
        """
        with self.transaction():
            row = self._one("SELECT status, disputed_tx FROM assertions WHERE assertion_id = ?", (assertion_id,))
            if row is None or row["status"] == "gone":
                return False
            self._db.execute(
                "UPDATE assertions SET status = CASE WHEN status = 'settled' THEN 'settled' ELSE 'disputed' END, "
                "disputed_by = ?, disputed_tx = ?, disputed_block = ?, disputed_block_hash = ? WHERE assertion_id = ?",
                (disputer, tx_hash, block_number, bytes(block_hash), assertion_id),
            )
        return row["disputed_tx"] is None

    def mark_settled(
        self, assertion_id: bytes, resolution: bool, tx_hash: bytes, block_number: int, block_hash: bytes
    ) -> bool:
        """Record a settlement and its resolution; True only when the assertion was stored, not gone and not yet
        known as settled."""
        with self.transaction():
            row = self._one("SELECT status, settled_tx FROM assertions WHERE assertion_id = ?", (assertion_id,))
            if row is None or row["status"] == "gone":
                return False
            self._db.execute(
                "UPDATE assertions SET status = 'settled', settled_resolution = ?, settled_tx = ?, settled_block = ?, "
                "settled_block_hash = ? WHERE assertion_id = ?",
                (int(resolution), tx_hash, block_number, bytes(block_hash), assertion_id),
            )
        return row["settled_tx"] is None

    def mark_gone(self, assertion_ids: Iterable[bytes]) -> int:
        """Mark assertions whose AssertionMade log a reorg removed; returns how many changed."""
        changed = 0
        with self.transaction():
            for assertion_id in assertion_ids:
                cur = self._db.execute(
                    "UPDATE assertions SET status = 'gone' WHERE assertion_id = ? AND status != 'gone'",
                    (assertion_id,),
                )
                changed += cur.rowcount
        return changed

    def undo_dispute(self, assertion_id: bytes) -> bool:
        """Forget a dispute whose AssertionDisputed log a reorg removed."""
        cur = self._db.execute(
            f"UPDATE assertions SET status = CASE WHEN status = 'disputed' THEN {_UNDISPUTED} ELSE status END, "
            "disputed_by = NULL, disputed_tx = NULL, disputed_block = NULL, disputed_block_hash = NULL "
            "WHERE assertion_id = ? AND disputed_tx IS NOT NULL",
            (assertion_id,),
        )
        return cur.rowcount > 0

    def undo_settle(self, assertion_id: bytes) -> bool:
        """Forget a settlement whose AssertionSettled log a reorg removed."""
        cur = self._db.execute(
            f"UPDATE assertions SET status = CASE WHEN status != 'settled' THEN status "
            f"WHEN disputed_tx IS NOT NULL THEN 'disputed' ELSE {_UNDISPUTED} END, "
            "settled_resolution = NULL, settled_tx = NULL, settled_block = NULL, settled_block_hash = NULL "
            "WHERE assertion_id = ? AND settled_tx IS NOT NULL",
            (assertion_id,),
        )
        return cur.rowcount > 0

    def made_between(
        self, chain_id: int, oov3: str, from_block: int, to_block: int | None = None
    ) -> dict[bytes, tuple[int, bytes]]:
        """Stored, not-gone assertions made in [from_block, to_block]: id -> (block number, block hash)."""
        rows = self._db.execute(
            "SELECT assertion_id, block_number, block_hash FROM assertions WHERE chain_id = ? AND oov3 = ? "
            "AND status != 'gone' AND block_number >= ? AND block_number <= ?",
            (chain_id, oov3.lower(), from_block, MAX_SQLITE_INT if to_block is None else to_block),
        )
        return {bytes(r["assertion_id"]): (r["block_number"], bytes(r["block_hash"])) for r in rows}

    def disputes_between(
        self, chain_id: int, oov3: str, from_block: int, to_block: int | None = None
    ) -> dict[bytes, tuple[int, bytes]]:
        """Recorded disputes whose event is in [from_block, to_block]: id -> (block number, block hash)."""
        return self._events_between("disputed", chain_id, oov3, from_block, to_block)

    def settlements_between(
        self, chain_id: int, oov3: str, from_block: int, to_block: int | None = None
    ) -> dict[bytes, tuple[int, bytes]]:
        """Recorded settlements whose event is in [from_block, to_block]: id -> (block number, block hash)."""
        return self._events_between("settled", chain_id, oov3, from_block, to_block)

    def _events_between(
        self, which: Literal["disputed", "settled"], chain_id: int, oov3: str, from_block: int, to_block: int | None
    ) -> dict[bytes, tuple[int, bytes]]:
        rows = self._db.execute(
            f"SELECT assertion_id, {which}_block AS b, {which}_block_hash AS h FROM assertions "
            f"WHERE chain_id = ? AND oov3 = ? AND {which}_block >= ? AND {which}_block <= ?",
            (chain_id, oov3.lower(), from_block, MAX_SQLITE_INT if to_block is None else to_block),
        )
        return {bytes(r["assertion_id"]): (r["b"], bytes(r["h"])) for r in rows}

    def assertions(
        self, chain_id: int, *, statuses: Iterable[AssertionStatus] | None = None, ours: bool | None = True
    ) -> list[StoredAssertion]:
        """Stored assertions of one chain in chain order, filtered by status and by whether they are ours."""
        sql = f"SELECT {ASSERTION_COLUMNS} FROM assertions WHERE chain_id = ?"
        args: list[Any] = [chain_id]
        if statuses is not None:
            wanted = list(statuses)
            sql += f" AND status IN ({', '.join('?' * len(wanted))})"
            args.extend(wanted)
        if ours is not None:
            sql += " AND is_ours = ?"
            args.append(int(ours))
        rows = self._db.execute(sql + " ORDER BY block_number, log_index", args)
        return [stored_assertion(r) for r in rows]

    def pending(self, chain_id: int) -> list[StoredAssertion]:
        """Our assertions seen but not evaluated yet, oldest first."""
        return self.assertions(chain_id, statuses=("new",), ours=True)


def made_of(a: StoredAssertion) -> AssertionMade:
    """The event a stored assertion was read from (what the evaluator judges)."""
    return AssertionMade(
        assertion_id=a.assertion_id,
        domain_id=a.domain_id,
        claim=a.claim,
        asserter=a.asserter,
        callback_recipient=a.callback_recipient,
        escalation_manager=a.escalation_manager,
        caller=a.caller,
        expiration_time=a.expiration_time,
        currency=a.currency,
        bond=a.bond,
        identifier=a.identifier,
        tx_hash=a.tx_hash,
        log_index=a.log_index,
        block_number=a.block_number,
    )
