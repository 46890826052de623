"""The disputer's outbox rows: one per (assertion, kind), signed again in place, its attempts counted.

A row is written in `intent` before anything is signed and holds the signed bytes and hash before they are
sent, so a restart can always tell a transaction that was sent from one that never was, and re-broadcast the
same bytes (same hash) instead of acting twice. The state rules are the outbox engine's (attest/chain/outbox.py);
these methods refuse a move the rules do not allow.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from attest.chain.outbox import (
    IN_FLIGHT,
    NONCE_ELSEWHERE,
    SIGNABLE,
    TxRow,
    TxState,
    decode_earlier,
    earlier_after,
    encode_earlier,
)
from attest.errors import DisputerStateError
from attest.storage import Row, utc_now
from disputer.store.base import StoreBase, hex_or_none, opt_bytes

if TYPE_CHECKING:
    from web3.types import TxReceipt

    from attest.chain.tx import SignedTx

TxKind = Literal["dispute", "vote_push", "commit", "reveal", "settle", "approve", "evidence"]
TX_KINDS: tuple[TxKind, ...] = ("dispute", "vote_push", "commit", "reveal", "settle", "approve", "evidence")

_TX_COLUMNS = (
    "id, assertion_id, kind, status, sender, nonce, tx_hash, raw, attempts, created_at, updated_at, error, earlier"
)


def _tx(row: Row) -> TxRow[bytes]:
    return TxRow(
        id=row["id"],
        subject=bytes(row["assertion_id"]),
        kind=row["kind"],
        status=row["status"],
        nonce=row["nonce"],
        tx_hash=opt_bytes(row["tx_hash"]),
        raw=opt_bytes(row["raw"]),
        sender=row["sender"],
        attempts=row["attempts"],
        error=row["error"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        earlier=decode_earlier(row["earlier"]),
    )


class TxTable(StoreBase):
    def tx_intent(self, subject: bytes, kind: str) -> TxRow[bytes]:
        """The outbox row for (assertion, kind), created in `intent` if there is none yet.

        Whatever its status, the existing row is returned: the caller decides from it whether to sign, reconcile
        or leave it alone, so one action is never sent twice.
        """
        if kind not in TX_KINDS:
            raise ValueError(f"unknown transaction kind {kind!r}; one of {', '.join(TX_KINDS)}")
        now = utc_now()
        self._db.execute(
            "INSERT INTO txs(assertion_id, kind, status, created_at, updated_at) VALUES (?, ?, 'intent', ?, ?) "
            "ON CONFLICT(assertion_id, kind) DO NOTHING",
            (subject, kind, now, now),
        )
        row = self._one(f"SELECT {_TX_COLUMNS} FROM txs WHERE assertion_id = ? AND kind = ?", (subject, kind))
        assert row is not None
        return _tx(row)

    def tx(self, row_id: int) -> TxRow[bytes]:
        row = self._one(f"SELECT {_TX_COLUMNS} FROM txs WHERE id = ?", (row_id,))
        if row is None:
            raise DisputerStateError(f"no outbox row {row_id} in {self.path}")
        return _tx(row)

    def _tx_move(
        self, row_id: int, allowed: tuple[TxState, ...], status: TxState, sets: str = "", args: tuple[Any, ...] = ()
    ) -> TxRow[bytes]:
        marks = ", ".join("?" * len(allowed))
        cur = self._db.execute(
            f"UPDATE txs SET status = ?, updated_at = ?{sets} WHERE id = ? AND status IN ({marks})",
            (status, utc_now(), *args, row_id, *allowed),
        )
        if cur.rowcount == 0:
            current = self.tx(row_id)
            raise DisputerStateError(
                f"outbox row {row_id} ({current.kind} for {hex_or_none(current.subject)}) is {current.status}, "
                f"so it cannot become {status}; reconcile it instead of acting again"
            )
        return self.tx(row_id)

    def tx_signed(self, row_id: int, nonce: int, tx_hash: bytes, raw: bytes, sender: str | None = None) -> TxRow[bytes]:
        """Keep the signed bytes and their hash before they are sent. Allowed from intent, failed or dropped."""
        return self._tx_move(
            row_id,
            SIGNABLE,
            "signed",
            ", nonce = ?, tx_hash = ?, raw = ?, sender = ?, attempts = attempts + 1, error = NULL, earlier = NULL",
            (nonce, bytes(tx_hash), bytes(raw), sender),
        )

    def tx_sent(self, row_id: int) -> TxRow[bytes]:
        """The node accepted the bytes (a re-broadcast of a `sent` row keeps it `sent`)."""
        return self._tx_move(row_id, IN_FLIGHT, "sent")

    def tx_mined(self, row_id: int, receipt_status: int = 1) -> TxRow[bytes]:
        """A receipt exists: status 1 is `mined`, anything else `failed` (reverted on chain)."""
        if receipt_status == 1:
            return self._tx_move(row_id, IN_FLIGHT, "mined")
        return self._tx_move(row_id, IN_FLIGHT, "failed", ", error = ?", ("reverted on chain",))

    def tx_failed(self, row_id: int, error: str) -> TxRow[bytes]:
        """Nothing from this row can land (rejected before sending, or reverted); it may be signed again."""
        return self._tx_move(row_id, ("intent", *IN_FLIGHT), "failed", ", error = ?", (error,))

    def tx_dropped(self, row_id: int, error: str = NONCE_ELSEWHERE) -> TxRow[bytes]:
        """These bytes can never be mined (their nonce was used by another transaction, or the node refused
        them); it may be signed again."""
        return self._tx_move(row_id, IN_FLIGHT, "dropped", ", error = ?", (error,))

    def tx_reopen(self, row_id: int, error: str) -> TxRow[bytes]:
        """A mined row whose effect is gone (a reorg removed it, another dispute spent its allowance, its vote
        was for an earlier round): `dropped` with the reason, so the intent can be signed again."""
        return self._tx_move(row_id, ("mined",), "dropped", ", error = ?", (error,))

    # -- the outbox engine's log (attest.chain.outbox.TxLog) ------------------------------------------------
    def tx_record_signed(self, row: TxRow[bytes], signed: SignedTx, sender: str) -> TxRow[bytes]:
        with self.transaction(durable=True):  # the bytes must outlive a power cut once they may leave
            return self.tx_signed(row.id, signed.nonce, bytes.fromhex(signed.tx_hash[2:]), signed.raw, sender=sender)

    def tx_record_replaced(self, row: TxRow[bytes], signed: SignedTx) -> TxRow[bytes]:
        """Same nonce, another signing (a replacement, or the earlier one found mined); the status stays."""
        with self.transaction(durable=True):
            return self._tx_move(
                row.id,
                (*IN_FLIGHT, "mined"),
                row.status,
                ", tx_hash = ?, raw = ?, earlier = ?",
                (bytes.fromhex(signed.tx_hash[2:]), signed.raw, encode_earlier(earlier_after(row, signed))),
            )

    def tx_record(
        self, row: TxRow[bytes], status: TxState, *, error: str | None = None, receipt: TxReceipt | None = None
    ) -> TxRow[bytes]:
        if status == "sent":
            return self.tx_sent(row.id)
        if receipt is not None and status in ("mined", "failed"):
            return self.tx_mined(row.id, int(receipt["status"]))
        if status == "failed":
            return self.tx_failed(row.id, error or "failed")
        if status == "dropped":
            reopen = row.status == "mined"
            return (self.tx_reopen if reopen else self.tx_dropped)(row.id, error or NONCE_ELSEWHERE)
        raise ValueError(f"an outbox row does not become {status} this way")

    # -- reading -------------------------------------------------------------------------------------------
    def txs_for(self, assertion_id: bytes) -> list[TxRow[bytes]]:
        """Every outbox row of one assertion, in the order they were created."""
        rows = self._db.execute(f"SELECT {_TX_COLUMNS} FROM txs WHERE assertion_id = ? ORDER BY id", (assertion_id,))
        return [_tx(r) for r in rows]

    def open_txs(self) -> list[TxRow[bytes]]:
        """Rows a restart must reconcile: intent (never sent), signed and sent (check by hash, re-broadcast)."""
        rows = self._db.execute(
            f"SELECT {_TX_COLUMNS} FROM txs WHERE status IN ('intent', 'signed', 'sent') ORDER BY id"
        )
        return [_tx(r) for r in rows]
