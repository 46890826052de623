"""What the disputer decided about each assertion, and the dry-run decisions a real one replaced."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from attest.errors import DisputerStateError
from attest.storage import Row, utc_now
from disputer.store.assertions import ASSERTION_COLUMNS, StoredAssertion, stored_assertion
from disputer.store.base import StoreBase, hex_or_none

Action = Literal["none", "dispute", "vote", "undecided", "skip"]
ACTIONS: tuple[Action, ...] = ("none", "dispute", "vote", "undecided", "skip")


@dataclass(frozen=True)
class Decision:
    id: int
    assertion_id: bytes
    created_at: str
    score: float | None
    calibrated: float | None
    rationale: str
    judge: str
    checks: dict[str, Any]
    action: Action
    reason: str
    dry_run: bool


_DECISION_COLUMNS = "id, assertion_id, created_at, score, calibrated, rationale, judge, checks, action, reason, dry_run"


def _decision(row: Row) -> Decision:
    return Decision(
        id=row["id"],
        assertion_id=bytes(row["assertion_id"]),
        created_at=row["created_at"],
        score=row["score"],
        calibrated=row["calibrated"],
        rationale=row["rationale"],
        judge=row["judge"],
        checks=json.loads(row["checks"]),
        action=row["action"],
        reason=row["reason"],
        dry_run=bool(row["dry_run"]),
    )


class DecisionTables(StoreBase):
    # -- decisions -----------------------------------------------------------------------------------------
    def record_decision(
        self,
        assertion_id: bytes,
        *,
        action: Action,
        reason: str,
        score: float | None = None,
        calibrated: float | None = None,
        rationale: str = "",
        judge: str = "",
        checks: Mapping[str, Any] | None = None,
        dry_run: bool = False,
    ) -> Decision:
        """Record the decision for an assertion once; a later call returns the first decision unchanged, with one
        exception: a dry run only previews, so the first real decision replaces a dry-run one (kept in
        `superseded_decisions`). A dry run never replaces a real decision.

        The assertion moves from `new` to `evaluated` in the same commit.
        """
        if action not in ACTIONS:
            raise ValueError(f"unknown action {action!r}; one of {', '.join(ACTIONS)}")
        checks_json = json.dumps(dict(checks or {}), sort_keys=True, allow_nan=False)
        with self.transaction():
            if self._one("SELECT 1 FROM assertions WHERE assertion_id = ?", (assertion_id,)) is None:
                raise DisputerStateError(
                    f"no assertion {hex_or_none(assertion_id)} is stored; the watcher must see it before it is decided"
                )
            current = self._one("SELECT id, dry_run FROM decisions WHERE assertion_id = ?", (assertion_id,))
            if current is not None and current["dry_run"] and not dry_run:
                self._db.execute(
                    f"INSERT INTO superseded_decisions SELECT {_DECISION_COLUMNS}, ? FROM decisions WHERE id = ?",
                    (utc_now(), current["id"]),
                )
                self._db.execute("DELETE FROM decisions WHERE id = ?", (current["id"],))
            self._db.execute(
                "INSERT INTO decisions(assertion_id, created_at, score, calibrated, rationale, judge, checks, action, "
                "reason, dry_run) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(assertion_id) DO NOTHING",
                (
                    assertion_id,
                    utc_now(),
                    score,
                    calibrated,
                    rationale,
                    judge,
                    checks_json,
                    action,
                    reason,
                    int(dry_run),
                ),
            )
            self._db.execute(
                "UPDATE assertions SET status = 'evaluated' WHERE assertion_id = ? AND status = 'new'", (assertion_id,)
            )
        decision = self.decision(assertion_id)
        assert decision is not None  # inserted or already there, in the transaction above
        return decision

    def decision(self, assertion_id: bytes) -> Decision | None:
        row = self._one(f"SELECT {_DECISION_COLUMNS} FROM decisions WHERE assertion_id = ?", (assertion_id,))
        return None if row is None else _decision(row)

    def superseded_decisions(self, assertion_id: bytes) -> list[Decision]:
        """Dry-run decisions a real one replaced, oldest first."""
        rows = self._db.execute(
            f"SELECT {_DECISION_COLUMNS} FROM superseded_decisions WHERE assertion_id = ? ORDER BY id", (assertion_id,)
        )
        return [_decision(r) for r in rows]

    def decision_times(self, chain_id: int | None = None) -> list[tuple[str, str, int, bool]]:
        """(created_at, action, chain id, dry run) of every decision (on `chain_id`), oldest first."""
        sql = (
            "SELECT d.created_at, d.action, a.chain_id, d.dry_run FROM decisions d JOIN assertions a "
            "USING(assertion_id)"
        )
        rows = self._db.execute(sql + (" WHERE a.chain_id = ?" if chain_id is not None else "") + " ORDER BY d.id",
                                () if chain_id is None else (chain_id,))  # fmt: skip
        return [(str(r[0]), str(r[1]), int(r[2]), bool(r[3])) for r in rows]

    def evidence_due(self, chain_id: int) -> list[Decision]:
        """Our batch disputes that landed and whose evidence is not announced yet (no mined 'evidence' row)."""
        columns = ", ".join(f"d.{c.strip()}" for c in _DECISION_COLUMNS.split(","))
        rows = self._db.execute(
            f"SELECT {columns} FROM decisions d JOIN assertions a USING(assertion_id) "
            "JOIN txs t ON t.assertion_id = d.assertion_id AND t.kind = 'dispute' AND t.status = 'mined' "
            "WHERE a.chain_id = ? AND d.action = 'dispute' AND d.dry_run = 0 AND NOT EXISTS (SELECT 1 FROM txs e "
            "WHERE e.assertion_id = d.assertion_id AND e.kind = 'evidence' AND e.status = 'mined') ORDER BY d.id",
            (chain_id,),
        )
        return [d for d in map(_decision, rows) if "batch" in d.checks]

    def undecided(self, chain_id: int, *, redecide_dry_runs: bool) -> list[StoredAssertion]:
        """Our assertions that need a decision, in chain order: new ones, disputed ones not decided yet (someone
        disputed before we judged them), and with `redecide_dry_runs` the evaluated or disputed ones whose only
        decision came from a dry run."""
        columns = ", ".join(f"a.{c.strip()}" for c in ASSERTION_COLUMNS.split(","))
        rows = self._db.execute(
            f"SELECT {columns} FROM assertions a LEFT JOIN decisions d USING(assertion_id) "
            "WHERE a.chain_id = ? AND a.is_ours = 1 AND (a.status = 'new' OR (a.status = 'disputed' AND d.id IS NULL) "
            "OR (? = 1 AND a.status IN ('evaluated', 'disputed') AND d.dry_run = 1)) "
            "ORDER BY a.block_number, a.log_index",
            (chain_id, int(redecide_dry_runs)),
        )
        return [stored_assertion(r) for r in rows]
