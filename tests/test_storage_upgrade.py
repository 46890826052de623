"""Files written by the release before one storage module open with today's code: the data reads back as it
was written (tests/fixtures/legacy/make_legacy.py made them), the schema is upgraded in place and recorded in
the one `migrations` table, old time stamps still read, and opening again changes nothing."""

from __future__ import annotations

import shutil
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest

from attest.errors import KbError
from attest.kb import KnowledgeBase
from attest.ledger import Ledger
from attest.storage import Database, Migration, open_database, parse_time, utc_now
from disputer.store import SCHEMA_VERSION, DisputerStore
from tests.support.postgres import StoreAt

LEGACY = Path(__file__).parent / "fixtures" / "legacy"
AID = b"\xaa" * 32


def legacy(tmp_path: Path, name: str) -> Path:
    path = tmp_path / name
    shutil.copyfile(LEGACY / name, path)
    return path


def bookkeeping(path: Path) -> tuple[list[tuple[int, str]], list[str]]:
    db = sqlite3.connect(path)
    try:
        rows = [(v, n) for v, n in db.execute("SELECT version, name FROM migrations ORDER BY version")]
        tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]
    finally:
        db.close()
    return rows, tables


def test_a_legacy_ledger_upgrades_in_place(tmp_path: Path) -> None:
    path = legacy(tmp_path, "ledger.sqlite")
    with Ledger(path) as book:
        (a,) = book.select()
        assert (a.status, a.query, a.record, a.cid, a.bond, a.liveness) == (
            "asserting", "why is the sky blue?", b'{"record": 1}', "bafyrecord", 10**30, 7200
        )  # fmt: skip
        assert a.pins == [{"store": "local"}] and a.want_assert and a.oov3 == "0x" + "a3" * 20
        assert (a.bond_decimals, a.bond_symbol, a.bond_amount) == (None, None, None)
        txs = book.txs(a.id)
        assert [(t.kind, t.status, t.nonce, t.raw) for t in txs] == [
            ("approve", "mined", 0, b"\x02approve"),
            ("assert", "failed", 1, b"\x02assert-1"),  # was `reverted`: one vocabulary now
            ("assert", "signed", 2, b"\x02assert-2"),
        ]
        assert [t.tx_hash for t in txs] == [bytes([n]) * 32 for n in (1, 2, 3)]
        assert txs[1].error == "reverted on chain" and txs[0].error is None
        assert book.tx_intent(a.id, "assert") == txs[2]  # the one in flight is what the outbox reconciles
        steps = [s.step for s in book.steps(a.id)]
        assert steps[:3] == ["signed", "pinned", "approve signed"] and "assert reverted" in steps  # history kept
        assert parse_time(a.created_at) <= datetime.now(UTC)
        # Made before chain histories were recorded: the row takes the first chain it is checked against, and
        # its transactions, bound to no history, never clash with the same bytes signed on a later one.
        assert a.genesis_hash is None
        adopted = book.match_chain(a, "0x" + "ge" * 32)
        assert adopted.status == "asserting" and adopted.genesis_hash == "0x" + "ge" * 32
        assert [t.status for t in book.txs(a.id)] == ["mined", "failed", "signed"]
    rows, tables = bookkeeping(path)
    # Migration 3 ties rows to a chain history; 4 (the bond currency's decimals and symbol) leaves them unknown
    # for rows written before it; 5 keeps a replaced transaction's earlier signings; 6 adds Merkle batches; 7 pairs
    # of answers and their rankers' preferences; 8 their on-chain anchors (root, proof, tx and block per preference).
    assert [v for v, _n in rows] == [1, 2, 3, 4, 5, 6, 7, 8] and rows[0][1] == "attestations, transactions, steps"
    assert rows[2][1].startswith("chain histories") and rows[3][1].startswith("the bond currency")
    assert rows[4][1].startswith("replaced transactions") and rows[5][1].startswith("batches:")
    assert rows[6][1].startswith("pairs of answers") and rows[7][1].startswith("preference anchors")
    assert {"anchors", "anchor_txs"} <= set(tables)
    with Ledger(path):  # opening again applies nothing
        pass
    assert bookkeeping(path) == (rows, tables)


def test_a_legacy_disputer_state_upgrades_in_place(tmp_path: Path) -> None:
    path = legacy(tmp_path, "disputer.sqlite")
    with DisputerStore(path) as store:
        assert store.schema_version() == SCHEMA_VERSION
        cp = store.checkpoint(31337, "0x" + "a3" * 20)
        assert cp is not None and (cp.block_number, cp.block_hash) == (12, b"\x12" * 32)
        stored = store.get(AID)
        assert stored is not None and (stored.status, stored.block_number, stored.bond) == (
            "evaluated",
            10,
            200 * 10**6,
        )
        decision = store.decision(AID)
        assert decision is not None and (decision.action, decision.reason, decision.score) == ("dispute", "wrong", 0.1)
        rows = {t.kind: t for t in store.txs_for(AID)}
        assert {k: (t.status, t.nonce, t.attempts) for k, t in rows.items()} == {
            "approve": ("mined", 4, 1), "dispute": ("failed", 5, 1), "settle": ("intent", None, 0)
        }  # fmt: skip
        assert rows["dispute"].error == "reverted on chain" and rows["approve"].raw == b"\x02approve"
        assert rows["approve"].tx_hash == b"\x44" * 32 and rows["approve"].sender == "0x" + "22" * 20
        vote = store.vote(AID, 7)
        assert vote is not None and (vote.phase, vote.salt, vote.price) == ("committed", 12345, 10**18)
        # Whole-second stamps of the earlier release still read, and sort with today's.
        assert len(stored.seen_at) == len("2026-01-01T00:00:00Z") and parse_time(stored.seen_at) <= datetime.now(UTC)
        assert parse_time(stored.seen_at) <= parse_time(utc_now())
        # First followed after the upgrade: its rows were seen on that very chain, and nothing is retired.
        assert store.follow_chain(31337, b"\x01" * 32) == 0
        assert store.get(AID) == stored
        # Migration 5 rebuilt the outbox table (rows above kept) so it takes a batch dispute's evidence row.
        with store.transaction():
            assert store.tx_intent(AID, "evidence").status == "intent"
    rows_, tables = bookkeeping(path)
    assert [v for v, _n in rows_] == [1, 2, 3, 4, 5, 6] and "schema_version" not in tables  # moved into the one table
    with DisputerStore(path) as store:
        assert store.schema_version() == SCHEMA_VERSION
    assert bookkeeping(path) == (rows_, tables)


def test_a_legacy_kb_upgrades_in_place(tmp_path: Path) -> None:
    path = legacy(tmp_path, "kb.sqlite3")
    with KnowledgeBase(path) as base:
        assert [d.source for d in base.documents()] == ["ipfs://bafyexample", "notes/gas.md"]
        assert [h.source for h in base.search("gas_limit_target")] == ["notes/gas.md"]
        assert [h.source for h in base.search("foghorn")] == ["ipfs://bafyexample"]
        assert all(parse_time(d.added_at) <= datetime.now(UTC) for d in base.documents())
        base.add_document("new.md", b"# New\n\nWritten after the upgrade.\n")
    rows, tables = bookkeeping(path)
    assert [v for v, _n in rows] == [1, 2, 3]
    with KnowledgeBase(path):
        pass
    assert bookkeeping(path) == (rows, tables)


def test_nested_transactions_are_savepoints(store_at: StoreAt) -> None:
    migrations = [Migration("t", "CREATE TABLE t(x INTEGER)")]
    db = open_database(store_at("t.sqlite"), migrations, what="test", error=KbError, schema="test")
    with db.transaction() as conn:
        conn.execute("INSERT INTO t VALUES (1)")
        with pytest.raises(RuntimeError), db.transaction():
            conn.execute("INSERT INTO t VALUES (2)")
            raise RuntimeError("the inner part fails, the caller goes on")
        conn.execute("INSERT INTO t VALUES (3)")
    assert [r[0] for r in db.conn.execute("SELECT x FROM t ORDER BY x")] == [1, 3]
    if isinstance(db, Database):
        assert db.conn.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL
    db.close()


def test_a_durable_commit_is_synced_and_the_others_are_not(tmp_path: Path) -> None:
    """SQLite reads `synchronous` when a transaction begins: a durable one is FULL from its BEGIN on, and a
    durable write cannot hide inside a transaction that began without it."""
    db = Database(tmp_path / "t.sqlite", [Migration("t", "CREATE TABLE t(x INTEGER)")], what="test", error=KbError)
    statements: list[str] = []
    db.conn.set_trace_callback(statements.append)
    with db.transaction(durable=True) as conn:
        conn.execute("INSERT INTO t VALUES (1)")
    with db.transaction() as conn:
        conn.execute("INSERT INTO t VALUES (2)")
    durable, plain = (
        statements.index("BEGIN IMMEDIATE"),
        len(statements) - 1 - statements[::-1].index("BEGIN IMMEDIATE"),
    )
    assert statements[durable - 1] == "PRAGMA synchronous = FULL"
    assert "PRAGMA synchronous = FULL" not in statements[durable + 1 :]
    assert statements[plain - 1] == "PRAGMA synchronous = NORMAL"  # reset after the durable commit
    assert db.conn.execute("PRAGMA synchronous").fetchone()[0] == 1
    with pytest.raises(RuntimeError, match="durable"), db.transaction(), db.transaction(durable=True):
        pass
    with db.transaction(durable=True), db.transaction(durable=True) as conn:
        conn.execute("INSERT INTO t VALUES (3)")
    assert [r[0] for r in db.conn.execute("SELECT x FROM t ORDER BY x")] == [1, 2, 3]
    db.close()


def test_a_full_disk_is_reported_as_the_store_error_and_writes_nothing(tmp_path: Path) -> None:
    """SQLite rolls back by itself on a full disk; the store says so in its own error, not "cannot rollback"."""
    db = Database(tmp_path / "t.sqlite", [Migration("t", "CREATE TABLE t(x BLOB)")], what="test", error=KbError)
    pages = int(db.conn.execute("PRAGMA page_count").fetchone()[0])
    db.conn.execute(f"PRAGMA max_page_count = {pages + 2}")
    with pytest.raises(KbError, match="full") as caught, db.transaction() as conn:
        conn.execute("INSERT INTO t VALUES (?)", (b"small",))
        with db.transaction():
            conn.execute("INSERT INTO t VALUES (?)", (b"x" * 1_000_000,))
    assert "rollback" not in str(caught.value)
    assert db.conn.execute("SELECT count(*) FROM t").fetchone()[0] == 0
    assert not db.conn.in_transaction
    db.close()
