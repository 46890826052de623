"""The asserter's ledger: one row per attestation, one row per transaction, one event per step.

It is an outbox. Every step is written before it happens and again after: the signed record before it is
pinned, the signed transaction bytes before they are sent, the hash once sent, the receipt once mined. A crash
at any point leaves enough here for `attest resume` to finish the job by rebroadcasting the very same bytes,
so no transaction is ever signed twice for one intent. The transactions are a `TxLog` for the one outbox
engine (attest/chain/outbox.py): a row per signing, so the earlier attempts of an intent stay on record.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from attest.batch.anchors import MIGRATION as ANCHORS
from attest.batch.store import MIGRATION as BATCHES
from attest.chain.outbox import TxRow, TxState, decode_earlier, earlier_after, encode_earlier
from attest.config import storage_location
from attest.errors import LedgerError
from attest.storage import Connection, Migration, Postgres, Row, Store, open_database, utc_now
from attest.units import format_units

if TYPE_CHECKING:
    from web3.types import TxReceipt

    from attest.chain.tx import SignedTx

# started -> signed -> pinned -> asserting -> asserted -> (disputed) -> settled; pinned is final with --no-assert;
# with --batch: pinned -> queued -> in batch -> asserted -> settled (attest/batch/store.py).
# orphaned: the chain it was planned or asserted on is gone (a devnet reset); cancelled: given up (Ctrl-C, or
# `attest discard`) before any transaction of it was sent. Both are final, like settled and failed, but `attest
# resume ID` takes a cancelled one up again.
AttestationStatus = Literal[
    "signed", "pinned", "queued", "in batch", "asserting", "asserted", "disputed", "settled", "failed", "orphaned",
    "cancelled",
]  # fmt: skip
STATUSES: tuple[AttestationStatus, ...] = (
    "signed", "pinned", "queued", "in batch", "asserting", "asserted", "disputed", "settled", "failed", "orphaned",
    "cancelled",
)  # fmt: skip
FINAL = ("settled", "failed", "orphaned", "cancelled")
CHAIN_GONE = "its chain is gone"
TxKind = Literal["approve", "assert", "settle"]

_MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        "attestations, transactions, steps",
        """
        CREATE TABLE attestations(
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            status TEXT NOT NULL,
            network TEXT NOT NULL,
            chain_id INTEGER NOT NULL,
            account TEXT NOT NULL,
            asserter TEXT NOT NULL,
            query TEXT NOT NULL,
            record BLOB NOT NULL,
            digest TEXT NOT NULL,
            cid TEXT,
            rules_cid TEXT,
            pins TEXT,
            want_assert INTEGER NOT NULL,
            oov3 TEXT,
            registry TEXT,
            currency TEXT,
            bond TEXT,
            liveness INTEGER,
            identifier TEXT,
            claim BLOB,
            assertion_id TEXT UNIQUE,
            assert_tx TEXT,
            log_index INTEGER,
            block_number INTEGER,
            expiration INTEGER,
            disputer TEXT,
            outcome TEXT,
            settle_tx TEXT,
            error TEXT,
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL
        );
        CREATE INDEX attestations_by_status ON attestations(status);
        CREATE INDEX attestations_by_cid ON attestations(cid);
        CREATE TABLE txs(
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            attestation_id INTEGER NOT NULL REFERENCES attestations(id),
            kind TEXT NOT NULL,
            status TEXT NOT NULL,
            nonce INTEGER NOT NULL,
            tx_hash TEXT NOT NULL UNIQUE,
            raw BLOB NOT NULL,
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL
        );
        CREATE INDEX txs_by_attestation ON txs(attestation_id, kind);
        CREATE TABLE steps(
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            attestation_id INTEGER NOT NULL REFERENCES attestations(id),
            at TEXT NOT NULL,
            step TEXT NOT NULL,
            detail TEXT NOT NULL
        );
        CREATE INDEX steps_by_attestation ON steps(attestation_id);
        """,
    ),
    Migration(
        "one transaction vocabulary: reverted is failed; why a transaction failed or was dropped",
        """
        ALTER TABLE txs ADD COLUMN error TEXT;
        UPDATE txs SET status = 'failed', error = 'reverted on chain' WHERE status = 'reverted'
        """,
    ),
    Migration(
        "chain histories: the genesis hash a row was made on; a transaction hash is unique per history",
        # A reset devnet has the same chain id, addresses and nonces, so it signs the very same bytes again: the
        # hash alone no longer names one transaction. Rows from before stay NULL until a chain is seen for them.
        """
        ALTER TABLE attestations ADD COLUMN genesis_hash TEXT;
        CREATE TABLE txs_by_chain(
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            attestation_id INTEGER NOT NULL REFERENCES attestations(id),
            kind TEXT NOT NULL,
            status TEXT NOT NULL,
            nonce INTEGER NOT NULL,
            tx_hash TEXT NOT NULL,
            raw BLOB NOT NULL,
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL,
            error TEXT,
            genesis_hash TEXT,
            UNIQUE(genesis_hash, tx_hash)
        );
        INSERT INTO txs_by_chain(id, attestation_id, kind, status, nonce, tx_hash, raw, created_at, updated_at, error)
            SELECT id, attestation_id, kind, status, nonce, tx_hash, raw, created_at, updated_at, error FROM txs;
        DROP TABLE txs;
        ALTER TABLE txs_by_chain RENAME TO txs;
        CREATE INDEX txs_by_attestation ON txs(attestation_id, kind)
        """,
    ),
    Migration(
        "the bond currency's decimals and symbol, so a bond shows in its own units without the chain",
        """
        ALTER TABLE attestations ADD COLUMN bond_decimals INTEGER;
        ALTER TABLE attestations ADD COLUMN bond_symbol TEXT
        """,
    ),
    Migration(
        "replaced transactions: the earlier signings of a row's nonce, any of which may be the one mined",
        "ALTER TABLE txs ADD COLUMN earlier TEXT",
    ),
    BATCHES,
    Migration(
        "pairs of answers to compare, and the signed preferences of their rankers (attest/flow/pairs.py)",
        # A changed mind is a new row naming the one it supersedes: one row per (pair, ranker, superseded).
        """
        CREATE TABLE pairs(
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            first_id INTEGER NOT NULL REFERENCES attestations(id),
            second_id INTEGER NOT NULL REFERENCES attestations(id),
            created_at TEXT NOT NULL
        );
        CREATE TABLE preferences(
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            pair_id INTEGER NOT NULL REFERENCES pairs(id),
            ranker TEXT NOT NULL,
            choice TEXT NOT NULL,
            record BLOB NOT NULL,
            cid TEXT NOT NULL UNIQUE,
            supersedes TEXT,
            created_at TEXT NOT NULL
        );
        CREATE UNIQUE INDEX preferences_once ON preferences(pair_id, ranker, coalesce(supersedes, ''))
        """,
    ),
    ANCHORS,
)

_UPDATABLE = frozenset(
    {
        "status", "cid", "rules_cid", "pins", "oov3", "registry", "currency", "bond", "liveness", "identifier",
        "claim", "assertion_id", "assert_tx", "log_index", "block_number", "expiration", "disputer", "outcome",
        "settle_tx", "error", "genesis_hash",
    }
)  # fmt: skip


@dataclass(frozen=True)
class Attestation:
    id: int
    status: str
    network: str
    chain_id: int
    account: str
    asserter: str
    query: str
    record: bytes
    digest: str
    cid: str | None
    rules_cid: str | None
    pins: list[dict[str, Any]]
    want_assert: bool
    oov3: str | None
    registry: str | None
    currency: str | None
    bond: int | None
    liveness: int | None
    identifier: str | None
    claim: bytes | None
    assertion_id: str | None
    assert_tx: str | None
    log_index: int | None
    block_number: int | None
    expiration: int | None
    disputer: str | None
    outcome: str | None
    settle_tx: str | None
    error: str | None
    created_at: str
    updated_at: str
    genesis_hash: str | None  # block 0 of the chain it is planned for; None: pinned only, or older than this field
    bond_decimals: int | None = None  # the currency's, read when the bond was planned (None before this release)
    bond_symbol: str | None = None

    @property
    def bond_amount(self) -> str | None:
        """The bond in currency units ("250.5"), when its decimals are known."""
        if self.bond is None or self.bond_decimals is None:
            return None
        return format_units(self.bond, self.bond_decimals)

    batch_id: int | None = None  # set once the record is in a batch (asked with --batch)
    leaf_index: int | None = None

    @property
    def finished(self) -> bool:
        return self.status in FINAL or (self.status == "pinned" and not self.want_assert)


@dataclass(frozen=True)
class Stake:
    """One bond the asserter put up: an attestation's, or a batch's (once for all its records); times as stored."""

    assertion_id: str
    network: str
    currency: str
    bond: int
    decimals: int | None
    symbol: str | None
    asserted_at: str
    disputed_at: str | None
    ended_at: str | None  # settled, or its chain found gone (orphaned)
    outcome: str | None  # attested or rejected once settled
    batch_id: int | None


# A batch's bond is counted once, by its first record; a batch has no step of its own when disputed. Its plan
# (JSON) is read here rather than in SQL, which has no JSON function both backends share.
_STAKES = """
    SELECT coalesce(b.assertion_id, a.assertion_id) AS assertion_id, a.network, a.currency, a.bond,
        a.bond_decimals, a.bond_symbol, b.plan,
        (SELECT min(at) FROM steps s WHERE s.attestation_id = a.id AND s.step = 'asserted') AS asserted_at,
        (SELECT min(at) FROM steps s WHERE s.attestation_id = a.id AND s.step = 'disputed') AS disputed_at,
        (SELECT max(at) FROM steps s WHERE s.attestation_id = a.id AND s.step IN ('settled', 'orphaned')) AS ended_at,
        coalesce(b.outcome, a.outcome) AS outcome, a.batch_id
    FROM attestations a LEFT JOIN batches b ON b.id = a.batch_id
    WHERE (a.batch_id IS NULL OR a.leaf_index = 0) AND coalesce(b.assertion_id, a.assertion_id) IS NOT NULL
"""
# A batch planned before its plan kept the currency's decimals and symbol takes them from the ledger's latest
# single ask in that currency on that network (read from the chain when it was planned); without one, its bond
# shows in base units.
_KNOWN_CURRENCY = """SELECT bond_decimals, bond_symbol FROM attestations WHERE network = ? AND currency = ?
    AND bond_decimals IS NOT NULL ORDER BY id DESC LIMIT 1"""


@dataclass(frozen=True)
class Step:
    at: str
    step: str
    detail: dict[str, Any]


class Ledger:
    def __init__(self, path: Path | Postgres | None = None) -> None:
        """`path`: the SQLite file or PostgreSQL server; by default where the config says (`[storage] url`),
        else `$ATTEST_HOME/ledger.sqlite`."""
        self.path = path or storage_location("ledger.sqlite")
        self._database = open_database(self.path, _MIGRATIONS, what="ledger", error=LedgerError, schema="ledger")
        self._db = self._database.conn

    @property
    def database(self) -> Store:
        """The ledger's database, for the batch tables kept in it (attest/batch/store.py)."""
        return self._database

    def close(self) -> None:
        self._database.close()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def transaction(self, *, durable: bool = False) -> AbstractContextManager[Connection]:
        return self._database.transaction(durable=durable)

    # -- attestations ------------------------------------------------------------------------------------
    def begin(
        self,
        *,
        network: str,
        chain_id: int,
        account: str,
        asserter: str,
        query: str,
        record: bytes,
        digest: str,
        want_assert: bool,
        plan: dict[str, Any],
        genesis_hash: str | None = None,
    ) -> int:
        """The signed record, before anything leaves this machine; `plan` holds the assertion's parameters,
        `genesis_hash` the chain history it is planned for."""
        now = utc_now()
        with self.transaction() as db:
            cursor = db.execute(
                "INSERT INTO attestations(status, network, chain_id, account, asserter, query, record, digest, "
                "want_assert, oov3, registry, currency, bond, liveness, identifier, created_at, updated_at, "
                "genesis_hash, bond_decimals, bond_symbol) "
                "VALUES ('signed', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
                (
                    network, chain_id, account, asserter, query, record, digest, int(want_assert),
                    plan.get("oov3"), plan.get("registry"), plan.get("currency"),
                    None if plan.get("bond") is None else str(plan["bond"]), plan.get("liveness"),
                    plan.get("identifier"), now, now, genesis_hash, plan.get("bond_decimals"), plan.get("bond_symbol"),
                ),
            )  # fmt: skip
            attestation_id = int(cursor.fetchone()[0])
            self._step(db, attestation_id, "signed", {"digest": digest, "bytes": len(record)})
        return attestation_id

    def update(self, attestation_id: int, step: str, detail: dict[str, Any] | None = None, **fields: Any) -> None:
        """Change fields and log the step in one transaction."""
        unknown = set(fields) - _UPDATABLE
        if unknown:
            raise ValueError(f"not ledger fields: {sorted(unknown)}")
        values = [_column_value(name, value) for name, value in fields.items()]
        with self.transaction() as db:
            if "status" in fields and step != "reopened" and self.get(attestation_id).status == "cancelled":
                # `attest discard` from another terminal while an ask or resume was pinning it: that one stops
                # (only `reopen` takes a cancelled attestation up again).
                raise LedgerError(f"attestation #{attestation_id} was discarded meanwhile; nothing of it was sent")
            if fields:
                assignments = ", ".join(f"{name} = ?" for name in fields)
                db.execute(
                    f"UPDATE attestations SET {assignments}, updated_at = ? WHERE id = ?",
                    (*values, utc_now(), attestation_id),
                )
            self._step(db, attestation_id, step, detail or {})

    def get(self, attestation_id: int) -> Attestation:
        row = self._db.execute("SELECT * FROM attestations WHERE id = ?", (attestation_id,)).fetchone()
        if row is None:
            raise LedgerError(f"no attestation #{attestation_id} in the ledger {self.path}; see `attest list`")
        return _attestation(row)

    def find(self, ref: str) -> Attestation:
        """By ledger number (`7` or `#7`), assertion id (0x + 64 hex) or record CID."""
        ref = ref.strip()
        if ref.lstrip("#").isdigit():
            return self.get(int(ref.lstrip("#")))
        column = "assertion_id" if ref.lower().startswith("0x") else "cid"
        value = ref.lower() if column == "assertion_id" else ref
        row = self._db.execute(
            f"SELECT * FROM attestations WHERE {column} = ? ORDER BY id DESC LIMIT 1", (value,)
        ).fetchone()
        if row is None:
            raise LedgerError(f"no attestation {ref} in the ledger {self.path}; see `attest list`")
        return _attestation(row)

    def select(
        self,
        *,
        statuses: Sequence[str] = (),
        network: str | None = None,
        since: str | None = None,
        until: str | None = None,
        limit: int | None = None,
    ) -> list[Attestation]:
        where, args = ["1 = 1"], list[Any]()
        if statuses:
            where.append(f"status IN ({', '.join('?' for _ in statuses)})")
            args.extend(statuses)
        if network:
            where.append("network = ?")
            args.append(network)
        if since:
            where.append("created_at >= ?")
            args.append(since)
        if until:
            where.append("created_at < ?")
            args.append(until)
        sql = f"SELECT * FROM attestations WHERE {' AND '.join(where)} ORDER BY id"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        return [_attestation(r) for r in self._db.execute(sql, args)]

    def match_chain(self, a: Attestation, genesis_hash: str) -> Attestation:
        """The row as seen from a node whose chain starts with `genesis_hash`. A row made on another history of
        this chain id (the devnet was reset since) becomes `orphaned`, and its transactions in flight `failed`:
        their bytes must never be rebroadcast on the new chain, which would accept them. A row from before the
        genesis hash was recorded takes this one."""
        if a.genesis_hash is None:
            self.update(a.id, "chain recorded", {"genesis": genesis_hash}, genesis_hash=genesis_hash)
        elif a.genesis_hash != genesis_hash and not a.finished:
            with self.transaction() as db:
                db.execute(
                    "UPDATE txs SET status = 'failed', error = ?, updated_at = ? "
                    "WHERE attestation_id = ? AND status IN ('signed', 'sent')",
                    (CHAIN_GONE, utc_now(), a.id),
                )
                detail = {"was": a.status, "genesis": a.genesis_hash, "node_genesis": genesis_hash}
                self.update(a.id, "orphaned", detail, status="orphaned", error=CHAIN_GONE)
        return self.get(a.id)

    def cancel(self, attestation_id: int, why: str, *, unsent: bool) -> bool:
        """Give up an attestation none of whose transactions was sent; False (nothing changed) when one may be out.
        `unsent`: this process knows its `signed` rows were never broadcast (an interrupted ask, see
        attest/interrupts.py); otherwise a signed row may be out and refuses."""
        with self.transaction() as db:
            a = self.get(attestation_id)
            if a.finished or a.assertion_id is not None:
                return False
            statuses = {r["status"] for r in db.execute("SELECT status FROM txs WHERE attestation_id = ?", (a.id,))}
            if statuses - ({"signed"} if unsent else set()):
                return False
            # Bytes that never left are forgotten (the steps keep their hash): taken up again, the attestation
            # signs the very same bytes anew, and a row must not already hold them.
            unsent_txs = [r[0] for r in db.execute("SELECT tx_hash FROM txs WHERE attestation_id = ?", (a.id,))]
            db.execute("DELETE FROM txs WHERE attestation_id = ?", (a.id,))
            detail = {"why": why, "was": a.status, "never_sent": unsent_txs}
            self.update(a.id, "cancelled", detail, status="cancelled", error=why)
        return True

    def reopen(self, attestation_id: int) -> Attestation:
        """A cancelled attestation taken up again, where it stopped: signed, or pinned when its record is."""
        a = self.get(attestation_id)
        if a.status == "cancelled":
            back = "pinned" if a.cid is not None else "signed"
            self.update(a.id, "reopened", {"status": back}, status=back, error=None)
        return self.get(attestation_id)

    def unfinished(self) -> list[Attestation]:
        open_statuses = ("signed", "pinned", "asserting", "asserted", "disputed")
        return [a for a in self.select(statuses=open_statuses) if not a.finished]

    def steps(self, attestation_id: int) -> list[Step]:
        rows = self._db.execute(
            "SELECT at, step, detail FROM steps WHERE attestation_id = ? ORDER BY id", (attestation_id,)
        )
        return [Step(r["at"], r["step"], json.loads(r["detail"])) for r in rows]

    def stakes(self, network: str | None = None) -> list[Stake]:
        """Every bond put up on an assertion (of `network`), in the order they were asserted."""
        sql, args = _STAKES, list[Any]()
        if network is not None:
            sql, args = sql + " AND a.network = ?", [network]
        found = [self._stake(r) for r in self._db.execute(sql, args).fetchall() if r["asserted_at"] is not None]
        return sorted((s for s in found if s is not None), key=lambda s: s.asserted_at)

    def _stake(self, row: Row) -> Stake | None:
        plan: dict[str, Any] = json.loads(row["plan"]) if row["plan"] is not None else {}
        currency, bond = plan.get("currency", row["currency"]), plan.get("bond", row["bond"])
        if bond is None:
            return None
        decimals, symbol = row["bond_decimals"], row["bond_symbol"]
        if row["plan"] is not None:
            decimals, symbol = plan.get("bond_decimals"), plan.get("bond_symbol")
            if decimals is None or symbol is None:
                known = self._db.execute(_KNOWN_CURRENCY, (row["network"], currency)).fetchone()
                decimals = decimals if decimals is not None or known is None else known[0]
                symbol = symbol if symbol is not None or known is None else known[1]
        return Stake(
            assertion_id=row["assertion_id"], network=row["network"], currency=currency, bond=int(bond),
            decimals=decimals, symbol=symbol, asserted_at=row["asserted_at"], disputed_at=row["disputed_at"],
            ended_at=row["ended_at"], outcome=row["outcome"], batch_id=row["batch_id"],
        )  # fmt: skip

    # -- transactions: the outbox's log ------------------------------------------------------------------
    def tx_intent(self, subject: int, kind: str) -> TxRow[int]:
        """The latest transaction of this attestation's `kind`, or an intent not stored (nothing is signed)."""
        row = self._db.execute(
            "SELECT * FROM txs WHERE attestation_id = ? AND kind = ? ORDER BY id DESC LIMIT 1", (subject, kind)
        ).fetchone()
        if row is not None:
            return _tx(row)
        now = utc_now()
        return TxRow(0, subject, kind, "intent", None, None, None, None, 0, None, now, now)

    def tx_record_signed(self, row: TxRow[int], signed: SignedTx, sender: str) -> TxRow[int]:
        """The exact bytes, before they are sent, in a new row: after a crash they are rebroadcast, never
        re-signed."""
        now = utc_now()
        with self.transaction(durable=True) as db:
            cursor = db.execute(
                "INSERT INTO txs(attestation_id, kind, status, nonce, tx_hash, raw, created_at, updated_at, "
                "genesis_hash) SELECT ?, CAST(? AS TEXT), 'signed', ?, CAST(? AS TEXT), ?, CAST(? AS TEXT), "
                "CAST(? AS TEXT), genesis_hash FROM attestations WHERE id = ? RETURNING id",
                (row.subject, row.kind, signed.nonce, signed.tx_hash, signed.raw, now, now, row.subject),
            )
            row_id = int(cursor.fetchone()[0])
            self._step(db, row.subject, f"{row.kind} signed", {"tx": signed.tx_hash, "nonce": signed.nonce})
        return self._tx_by_id(row_id)

    def tx_record(
        self, row: TxRow[int], status: TxState, *, error: str | None = None, receipt: TxReceipt | None = None
    ) -> TxRow[int]:
        if row.id == 0:  # an intent the static call refused: the ledger keeps no row until one is signed
            return row
        detail: dict[str, Any] = {"tx": row.hash_hex}
        if error is not None:
            detail["why"] = error
        if receipt is not None:
            detail |= {"block": receipt["blockNumber"], "gas": receipt["gasUsed"]}
        with self.transaction() as db:
            db.execute(
                "UPDATE txs SET status = ?, error = ?, updated_at = ? WHERE id = ?", (status, error, utc_now(), row.id)
            )
            self._step(db, row.subject, f"{row.kind} {status}", detail)
        return self._tx_by_id(row.id)

    def tx_record_replaced(self, row: TxRow[int], signed: SignedTx) -> TxRow[int]:
        earlier = earlier_after(row, signed)
        # Either a replacement about to be sent, or the signing it replaced turned out to be the one mined.
        step = "earlier signing mined" if signed.tx_hash in row.earlier_hashes else "replaced"
        with self.transaction(durable=True) as db:
            db.execute(
                "UPDATE txs SET tx_hash = ?, raw = ?, earlier = ?, updated_at = ? WHERE id = ?",
                (signed.tx_hash, signed.raw, encode_earlier(earlier), utc_now(), row.id),
            )
            detail = {"tx": signed.tx_hash, "nonce": signed.nonce, "was": row.hash_hex}
            self._step(db, row.subject, f"{row.kind} {step}", detail)
        return self._tx_by_id(row.id)

    def mined_tx(self, attestation_id: int, kind: TxKind) -> TxRow[int] | None:
        row = self._db.execute(
            "SELECT * FROM txs WHERE attestation_id = ? AND kind = ? AND status = 'mined' ORDER BY id DESC LIMIT 1",
            (attestation_id, kind),
        ).fetchone()
        return None if row is None else _tx(row)

    def in_flight(
        self, *, chain_id: int, genesis_hash: str | None, asserter: str
    ) -> list[tuple[TxRow[int], Attestation]]:
        """Every transaction of this account on this chain (id and history) signed or sent and not known to be
        mined, with its attestation, in nonce order."""
        rows = self._db.execute(
            "SELECT t.* FROM txs t JOIN attestations a ON a.id = t.attestation_id WHERE t.status IN ('signed', "
            "'sent') AND a.chain_id = ? AND a.genesis_hash IS NOT DISTINCT FROM ? AND lower(a.asserter) = ? "
            "ORDER BY t.nonce",
            (chain_id, genesis_hash, asserter.lower()),
        ).fetchall()
        return [(_tx(r), self.get(int(r["attestation_id"]))) for r in rows]

    def to_assert(
        self, *, chain_id: int, genesis_hash: str | None, asserter: str, oov3: str, currency: str
    ) -> list[Attestation]:
        """Attestations of this account, chain, oracle and bond currency planned to be asserted and not asserted
        yet."""
        rows = self._db.execute(
            "SELECT * FROM attestations WHERE want_assert = 1 AND assertion_id IS NULL "
            "AND status IN ('pinned', 'asserting') AND chain_id = ? AND genesis_hash IS NOT DISTINCT FROM ? "
            "AND lower(asserter) = ? AND lower(oov3) = ? AND lower(currency) = ? ORDER BY id",
            (chain_id, genesis_hash, asserter.lower(), oov3.lower(), currency.lower()),
        )
        return [_attestation(r) for r in rows]

    def txs(self, attestation_id: int) -> list[TxRow[int]]:
        rows = self._db.execute("SELECT * FROM txs WHERE attestation_id = ? ORDER BY id", (attestation_id,))
        return [_tx(r) for r in rows]

    def _tx_by_id(self, row_id: int) -> TxRow[int]:
        return _tx(self._db.execute("SELECT * FROM txs WHERE id = ?", (row_id,)).fetchone())

    @staticmethod
    def _step(db: Connection, attestation_id: int, step: str, detail: dict[str, Any]) -> None:
        db.execute(
            "INSERT INTO steps(attestation_id, at, step, detail) VALUES (?, ?, ?, ?)",
            (attestation_id, utc_now(), step, json.dumps(detail, sort_keys=True)),
        )


_DEPLOY_MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        "contract deployments: one intent per (network, chain, contract, arguments), a row per signing",
        """
        CREATE TABLE deploys(
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            subject TEXT NOT NULL,
            kind TEXT NOT NULL,
            status TEXT NOT NULL,
            nonce INTEGER NOT NULL,
            tx_hash TEXT NOT NULL UNIQUE,
            raw BLOB NOT NULL,
            sender TEXT NOT NULL,
            error TEXT,
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL
        );
        CREATE INDEX deploys_by_subject ON deploys(subject, kind);
        """,
    ),
    Migration(
        "replaced transactions: the earlier signings of a row's nonce, any of which may be the one mined",
        "ALTER TABLE deploys ADD COLUMN earlier TEXT",
    ),
)


# The schema version of each store of attest on a shared server, by its schema there (`attest doctor` compares).
SCHEMA_VERSIONS = {"ledger": len(_MIGRATIONS), "deploys": len(_DEPLOY_MIGRATIONS)}


class DeployLog:
    """The outbox's log for contract deployments (`attest registry deploy`), in `$ATTEST_HOME/deploys.sqlite`
    beside the ledger: a deploy is one intent, its subject naming the network, chain, contract and constructor
    arguments. The signed bytes are kept before they are sent, so running the same deploy again after a crash
    reconciles them (their receipt, or the same bytes rebroadcast) instead of paying for a second contract."""

    def __init__(self, path: Path | Postgres | None = None) -> None:
        self.path = path or storage_location("deploys.sqlite")
        self._database = open_database(
            self.path, _DEPLOY_MIGRATIONS, what="deploy log", error=LedgerError, schema="deploys"
        )
        self._db = self._database.conn

    def close(self) -> None:
        self._database.close()

    def __enter__(self) -> DeployLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def transaction(self, *, durable: bool = False) -> AbstractContextManager[Connection]:
        return self._database.transaction(durable=durable)

    def tx_intent(self, subject: str, kind: str) -> TxRow[str]:
        row = self._db.execute(
            "SELECT * FROM deploys WHERE subject = ? AND kind = ? ORDER BY id DESC LIMIT 1", (subject, kind)
        ).fetchone()
        if row is not None:
            return _deploy(row)
        now = utc_now()
        return TxRow(0, subject, kind, "intent", None, None, None, None, 0, None, now, now)

    def tx_record_signed(self, row: TxRow[str], signed: SignedTx, sender: str) -> TxRow[str]:
        now = utc_now()
        with self.transaction(durable=True) as db:
            cursor = db.execute(
                "INSERT INTO deploys(subject, kind, status, nonce, tx_hash, raw, sender, created_at, updated_at) "
                "VALUES (?, ?, 'signed', ?, ?, ?, ?, ?, ?) RETURNING id",
                (row.subject, row.kind, signed.nonce, signed.tx_hash, signed.raw, sender, now, now),
            )
            row_id = int(cursor.fetchone()[0])
        return self._by_id(row_id)

    def tx_record(
        self, row: TxRow[str], status: TxState, *, error: str | None = None, receipt: TxReceipt | None = None
    ) -> TxRow[str]:
        if row.id == 0:  # refused by its static call: nothing was signed, nothing to keep
            return row
        with self.transaction() as db:
            db.execute(
                "UPDATE deploys SET status = ?, error = ?, updated_at = ? WHERE id = ?",
                (status, error, utc_now(), row.id),
            )
        return self._by_id(row.id)

    def tx_record_replaced(self, row: TxRow[str], signed: SignedTx) -> TxRow[str]:
        with self.transaction(durable=True) as db:
            db.execute(
                "UPDATE deploys SET tx_hash = ?, raw = ?, earlier = ?, updated_at = ? WHERE id = ?",
                (signed.tx_hash, signed.raw, encode_earlier(earlier_after(row, signed)), utc_now(), row.id),
            )
        return self._by_id(row.id)

    def _by_id(self, row_id: int) -> TxRow[str]:
        return _deploy(self._db.execute("SELECT * FROM deploys WHERE id = ?", (row_id,)).fetchone())


def _deploy(row: Row) -> TxRow[str]:
    return TxRow(
        row["id"], row["subject"], row["kind"], row["status"], row["nonce"], bytes.fromhex(row["tx_hash"][2:]),
        row["raw"], row["sender"], 1, row["error"], row["created_at"], row["updated_at"],
        decode_earlier(row["earlier"]),
    )  # fmt: skip


def _column_value(name: str, value: Any) -> Any:
    if name == "pins":
        return json.dumps(value)
    if name == "bond" and value is not None:
        return str(value)  # uint256 does not fit SQLite's integers
    return value


def _attestation(row: Row) -> Attestation:
    data = dict(row)
    data["pins"] = json.loads(data["pins"]) if data["pins"] else []
    data["want_assert"] = bool(data["want_assert"])
    data["bond"] = None if data["bond"] is None else int(data["bond"])
    return Attestation(**data)


def _tx(row: Row) -> TxRow[int]:
    """A ledger row is one signing (attempts 1); its hash is kept as 0x-hex text."""
    return TxRow(
        row["id"], row["attestation_id"], row["kind"], row["status"], row["nonce"], bytes.fromhex(row["tx_hash"][2:]),
        row["raw"], None, 1, row["error"], row["created_at"], row["updated_at"], decode_earlier(row["earlier"]),
    )  # fmt: skip
