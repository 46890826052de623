"""Votes: a vote's price and salt are kept before its commit is sent, then its commit and reveal."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from attest.errors import DisputerStateError
from attest.storage import Row, utc_now
from disputer.store.base import StoreBase, hex_or_none, opt_bytes

VoteProgress = Literal["salted", "committed", "revealed"]
VOTE_PROGRESS: tuple[VoteProgress, ...] = ("salted", "committed", "revealed")


@dataclass(frozen=True)
class Vote:
    assertion_id: bytes
    round_id: int
    request_id: bytes
    price: int
    salt: int
    phase: VoteProgress
    committed_tx: bytes | None
    revealed_tx: bytes | None
    created_at: str
    updated_at: str


_VOTE_COLUMNS = (
    "assertion_id, round_id, request_id, price, salt, phase, committed_tx, revealed_tx, created_at, updated_at"
)


def _vote(row: Row) -> Vote:
    return Vote(
        assertion_id=bytes(row["assertion_id"]),
        round_id=row["round_id"],
        request_id=bytes(row["request_id"]),
        price=int(row["price"]),
        salt=int(row["salt"]),
        phase=row["phase"],
        committed_tx=opt_bytes(row["committed_tx"]),
        revealed_tx=opt_bytes(row["revealed_tx"]),
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


class VoteTable(StoreBase):
    def save_salt(self, assertion_id: bytes, *, round_id: int, request_id: bytes, price: int, salt: int) -> Vote:
        """Keep a vote's price and salt before its commit is sent; for a round already salted, the stored vote is
        returned unchanged (a commit with the first salt may be on its way)."""
        now = utc_now()
        self._db.execute(
            "INSERT INTO votes VALUES (?, ?, ?, ?, ?, 'salted', NULL, NULL, ?, ?) "
            "ON CONFLICT(assertion_id, round_id) DO NOTHING",
            (assertion_id, round_id, bytes(request_id), str(price), str(salt), now, now),
        )
        row = self._one(
            f"SELECT {_VOTE_COLUMNS} FROM votes WHERE assertion_id = ? AND round_id = ?", (assertion_id, round_id)
        )
        assert row is not None
        return _vote(row)

    def vote_committed(self, assertion_id: bytes, round_id: int, tx_hash: bytes) -> Vote:
        return self._vote_move(assertion_id, round_id, "committed", "committed_tx", tx_hash, ("salted", "committed"))

    def vote_revealed(self, assertion_id: bytes, round_id: int, tx_hash: bytes) -> Vote:
        return self._vote_move(assertion_id, round_id, "revealed", "revealed_tx", tx_hash, ("committed", "revealed"))

    def _vote_move(
        self,
        assertion_id: bytes,
        round_id: int,
        phase: VoteProgress,
        column: str,
        tx_hash: bytes,
        allowed: tuple[VoteProgress, ...],
    ) -> Vote:
        cur = self._db.execute(
            f"UPDATE votes SET phase = ?, {column} = ?, updated_at = ? WHERE assertion_id = ? AND round_id = ? "
            f"AND phase IN ({', '.join('?' * len(allowed))})",
            (phase, bytes(tx_hash), utc_now(), assertion_id, round_id, *allowed),
        )
        if cur.rowcount == 0:
            raise DisputerStateError(
                f"no vote for {hex_or_none(assertion_id)} in round {round_id} can become {phase}; "
                "save its salt and commit first"
            )
        vote = self.vote(assertion_id, round_id)
        assert vote is not None
        return vote

    def vote(self, assertion_id: bytes, round_id: int | None = None) -> Vote | None:
        """The vote for an assertion in `round_id`, or in its latest round."""
        if round_id is None:
            row = self._one(
                f"SELECT {_VOTE_COLUMNS} FROM votes WHERE assertion_id = ? ORDER BY round_id DESC LIMIT 1",
                (assertion_id,),
            )
        else:
            row = self._one(
                f"SELECT {_VOTE_COLUMNS} FROM votes WHERE assertion_id = ? AND round_id = ?", (assertion_id, round_id)
            )
        return None if row is None else _vote(row)

    def votes_for(self, assertion_id: bytes) -> list[Vote]:
        """Every vote kept for one assertion, oldest round first."""
        rows = self._db.execute(
            f"SELECT {_VOTE_COLUMNS} FROM votes WHERE assertion_id = ? ORDER BY round_id", (assertion_id,)
        )
        return [_vote(r) for r in rows]
