"""The disputer's state: what it has seen on chain, what it decided, and every transaction it means to send.

One SQLite file (default `ATTEST_HOME/disputer.sqlite`), or the `disputer` schema of the configured PostgreSQL
server, opened through attest/storage, in parts by idea:
checkpoints and assertions (assertions.py), decisions (decisions.py), queue workers' judgements
(judgements.py), the outbox rows (txs.py) and votes (votes.py); `DisputerStore` is all of them on one
connection. A vote's salt is stored before its commit is sent.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from attest.chain.outbox import SIGNABLE, TX_STATES, TxRow, TxState
from attest.config import load_config, storage_location
from attest.errors import DisputerStateError
from attest.storage import Postgres, open_database
from disputer.store.assertions import (
    ASSERTION_STATUSES,
    CHECKPOINT_HISTORY,
    MAX_SQLITE_INT,
    AssertionStatus,
    AssertionTables,
    Checkpoint,
    StoredAssertion,
    made_of,
)
from disputer.store.base import hex_or_none
from disputer.store.decisions import ACTIONS, Action, Decision, DecisionTables
from disputer.store.judgements import JudgementTable
from disputer.store.schema import MIGRATIONS, SCHEMA_VERSION
from disputer.store.txs import TX_KINDS, TxKind, TxTable
from disputer.store.votes import VOTE_PROGRESS, Vote, VoteProgress, VoteTable

__all__ = [
    "ACTIONS",
    "ASSERTION_STATUSES",
    "CHECKPOINT_HISTORY",
    "MAX_SQLITE_INT",
    "SCHEMA_VERSION",
    "SIGNABLE",
    "TX_KINDS",
    "Action",
    "AssertionStatus",
    "Checkpoint",
    "Decision",
    "DisputerStore",
    "StoredAssertion",
    "TxKind",
    "TxRow",
    "TxState",
    "Vote",
    "VoteProgress",
    "kept_state",
    "made_of",
]

STATE_FILE = "disputer.sqlite"


def kept_state(home: Path) -> Path | Postgres | None:
    """Where a reader (export, the dashboard) finds the disputer's state: the configured `[storage] url` server,
    else `home`'s SQLite file when a disputer kept one there (None otherwise: reading creates no file)."""
    url = load_config().storage.url
    if url:
        return Postgres(url)
    path = home / STATE_FILE
    return path if path.exists() else None


class DisputerStore(AssertionTables, DecisionTables, JudgementTable, TxTable, VoteTable):
    """The disputer's state (default `ATTEST_HOME/disputer.sqlite`, or the `[storage] url` server). A context
    manager, or call `close()`.

    Every method commits on its own; `transaction()` groups several into one commit (the watcher saves a
    chunk's events and its checkpoint together). It is the outbox engine's `TxLog` for the disputer.
    """

    def __init__(self, path: Path | Postgres | None = None) -> None:
        self.path = path if path is not None else storage_location(STATE_FILE)
        self._database = open_database(
            self.path, MIGRATIONS, what="disputer state", error=DisputerStateError, schema="disputer"
        )
        self._db = self._database.conn

    def close(self) -> None:
        self._database.close()

    def __enter__(self) -> DisputerStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def schema_version(self) -> int:
        return self._database.schema_version()

    # -- status --------------------------------------------------------------------------------------------
    def status_summary(self, chain_id: int) -> dict[str, Any]:
        """Plain JSON for `disputer status`: checkpoints, assertions per status (ours and all), decisions per
        action, outbox rows per status, votes per phase."""
        checkpoints = [
            {
                "oov3": r["oov3"],
                "block_number": r["block_number"],
                "block_hash": hex_or_none(r["block_hash"]),
                "updated_at": r["updated_at"],
            }
            for r in self._db.execute("SELECT * FROM checkpoints WHERE chain_id = ? ORDER BY oov3", (chain_id,))
        ]

        def counts(sql: str, keys: Iterable[str]) -> dict[str, int]:
            found = {r[0]: r[1] for r in self._db.execute(sql, (chain_id,))}
            return {k: int(found.get(k, 0)) for k in keys}

        mine = "FROM assertions a WHERE a.chain_id = ?"
        return {
            "path": str(self.path),
            "schema_version": self.schema_version(),
            "chain_id": chain_id,
            "checkpoints": checkpoints,
            "ours": counts(f"SELECT status, count(*) {mine} AND is_ours = 1 GROUP BY status", ASSERTION_STATUSES),
            "all": counts(f"SELECT status, count(*) {mine} GROUP BY status", ASSERTION_STATUSES),
            "decisions": counts(
                "SELECT d.action, count(*) FROM decisions d JOIN assertions a USING(assertion_id) "
                "WHERE a.chain_id = ? GROUP BY d.action",
                ACTIONS,
            ),
            "dry_run_decisions": int(
                self._db.execute(
                    "SELECT count(*) FROM decisions d JOIN assertions a USING(assertion_id) "
                    "WHERE a.chain_id = ? AND d.dry_run = 1",
                    (chain_id,),
                ).fetchone()[0]
            ),
            "txs": counts(
                "SELECT t.status, count(*) FROM txs t JOIN assertions a USING(assertion_id) "
                "WHERE a.chain_id = ? GROUP BY t.status",
                TX_STATES,
            ),
            "votes": counts(
                "SELECT v.phase, count(*) FROM votes v JOIN assertions a USING(assertion_id) "
                "WHERE a.chain_id = ? GROUP BY v.phase",
                VOTE_PROGRESS,
            ),
        }
