"""Judgements made by queue workers: one evaluation per (assertion, sample), kept until the leader decides.

A sample is the n-th evaluation of one assertion: the leader asks for sample 0, and for the next one only when
the policy answered "retry" on the last (a record that could not be fetched, a judge that could not decide).
The key makes a judge job idempotent: a worker whose job is run again (retried, or redone after its worker was
killed) finds the judgement already there and does nothing; two workers racing on one job keep the first.
"""

from __future__ import annotations

from collections.abc import Iterable

from attest.storage import utc_now
from disputer.store.base import StoreBase


class JudgementTable(StoreBase):
    def save_judgement(self, assertion_id: bytes, sample: int, evaluation: str) -> bool:
        """Keep `evaluation` (JSON) as this sample's judgement; False when one was kept already (it stays)."""
        cur = self._db.execute(
            "INSERT INTO judgements(assertion_id, sample, evaluation, created_at) VALUES (?, ?, ?, ?) "
            "ON CONFLICT(assertion_id, sample) DO NOTHING",
            (assertion_id, sample, evaluation, utc_now()),
        )
        return cur.rowcount > 0

    def judgements_kept(self) -> int:
        """How many judgements were ever kept: a leader that sees it grow has one to decide on."""
        row = self._one("SELECT count(*) FROM judgements")
        return 0 if row is None else int(row[0])

    def has_judgement(self, assertion_id: bytes, sample: int) -> bool:
        found = self._one("SELECT 1 FROM judgements WHERE assertion_id = ? AND sample = ?", (assertion_id, sample))
        return found is not None

    def latest_judgements(self, assertion_ids: Iterable[bytes]) -> dict[bytes, tuple[int, str]]:
        """The newest sample kept for each of `assertion_ids` that has one: id -> (sample, evaluation JSON)."""
        wanted = list(assertion_ids)
        found: dict[bytes, tuple[int, str]] = {}
        for start in range(0, len(wanted), 500):  # SQLite binds at most 999 parameters in one statement
            chunk = wanted[start : start + 500]
            marks = ", ".join("?" * len(chunk))
            for row in self._db.execute(
                f"SELECT assertion_id, sample, evaluation FROM judgements j WHERE assertion_id IN ({marks}) "
                "AND sample = (SELECT max(sample) FROM judgements k WHERE k.assertion_id = j.assertion_id)",
                chunk,
            ):
                found[bytes(row["assertion_id"])] = (int(row["sample"]), str(row["evaluation"]))
        return found
