"""Pairs of answers and the preferences on them, in the ledger (its `pairs` and `preferences` tables).

A pair links two attestations answering one query from one context. A preference row keeps the signed,
pinned preference record; a ranker has one current preference per pair, and a changed mind is a new row that
supersedes it (the unique index on pair, ranker and superseded CID refuses a second one either way).
"""

from __future__ import annotations

from dataclasses import dataclass

from attest.errors import PreferenceError
from attest.ledger import Attestation, Ledger
from attest.storage import INTEGRITY_ERRORS, Row, utc_now


@dataclass(frozen=True)
class Pair:
    id: int
    first: Attestation
    second: Attestation


@dataclass(frozen=True)
class Preference:
    id: int
    pair_id: int
    ranker: str
    choice: str
    record: bytes
    cid: str
    supersedes: str | None
    created_at: str


def create_pair(ledger: Ledger, first_id: int, second_id: int) -> int:
    with ledger.transaction() as db:
        cursor = db.execute(
            "INSERT INTO pairs(first_id, second_id, created_at) VALUES (?, ?, ?) RETURNING id",
            (first_id, second_id, utc_now()),
        )
        return int(cursor.fetchone()[0])


def get_pair(ledger: Ledger, ref: str) -> Pair:
    """A pair by number (`3` or `#3`); a PreferenceError names what to do when there is none."""
    text = ref.strip().lstrip("#")
    row = None
    if text.isdigit():
        with ledger.transaction() as db:
            row = db.execute("SELECT first_id, second_id FROM pairs WHERE id = ?", (int(text),)).fetchone()
    if row is None:
        raise PreferenceError(f"{ref} is not a pair of answers; `attest ask QUERY --compare` makes one")
    return Pair(int(text), ledger.get(int(row[0])), ledger.get(int(row[1])))


def current_preference(ledger: Ledger, pair_id: int, ranker: str) -> Preference | None:
    """The ranker's latest preference on the pair: the one no other row supersedes."""
    with ledger.transaction() as db:
        row = db.execute(
            "SELECT * FROM preferences p WHERE pair_id = ? AND ranker = ? AND NOT EXISTS "
            "(SELECT 1 FROM preferences q WHERE q.supersedes = p.cid) ORDER BY id DESC LIMIT 1",
            (pair_id, ranker),
        ).fetchone()
    return None if row is None else _preference(row)


def current_preferences(ledger: Ledger) -> list[Preference]:
    """Every preference not superseded, oldest first: the dataset's rows."""
    with ledger.transaction() as db:
        rows = db.execute(
            "SELECT * FROM preferences p WHERE NOT EXISTS (SELECT 1 FROM preferences q WHERE q.supersedes = p.cid) "
            "ORDER BY id"
        ).fetchall()
    return [_preference(r) for r in rows]


def add_preference(
    ledger: Ledger, *, pair_id: int, ranker: str, choice: str, record: bytes, cid: str, supersedes: str | None
) -> int:
    try:
        with ledger.transaction() as db:
            cursor = db.execute(
                "INSERT INTO preferences(pair_id, ranker, choice, record, cid, supersedes, created_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id",
                (pair_id, ranker, choice, record, cid, supersedes, utc_now()),
            )
            return int(cursor.fetchone()[0])
    except INTEGRITY_ERRORS:
        # Another `attest rank` of the same ranker got there first.
        raise PreferenceError(
            f"{ranker} ranked pair #{pair_id} meanwhile; nothing was written (`--change` supersedes it)"
        ) from None


def _preference(row: Row) -> Preference:
    return Preference(
        row["id"],
        row["pair_id"],
        row["ranker"],
        row["choice"],
        row["record"],
        row["cid"],
        row["supersedes"],
        row["created_at"],
    )
