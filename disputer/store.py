"""The disputer's state: what it has seen on chain, what it decided, and every transaction it means to send.

One SQLite file (default `ATTEST_HOME/disputer.sqlite`), WAL, versioned migrations. The `txs` table is an
outbox: a row is written in `intent` before anything is signed and holds the signed bytes and hash before they
are sent, so a restart can always tell a transaction that was sent from one that never was, and re-broadcast
the same bytes (same hash) instead of acting twice. A vote's salt is stored before its commit is sent.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, cast

from attest.chain.oov3 import AssertionMade
from attest.errors import AttestError, DisputerStateError
from attest.paths import attest_home

AssertionStatus = Literal["new", "evaluated", "disputed", "settled", "gone"]
Action = Literal["none", "dispute", "vote", "undecided", "skip"]
TxKind = Literal["dispute", "vote_push", "commit", "reveal", "settle", "approve"]
TxStatus = Literal["intent", "signed", "sent", "mined", "failed", "dropped"]
VotePhase = Literal["salted", "committed", "revealed"]

ASSERTION_STATUSES: tuple[AssertionStatus, ...] = ("new", "evaluated", "disputed", "settled", "gone")
ACTIONS: tuple[Action, ...] = ("none", "dispute", "vote", "undecided", "skip")
TX_KINDS: tuple[TxKind, ...] = ("dispute", "vote_push", "commit", "reveal", "settle", "approve")
TX_STATUSES: tuple[TxStatus, ...] = ("intent", "signed", "sent", "mined", "failed", "dropped")
OPEN_TX_STATUSES: tuple[TxStatus, ...] = ("intent", "signed", "sent")
# A transaction may be (re)signed only when nothing signed for it can still land on chain.
SIGNABLE: tuple[TxStatus, ...] = ("intent", "failed", "dropped")  # an intent is signed (anew) from these

# OOv3 computes expirationTime as uint64 time + liveness, so a hostile asserter can push it past SQLite's
# int64; anything that far out (~292 billion years) means "never expires" to every policy, so it is clamped.
MAX_SQLITE_INT = 2**63 - 1
CHECKPOINT_HISTORY = 256  # past checkpoints kept per oracle: how far back a deep reorg can be traced

_MIGRATIONS: tuple[tuple[int, str, str], ...] = (
    (
        1,
        "checkpoints, assertions, decisions, outbox, votes",
        """
        CREATE TABLE checkpoints(
            chain_id INTEGER NOT NULL,
            oov3 TEXT NOT NULL,
            block_number INTEGER NOT NULL,
            block_hash BLOB NOT NULL,
            updated_at TEXT NOT NULL,
            PRIMARY KEY(chain_id, oov3)
        );
        CREATE TABLE checkpoint_history(
            chain_id INTEGER NOT NULL,
            oov3 TEXT NOT NULL,
            block_number INTEGER NOT NULL,
            block_hash BLOB NOT NULL,
            PRIMARY KEY(chain_id, oov3, block_number)
        );
        CREATE TABLE assertions(
            assertion_id BLOB PRIMARY KEY,
            chain_id INTEGER NOT NULL,
            oov3 TEXT NOT NULL,
            block_number INTEGER NOT NULL,
            block_hash BLOB NOT NULL,
            tx_hash BLOB NOT NULL,
            log_index INTEGER NOT NULL,
            domain_id BLOB NOT NULL,
            claim BLOB NOT NULL,
            asserter TEXT NOT NULL,
            callback_recipient TEXT NOT NULL,
            escalation_manager TEXT NOT NULL,
            caller TEXT NOT NULL,
            expiration_time INTEGER NOT NULL,
            currency TEXT NOT NULL,
            bond TEXT NOT NULL,
            identifier BLOB NOT NULL,
            is_ours INTEGER NOT NULL,
            seen_at TEXT NOT NULL,
            status TEXT NOT NULL CHECK(status IN ('new', 'evaluated', 'disputed', 'settled', 'gone')),
            disputed_by TEXT,
            disputed_tx BLOB,
            disputed_block INTEGER,
            disputed_block_hash BLOB,
            settled_resolution INTEGER,
            settled_tx BLOB,
            settled_block INTEGER,
            settled_block_hash BLOB
        );
        CREATE INDEX assertions_by_status ON assertions(chain_id, status, is_ours);
        CREATE INDEX assertions_by_block ON assertions(chain_id, oov3, block_number);
        CREATE TABLE decisions(
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            assertion_id BLOB NOT NULL UNIQUE REFERENCES assertions(assertion_id),
            created_at TEXT NOT NULL,
            score REAL,
            calibrated REAL,
            rationale TEXT NOT NULL,
            judge TEXT NOT NULL,
            checks TEXT NOT NULL,
            action TEXT NOT NULL CHECK(action IN ('none', 'dispute', 'vote', 'undecided', 'skip')),
            reason TEXT NOT NULL,
            dry_run INTEGER NOT NULL
        );
        CREATE TABLE txs(
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            assertion_id BLOB NOT NULL,
            kind TEXT NOT NULL CHECK(kind IN ('dispute', 'vote_push', 'commit', 'reveal', 'settle', 'approve')),
            status TEXT NOT NULL CHECK(status IN ('intent', 'signed', 'sent', 'mined', 'failed', 'dropped')),
            sender TEXT,
            nonce INTEGER,
            tx_hash BLOB,
            raw BLOB,
            attempts INTEGER NOT NULL DEFAULT 0,
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL,
            error TEXT,
            UNIQUE(assertion_id, kind)
        );
        CREATE INDEX txs_by_status ON txs(status);
        CREATE TABLE votes(
            assertion_id BLOB NOT NULL,
            round_id INTEGER NOT NULL,
            request_id BLOB NOT NULL,
            price TEXT NOT NULL,
            salt TEXT NOT NULL,
            phase TEXT NOT NULL CHECK(phase IN ('salted', 'committed', 'revealed')),
            committed_tx BLOB,
            revealed_tx BLOB,
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL,
            PRIMARY KEY(assertion_id, round_id)
        );
        """,
    ),
    (
        2,
        "superseded decisions: dry-run decisions a real run replaced",
        """
        CREATE TABLE superseded_decisions(
            id INTEGER PRIMARY KEY,
            assertion_id BLOB NOT NULL,
            created_at TEXT NOT NULL,
            score REAL,
            calibrated REAL,
            rationale TEXT NOT NULL,
            judge TEXT NOT NULL,
            checks TEXT NOT NULL,
            action TEXT NOT NULL,
            reason TEXT NOT NULL,
            dry_run INTEGER NOT NULL,
            superseded_at TEXT NOT NULL
        );
        CREATE INDEX superseded_by_assertion ON superseded_decisions(assertion_id)
        """,
    ),
)
SCHEMA_VERSION = _MIGRATIONS[-1][0]


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _hex(value: bytes | None) -> str | None:
    return None if value is None else "0x" + bytes(value).hex()


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


@dataclass(frozen=True)
class TxRow:
    id: int
    assertion_id: bytes
    kind: TxKind
    status: TxStatus
    sender: str | None
    nonce: int | None
    tx_hash: bytes | None
    raw: bytes | None
    attempts: int
    created_at: str
    updated_at: str
    error: str | None


@dataclass(frozen=True)
class Vote:
    assertion_id: bytes
    round_id: int
    request_id: bytes
    price: int
    salt: int
    phase: VotePhase
    committed_tx: bytes | None
    revealed_tx: bytes | None
    created_at: str
    updated_at: str


_ASSERTION_COLUMNS = (
    "assertion_id, chain_id, oov3, block_number, block_hash, tx_hash, log_index, domain_id, claim, asserter, "
    "callback_recipient, escalation_manager, caller, expiration_time, currency, bond, identifier, is_ours, seen_at, "
    "status, disputed_by, disputed_tx, disputed_block, settled_resolution, settled_tx, settled_block"
)
_TX_COLUMNS = "id, assertion_id, kind, status, sender, nonce, tx_hash, raw, attempts, created_at, updated_at, error"
_DECISION_COLUMNS = "id, assertion_id, created_at, score, calibrated, rationale, judge, checks, action, reason, dry_run"
_VOTE_COLUMNS = (
    "assertion_id, round_id, request_id, price, salt, phase, committed_tx, revealed_tx, created_at, updated_at"
)
# The status an assertion falls back to when a dispute or settlement it had is undone by a reorg.
_UNDISPUTED = (
    "CASE WHEN EXISTS (SELECT 1 FROM decisions d WHERE d.assertion_id = assertions.assertion_id) "
    "THEN 'evaluated' ELSE 'new' END"
)


def _opt_bytes(value: Any) -> bytes | None:
    return None if value is None else bytes(value)


def _assertion(row: sqlite3.Row) -> StoredAssertion:
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
        disputed_tx=_opt_bytes(row["disputed_tx"]),
        disputed_block=row["disputed_block"],
        settled_resolution=None if row["settled_resolution"] is None else bool(row["settled_resolution"]),
        settled_tx=_opt_bytes(row["settled_tx"]),
        settled_block=row["settled_block"],
    )


def _decision(row: sqlite3.Row) -> Decision:
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


def _tx(row: sqlite3.Row) -> TxRow:
    return TxRow(
        id=row["id"],
        assertion_id=bytes(row["assertion_id"]),
        kind=row["kind"],
        status=row["status"],
        sender=row["sender"],
        nonce=row["nonce"],
        tx_hash=_opt_bytes(row["tx_hash"]),
        raw=_opt_bytes(row["raw"]),
        attempts=row["attempts"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        error=row["error"],
    )


def _vote(row: sqlite3.Row) -> Vote:
    return Vote(
        assertion_id=bytes(row["assertion_id"]),
        round_id=row["round_id"],
        request_id=bytes(row["request_id"]),
        price=int(row["price"]),
        salt=int(row["salt"]),
        phase=row["phase"],
        committed_tx=_opt_bytes(row["committed_tx"]),
        revealed_tx=_opt_bytes(row["revealed_tx"]),
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


class DisputerStore:
    """The disputer's SQLite state (default `ATTEST_HOME/disputer.sqlite`). A context manager, or call `close()`.

    Every method commits on its own; `transaction()` groups several into one commit (the watcher saves a
    chunk's events and its checkpoint together).
    """

    def __init__(self, path: Path | None = None) -> None:
        self.path = path if path is not None else attest_home() / "disputer.sqlite"
        self._depth = 0
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, isolation_level=None, timeout=10.0)
        except (OSError, sqlite3.Error) as err:
            raise DisputerStateError(f"cannot open the disputer state at {self.path}: {err}") from None
        self._db.row_factory = sqlite3.Row
        try:
            self._db.execute("PRAGMA journal_mode = WAL")
            self._db.execute("PRAGMA synchronous = FULL")  # the outbox must survive a power cut, not only a crash
            self._db.execute("PRAGMA foreign_keys = ON")
            self._migrate()
        except sqlite3.DatabaseError as err:
            self._db.close()
            raise DisputerStateError(
                f"{self.path} is not a readable disputer state ({err}); move it away or set ATTEST_HOME"
            ) from None
        except AttestError:
            self._db.close()
            raise

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> DisputerStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- schema and transactions ---------------------------------------------------------------------------
    def _migrate(self) -> None:
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS schema_version(version INTEGER PRIMARY KEY, name TEXT NOT NULL, "
            "applied_at TEXT NOT NULL)"
        )
        current = self._db.execute("SELECT coalesce(max(version), 0) FROM schema_version").fetchone()[0]
        if current > SCHEMA_VERSION:
            raise DisputerStateError(
                f"{self.path} has disputer state schema v{current}, newer than this release reads "
                f"(v{SCHEMA_VERSION}); upgrade llm-attest"
            )
        for version, name, sql in _MIGRATIONS:
            if version <= current:
                continue
            with self.transaction():
                for statement in sql.split(";"):
                    if statement.strip():
                        self._db.execute(statement)
                self._db.execute("INSERT INTO schema_version VALUES (?, ?, ?)", (version, name, _now()))

    def schema_version(self) -> int:
        return int(self._db.execute("SELECT max(version) FROM schema_version").fetchone()[0])

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """All writes inside commit together or not at all; nested uses join the outer transaction."""
        if self._depth:
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
            return
        try:
            self._db.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as err:
            raise DisputerStateError(
                f"cannot write to {self.path}: {err}; is another disputer writing to it?"
            ) from None
        self._depth = 1
        try:
            yield
        except sqlite3.Error as err:
            self._db.execute("ROLLBACK")
            raise DisputerStateError(f"the disputer state at {self.path} failed: {err}; nothing was changed") from None
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        else:
            self._db.execute("COMMIT")
        finally:
            self._depth = 0

    def _one(self, sql: str, args: Iterable[Any] = ()) -> sqlite3.Row | None:
        row = self._db.execute(sql, tuple(args)).fetchone()
        return cast(sqlite3.Row | None, row)

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
        now = _now()
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
                    "expiration_time, currency, bond, identifier, is_ours, seen_at, status) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'new')",
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
                        _now(),
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
        row = self._one(f"SELECT {_ASSERTION_COLUMNS} FROM assertions WHERE assertion_id = ?", (assertion_id,))
        return None if row is None else _assertion(row)

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
        sql = f"SELECT {_ASSERTION_COLUMNS} FROM assertions WHERE chain_id = ?"
        args: list[Any] = [chain_id]
        if statuses is not None:
            wanted = list(statuses)
            sql += f" AND status IN ({', '.join('?' * len(wanted))})"
            args.extend(wanted)
        if ours is not None:
            sql += " AND is_ours = ?"
            args.append(int(ours))
        rows = self._db.execute(sql + " ORDER BY block_number, log_index", args)
        return [_assertion(r) for r in rows]

    def pending(self, chain_id: int) -> list[StoredAssertion]:
        """Our assertions seen but not evaluated yet, oldest first."""
        return self.assertions(chain_id, statuses=("new",), ours=True)

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
                    f"no assertion {_hex(assertion_id)} is stored; the watcher must see it before it is decided"
                )
            current = self._one("SELECT id, dry_run FROM decisions WHERE assertion_id = ?", (assertion_id,))
            if current is not None and current["dry_run"] and not dry_run:
                self._db.execute(
                    f"INSERT INTO superseded_decisions SELECT {_DECISION_COLUMNS}, ? FROM decisions WHERE id = ?",
                    (_now(), current["id"]),
                )
                self._db.execute("DELETE FROM decisions WHERE id = ?", (current["id"],))
            self._db.execute(
                "INSERT INTO decisions(assertion_id, created_at, score, calibrated, rationale, judge, checks, action, "
                "reason, dry_run) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(assertion_id) DO NOTHING",
                (assertion_id, _now(), score, calibrated, rationale, judge, checks_json, action, reason, int(dry_run)),
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

    def undecided(self, chain_id: int, *, redecide_dry_runs: bool) -> list[StoredAssertion]:
        """Our assertions that need a decision, in chain order: new ones, disputed ones not decided yet (someone
        disputed before we judged them), and with `redecide_dry_runs` the evaluated or disputed ones whose only
        decision came from a dry run."""
        columns = ", ".join(f"a.{c.strip()}" for c in _ASSERTION_COLUMNS.split(","))
        rows = self._db.execute(
            f"SELECT {columns} FROM assertions a LEFT JOIN decisions d USING(assertion_id) "
            "WHERE a.chain_id = ? AND a.is_ours = 1 AND (a.status = 'new' OR (a.status = 'disputed' AND d.id IS NULL) "
            "OR (? AND a.status IN ('evaluated', 'disputed') AND d.dry_run = 1)) ORDER BY a.block_number, a.log_index",
            (chain_id, int(redecide_dry_runs)),
        )
        return [_assertion(r) for r in rows]

    # -- outbox --------------------------------------------------------------------------------------------
    def tx_intent(self, assertion_id: bytes, kind: TxKind) -> TxRow:
        """The outbox row for (assertion, kind), created in `intent` if there is none yet.

        Whatever its status, the existing row is returned: the caller decides from it whether to sign, reconcile
        or leave it alone, so one action is never sent twice.
        """
        if kind not in TX_KINDS:
            raise ValueError(f"unknown transaction kind {kind!r}; one of {', '.join(TX_KINDS)}")
        now = _now()
        self._db.execute(
            "INSERT INTO txs(assertion_id, kind, status, created_at, updated_at) VALUES (?, ?, 'intent', ?, ?) "
            "ON CONFLICT(assertion_id, kind) DO NOTHING",
            (assertion_id, kind, now, now),
        )
        row = self._one(f"SELECT {_TX_COLUMNS} FROM txs WHERE assertion_id = ? AND kind = ?", (assertion_id, kind))
        assert row is not None
        return _tx(row)

    def tx(self, row_id: int) -> TxRow:
        row = self._one(f"SELECT {_TX_COLUMNS} FROM txs WHERE id = ?", (row_id,))
        if row is None:
            raise DisputerStateError(f"no outbox row {row_id} in {self.path}")
        return _tx(row)

    def _tx_move(
        self, row_id: int, allowed: tuple[TxStatus, ...], status: TxStatus, sets: str = "", args: tuple[Any, ...] = ()
    ) -> TxRow:
        marks = ", ".join("?" * len(allowed))
        cur = self._db.execute(
            f"UPDATE txs SET status = ?, updated_at = ?{sets} WHERE id = ? AND status IN ({marks})",
            (status, _now(), *args, row_id, *allowed),
        )
        if cur.rowcount == 0:
            current = self.tx(row_id)
            raise DisputerStateError(
                f"outbox row {row_id} ({current.kind} for {_hex(current.assertion_id)}) is {current.status}, "
                f"so it cannot become {status}; reconcile it instead of acting again"
            )
        return self.tx(row_id)

    def tx_signed(self, row_id: int, nonce: int, tx_hash: bytes, raw: bytes, sender: str | None = None) -> TxRow:
        """Keep the signed bytes and their hash before they are sent. Allowed from intent, failed or dropped."""
        return self._tx_move(
            row_id,
            SIGNABLE,
            "signed",
            ", nonce = ?, tx_hash = ?, raw = ?, sender = ?, attempts = attempts + 1, error = NULL",
            (nonce, bytes(tx_hash), bytes(raw), sender),
        )

    def tx_sent(self, row_id: int) -> TxRow:
        """The node accepted the bytes (a re-broadcast of a `sent` row keeps it `sent`)."""
        return self._tx_move(row_id, ("signed", "sent"), "sent")

    def tx_mined(self, row_id: int, receipt_status: int = 1) -> TxRow:
        """A receipt exists: status 1 is `mined`, anything else `failed` (reverted on chain)."""
        if receipt_status == 1:
            return self._tx_move(row_id, ("signed", "sent"), "mined")
        return self._tx_move(row_id, ("signed", "sent"), "failed", ", error = ?", ("reverted on chain",))

    def tx_failed(self, row_id: int, error: str) -> TxRow:
        """Nothing from this row can land (rejected before sending, or reverted); it may be signed again."""
        return self._tx_move(row_id, ("intent", "signed", "sent"), "failed", ", error = ?", (error,))

    def tx_dropped(self, row_id: int, error: str = "nonce used by another transaction") -> TxRow:
        """Its nonce was used by another transaction, so these bytes can never be mined; it may be signed again."""
        return self._tx_move(row_id, ("signed", "sent"), "dropped", ", error = ?", (error,))

    # helper E (chaos/reorg/votes): a mined row whose effect is gone may be signed again.
    def tx_reopen(self, row_id: int, error: str) -> TxRow:
        """A mined row whose effect is gone (a reorg removed it, another dispute spent its allowance, its vote
        was for an earlier round): `dropped` with the reason, so the intent can be signed again."""
        return self._tx_move(row_id, ("mined",), "dropped", ", error = ?", (error,))

    def txs_for(self, assertion_id: bytes) -> list[TxRow]:
        """Every outbox row of one assertion, in the order they were created."""
        rows = self._db.execute(f"SELECT {_TX_COLUMNS} FROM txs WHERE assertion_id = ? ORDER BY id", (assertion_id,))
        return [_tx(r) for r in rows]

    def open_txs(self) -> list[TxRow]:
        """Rows a restart must reconcile: intent (never sent), signed and sent (check by hash, re-broadcast)."""
        rows = self._db.execute(
            f"SELECT {_TX_COLUMNS} FROM txs WHERE status IN ('intent', 'signed', 'sent') ORDER BY id"
        )
        return [_tx(r) for r in rows]

    # -- votes ---------------------------------------------------------------------------------------------
    def save_salt(self, assertion_id: bytes, *, round_id: int, request_id: bytes, price: int, salt: int) -> Vote:
        """Keep a vote's price and salt before its commit is sent; for a round already salted, the stored vote is
        returned unchanged (a commit with the first salt may be on its way)."""
        now = _now()
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
        phase: VotePhase,
        column: str,
        tx_hash: bytes,
        allowed: tuple[VotePhase, ...],
    ) -> Vote:
        cur = self._db.execute(
            f"UPDATE votes SET phase = ?, {column} = ?, updated_at = ? WHERE assertion_id = ? AND round_id = ? "
            f"AND phase IN ({', '.join('?' * len(allowed))})",
            (phase, bytes(tx_hash), _now(), assertion_id, round_id, *allowed),
        )
        if cur.rowcount == 0:
            raise DisputerStateError(
                f"no vote for {_hex(assertion_id)} in round {round_id} can become {phase}; "
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

    # -- status --------------------------------------------------------------------------------------------
    def status_summary(self, chain_id: int) -> dict[str, Any]:
        """Plain JSON for `disputer status`: checkpoints, assertions per status (ours and all), decisions per
        action, outbox rows per status, votes per phase."""
        checkpoints = [
            {
                "oov3": r["oov3"],
                "block_number": r["block_number"],
                "block_hash": _hex(r["block_hash"]),
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
                TX_STATUSES,
            ),
            "votes": counts(
                "SELECT v.phase, count(*) FROM votes v JOIN assertions a USING(assertion_id) "
                "WHERE a.chain_id = ? GROUP BY v.phase",
                ("salted", "committed", "revealed"),
            ),
        }
