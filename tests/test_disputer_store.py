"""The disputer's SQLite state on real files: migrations, idempotent writes, the outbox rules, salts, summaries."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from attest.chain.oov3 import AssertionMade
from attest.errors import DisputerStateError
from disputer.store import MAX_SQLITE_INT, SCHEMA_VERSION, DisputerStore
from tests.support.postgres import StoreAt

CHAIN = 31337
OOV3 = "0x00000000000000000000000000000000000000A3"
REGISTRY = "0x0000000000000000000000000000000000000042"


def made(n: int, *, block: int = 10, bond: int = 200 * 10**6, expiration: int = 2_000_000_000) -> AssertionMade:
    return AssertionMade(
        assertion_id=bytes([n]) * 32,
        domain_id=b"\x0d" * 32,
        claim=f"claim {n}".encode(),
        asserter="0x70997970C51812dc3A010C7d01b50e0d17dc79C8",
        callback_recipient=REGISTRY,
        escalation_manager="0x0000000000000000000000000000000000000000",
        caller="0x70997970C51812dc3A010C7d01b50e0d17dc79C8",
        expiration_time=expiration,
        currency="0x5FbDB2315678afecb367f032d93F642f64180aa3",
        bond=bond,
        identifier=b"ASSERT_TRUTH2".ljust(32, b"\0"),
        tx_hash=bytes([n]) * 31 + b"\x01",
        log_index=n,
        block_number=block,
    )


@pytest.fixture
def store(store_at: StoreAt) -> Iterator[DisputerStore]:
    with DisputerStore(store_at("disputer.sqlite")) as opened:
        yield opened


def test_default_path_is_under_attest_home_and_schema_is_versioned(attest_home: str) -> None:
    with DisputerStore() as s:
        assert s.path == Path(attest_home) / "disputer.sqlite"
        assert s.schema_version() == SCHEMA_VERSION
        assert sqlite3.connect(s.path).execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_newer_schema_and_garbage_files_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "d.sqlite"
    DisputerStore(path).close()
    with sqlite3.connect(path) as db:
        db.execute("INSERT INTO migrations VALUES (?, 'from the future', 'now')", (SCHEMA_VERSION + 1,))
    with pytest.raises(DisputerStateError, match=r"newer than this release reads.*upgrade llm-attest"):
        DisputerStore(path)
    junk = tmp_path / "junk.sqlite"
    junk.write_bytes(b"not a database" * 100)
    with pytest.raises(DisputerStateError, match="not a readable disputer state"):
        DisputerStore(junk)


def test_upsert_is_idempotent_and_follows_a_moved_block(store: DisputerStore) -> None:
    a = made(1, bond=3 * 2**200)  # bonds are uint256: kept exactly as decimal text
    assert store.upsert_made(CHAIN, a, b"\xaa" * 32, True, oov3=OOV3) is True
    assert store.upsert_made(CHAIN, a, b"\xaa" * 32, True, oov3=OOV3) is False
    moved = AssertionMade(**{**a.__dict__, "block_number": 12, "log_index": 7})
    assert store.upsert_made(CHAIN, moved, b"\xbb" * 32, True, oov3=OOV3) is False
    got = store.get(a.assertion_id)
    assert got is not None
    assert (got.block_number, got.block_hash, got.log_index) == (12, b"\xbb" * 32, 7)
    assert got.bond == 3 * 2**200 and got.claim == b"claim 1" and got.status == "new" and got.is_ours
    assert store.made_between(CHAIN, OOV3, 11, 12) == {a.assertion_id: (12, b"\xbb" * 32)}
    assert store.made_between(CHAIN, OOV3.lower(), 13) == {}


def test_an_expiration_past_int64_is_clamped_not_lost(store: DisputerStore) -> None:
    store.upsert_made(CHAIN, made(1, expiration=2**64 - 1), b"\x01" * 32, True, oov3=OOV3)
    got = store.get(made(1).assertion_id)
    assert got is not None and got.expiration_time == MAX_SQLITE_INT


def test_pending_is_ours_and_new_in_chain_order(store: DisputerStore) -> None:
    store.upsert_made(CHAIN, made(3, block=30), b"\x03" * 32, True, oov3=OOV3)
    store.upsert_made(CHAIN, made(1, block=10), b"\x01" * 32, True, oov3=OOV3)
    store.upsert_made(CHAIN, made(2, block=20), b"\x02" * 32, False, oov3=OOV3)  # foreign
    store.upsert_made(5, made(4, block=5), b"\x04" * 32, True, oov3=OOV3)  # another chain
    assert [a.assertion_id[0] for a in store.pending(CHAIN)] == [1, 3]
    store.record_decision(made(1).assertion_id, action="none", reason="looks right", score=0.9)
    assert [a.assertion_id[0] for a in store.pending(CHAIN)] == [3]
    assert [a.assertion_id[0] for a in store.assertions(CHAIN, ours=None)] == [1, 2, 3]


def test_dispute_settle_gone_and_their_undo(store: DisputerStore) -> None:
    a, b = made(1), made(2)
    for x in (a, b):
        store.upsert_made(CHAIN, x, b"\x01" * 32, True, oov3=OOV3)
    disputer = "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC"
    assert store.mark_disputed(a.assertion_id, disputer, b"\xd1" * 32, 15, b"\x15" * 32) is True
    assert store.mark_disputed(a.assertion_id, disputer, b"\xd1" * 32, 16, b"\x16" * 32) is False  # seen again
    assert store.mark_disputed(b"\x09" * 32, disputer, b"\xd1" * 32, 15, b"\x15" * 32) is False  # not stored
    assert store.disputes_between(CHAIN, OOV3, 16, 16) == {a.assertion_id: (16, b"\x16" * 32)}
    got = store.get(a.assertion_id)
    assert got is not None and got.status == "disputed" and got.disputed_by == disputer
    assert store.mark_settled(a.assertion_id, False, b"\x5e" * 32, 20, b"\x20" * 32) is True
    got = store.get(a.assertion_id)
    assert got is not None and got.status == "settled" and got.settled_resolution is False

    assert store.undo_settle(a.assertion_id) is True
    got = store.get(a.assertion_id)
    assert got is not None and got.status == "disputed" and got.settled_tx is None
    assert store.undo_dispute(a.assertion_id) is True
    got = store.get(a.assertion_id)
    assert got is not None and got.status == "new" and got.disputed_by is None

    assert store.mark_gone([b.assertion_id, b"\x09" * 32]) == 1
    assert store.mark_settled(b.assertion_id, True, b"\x5e" * 32, 20, b"\x20" * 32) is False  # gone stays gone
    # ...until its log is seen again: decided before, so it comes back evaluated, not new.
    store.record_decision(b.assertion_id, action="none", reason="fine")
    store.mark_gone([b.assertion_id])
    assert store.upsert_made(CHAIN, b, b"\x02" * 32, True, oov3=OOV3) is True
    got = store.get(b.assertion_id)
    assert got is not None and got.status == "evaluated" and got.block_hash == b"\x02" * 32


def test_a_decision_is_recorded_once(store: DisputerStore) -> None:
    a = made(1)
    with pytest.raises(DisputerStateError, match="must see it before"):
        store.record_decision(a.assertion_id, action="dispute", reason="wrong")
    store.upsert_made(CHAIN, a, b"\x01" * 32, True, oov3=OOV3)
    first = store.record_decision(
        a.assertion_id,
        action="dispute",
        reason="score 0.10 < 0.30",
        score=0.1,
        calibrated=0.12,
        rationale="the answer contradicts chunk 2",
        judge="openai:gpt-x",
        checks={"cid": True, "signature": True},
    )
    second = store.record_decision(a.assertion_id, action="none", reason="changed my mind", score=0.9)
    assert second == first
    # A dry run never replaces a real decision either.
    assert store.record_decision(a.assertion_id, action="none", reason="preview", dry_run=True) == first
    assert (first.action, first.score, first.checks, first.dry_run) == (
        "dispute",
        0.1,
        {"cid": True, "signature": True},
        False,
    )
    assert store.superseded_decisions(a.assertion_id) == []
    got = store.get(a.assertion_id)
    assert got is not None and got.status == "evaluated"
    with pytest.raises(ValueError, match="unknown action"):
        store.record_decision(a.assertion_id, action="explode", reason="")  # type: ignore[arg-type]


def test_a_real_decision_replaces_a_dry_run_one_and_keeps_it(store: DisputerStore) -> None:
    a, b, c = made(1, block=10), made(2, block=11), made(3, block=12)
    for x in (a, b, c):
        store.upsert_made(CHAIN, x, b"\x01" * 32, True, oov3=OOV3)
    preview = store.record_decision(a.assertion_id, action="dispute", reason="dry run: would dispute", dry_run=True)
    again = store.record_decision(a.assertion_id, action="none", reason="second preview", dry_run=True)
    assert again == preview  # one preview is enough: a later dry run does not churn it
    store.record_decision(b.assertion_id, action="none", reason="fine")
    # Dry runs see only what no run decided; real runs also re-decide what only a dry run decided.
    assert [x.assertion_id[0] for x in store.undecided(CHAIN, redecide_dry_runs=False)] == [3]
    assert [x.assertion_id[0] for x in store.undecided(CHAIN, redecide_dry_runs=True)] == [1, 3]
    store.mark_disputed(a.assertion_id, "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC", b"\xd1" * 32, 15, b"\x15" * 32)
    assert [x.assertion_id[0] for x in store.undecided(CHAIN, redecide_dry_runs=True)] == [1, 3]  # still a preview

    real = store.record_decision(a.assertion_id, action="vote", reason="disputed: vote 0", score=0.1, judge="j")
    assert (real.action, real.dry_run, real.score) == ("vote", False, 0.1) and real.id != preview.id
    assert store.decision(a.assertion_id) == real
    assert store.superseded_decisions(a.assertion_id) == [preview]
    assert store.record_decision(a.assertion_id, action="none", reason="late preview", dry_run=True) == real
    assert store.record_decision(a.assertion_id, action="dispute", reason="late real") == real  # still once
    assert [x.assertion_id[0] for x in store.undecided(CHAIN, redecide_dry_runs=True)] == [3]
    summary = store.status_summary(CHAIN)
    assert summary["decisions"]["vote"] == 1 and summary["decisions"]["dispute"] == 0
    assert summary["dry_run_decisions"] == 0


def test_a_v1_state_file_is_migrated_in_place(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite"
    with DisputerStore(path) as s:
        s.upsert_made(CHAIN, made(1), b"\x01" * 32, True, oov3=OOV3)
        s.record_decision(made(1).assertion_id, action="dispute", reason="preview", dry_run=True)
    with sqlite3.connect(path) as db:  # as a release with schema v1 left it
        db.execute("DROP TABLE superseded_decisions")
        db.execute("DROP TABLE chains")  # and what later migrations made
        db.execute("ALTER TABLE assertions DROP COLUMN genesis_hash")
        db.execute("ALTER TABLE txs DROP COLUMN earlier")
        db.execute("DROP TABLE judgements")
        db.execute("DELETE FROM migrations WHERE version > 1")
    with DisputerStore(path) as s:
        assert s.schema_version() == SCHEMA_VERSION
        s.record_decision(made(1).assertion_id, action="none", reason="real")
        (old,) = s.superseded_decisions(made(1).assertion_id)
        assert old.reason == "preview" and old.dry_run


def test_txs_and_votes_of_one_assertion(store: DisputerStore) -> None:
    aid, other = b"\x01" * 32, b"\x02" * 32
    approve = store.tx_intent(aid, "approve")
    store.tx_intent(other, "dispute")
    dispute = store.tx_signed(store.tx_intent(aid, "dispute").id, 4, b"\x44" * 32, b"\x02raw")
    assert store.txs_for(aid) == [approve, dispute] and store.txs_for(b"\x03" * 32) == []
    store.save_salt(aid, round_id=9, request_id=b"\xee" * 32, price=0, salt=5)
    store.save_salt(aid, round_id=7, request_id=b"\xee" * 32, price=0, salt=6)
    assert [v.round_id for v in store.votes_for(aid)] == [7, 9] and store.votes_for(other) == []


def test_outbox_rows_survive_a_restart_and_never_sign_twice(tmp_path: Path) -> None:
    path = tmp_path / "d.sqlite"
    aid = b"\x01" * 32
    with DisputerStore(path) as s:
        row = s.tx_intent(aid, "dispute")
        assert row.status == "intent" and row.raw is None
        assert s.tx_intent(aid, "dispute") == row  # the same row, not a second action
        approve = s.tx_intent(aid, "approve")
        assert approve.id != row.id
        signed = s.tx_signed(row.id, 7, b"\x77" * 32, b"\x02raw-bytes", "0xSender")
        assert (signed.status, signed.nonce, signed.attempts) == ("signed", 7, 1)
        with pytest.raises(DisputerStateError, match="is signed, so it cannot become signed; reconcile"):
            s.tx_signed(row.id, 8, b"\x88" * 32, b"\x02other")
        s.tx_failed(approve.id, "would revert: ERC20: insufficient allowance")
    with DisputerStore(path) as s:  # a restart: what was signed is still there, byte for byte
        assert [(r.kind, r.status) for r in s.open_txs()] == [("dispute", "signed")]
        again = s.tx_intent(aid, "dispute")
        assert (again.status, again.raw, again.tx_hash) == ("signed", b"\x02raw-bytes", b"\x77" * 32)
        assert s.tx_sent(row.id).status == "sent"
        assert s.tx_sent(row.id).status == "sent"  # a re-broadcast of the same bytes
        assert s.tx_dropped(row.id).status == "dropped"
        resigned = s.tx_signed(row.id, 9, b"\x99" * 32, b"\x02new")  # dropped: nothing of it can land
        assert (resigned.attempts, resigned.error) == (2, None)
        assert s.tx_mined(row.id, receipt_status=0).error == "reverted on chain"
        s.tx_signed(row.id, 10, b"\x10" * 32, b"\x02last")
        assert s.tx_mined(row.id).status == "mined"
        with pytest.raises(DisputerStateError, match="is mined"):
            s.tx_failed(row.id, "late")
        assert s.tx_signed(approve.id, 11, b"\x11" * 32, b"\x02a").status == "signed"  # failed may be retried
        assert [r.kind for r in s.open_txs()] == ["approve"]
        with pytest.raises(DisputerStateError, match="no outbox row"):
            s.tx(999)


def test_salts_are_kept_before_commit_and_never_replaced(store: DisputerStore) -> None:
    aid = b"\x01" * 32
    salt = 2**254 + 12345
    first = store.save_salt(aid, round_id=3, request_id=b"\xee" * 32, price=10**18, salt=salt)
    assert (first.phase, first.salt, first.price) == ("salted", salt, 10**18)
    assert store.save_salt(aid, round_id=3, request_id=b"\xee" * 32, price=0, salt=1) == first
    with pytest.raises(DisputerStateError, match="save its salt and commit first"):
        store.vote_revealed(aid, 3, b"\x01" * 32)
    assert store.vote_committed(aid, 3, b"\xc0" * 32).phase == "committed"
    assert store.vote_revealed(aid, 3, b"\xe1" * 32).revealed_tx == b"\xe1" * 32
    store.save_salt(aid, round_id=4, request_id=b"\xee" * 32, price=10**18, salt=99)  # a rolled vote: new round
    latest = store.vote(aid)
    assert latest is not None and (latest.round_id, latest.salt, latest.phase) == (4, 99, "salted")
    older = store.vote(aid, 3)
    assert older is not None and older.phase == "revealed" and older.salt == salt
    assert store.vote(b"\x02" * 32) is None


def test_checkpoint_history_rewinds_and_status_summary(store: DisputerStore) -> None:
    assert store.checkpoint(CHAIN, OOV3) is None
    for n in (10, 20, 30):
        store.save_checkpoint(CHAIN, OOV3, n, bytes([n]) * 32)
    cp = store.checkpoint(CHAIN, OOV3.lower())
    assert cp is not None and (cp.block_number, cp.block_hash) == (30, bytes([30]) * 32)
    store.save_checkpoint(CHAIN, OOV3, 15, b"\x15" * 32)  # healed back past a reorg: 20 and 30 were on the fork
    assert store.checkpoint_history(CHAIN, OOV3) == [(15, b"\x15" * 32), (10, bytes([10]) * 32)]

    store.upsert_made(CHAIN, made(1), b"\x01" * 32, True, oov3=OOV3)
    store.upsert_made(CHAIN, made(2), b"\x01" * 32, False, oov3=OOV3)
    store.record_decision(made(1).assertion_id, action="dispute", reason="wrong", dry_run=True)
    store.tx_intent(made(1).assertion_id, "dispute")
    summary = store.status_summary(CHAIN)
    healed = store.checkpoint(CHAIN, OOV3)
    assert healed is not None
    assert summary["checkpoints"] == [
        {"oov3": OOV3.lower(), "block_number": 15, "block_hash": "0x" + "15" * 32, "updated_at": healed.updated_at}
    ]
    assert summary["ours"]["evaluated"] == 1 and summary["ours"]["new"] == 0
    assert summary["all"]["new"] == 1 and summary["all"]["evaluated"] == 1
    assert summary["decisions"]["dispute"] == 1 and summary["dry_run_decisions"] == 1
    assert summary["txs"]["intent"] == 1 and summary["votes"]["salted"] == 0
    assert store.status_summary(1)["all"]["new"] == 0


def test_a_failing_transaction_leaves_nothing_behind(store: DisputerStore) -> None:
    with pytest.raises(RuntimeError), store.transaction():
        store.upsert_made(CHAIN, made(1), b"\x01" * 32, True, oov3=OOV3)
        store.save_checkpoint(CHAIN, OOV3, 10, b"\x10" * 32)
        raise RuntimeError("crash between the events and the checkpoint")
    assert store.get(made(1).assertion_id) is None and store.checkpoint(CHAIN, OOV3) is None


def test_a_reset_chain_retires_what_was_seen_on_its_earlier_history(store: DisputerStore) -> None:
    first, second = b"\x01" * 32, b"\x02" * 32
    assert store.follow_chain(CHAIN, first) == 0
    store.upsert_made(CHAIN, made(1), b"\x10" * 32, True, oov3=OOV3)
    store.upsert_made(CHAIN, made(2), b"\x10" * 32, True, oov3=OOV3)
    store.mark_settled(made(2).assertion_id, True, b"\x22" * 32, 11, b"\x11" * 32)
    store.save_checkpoint(CHAIN, OOV3, 12, b"\x12" * 32)
    dispute = store.tx_intent(made(1).assertion_id, "dispute")
    store.tx_signed(dispute.id, 0, b"\x44" * 32, b"\x02dispute", sender="0x" + "22" * 20)
    assert store.follow_chain(CHAIN, first) == 0  # the same history: nothing changes
    assert store.get(made(1).assertion_id).status == "new"  # type: ignore[union-attr]

    assert store.follow_chain(CHAIN, second) == 1  # the devnet was reset
    assert store.get(made(1).assertion_id).status == "gone"  # type: ignore[union-attr]
    assert store.get(made(2).assertion_id).status == "settled"  # type: ignore[union-attr]  # history, kept
    (row,) = store.txs_for(made(1).assertion_id)
    assert (row.status, row.error) == ("failed", "its chain is gone")  # its bytes are never rebroadcast
    assert store.checkpoint(CHAIN, OOV3) is None and store.checkpoint_history(CHAIN, OOV3) == []
    assert store.assertions(CHAIN, statuses=("new", "evaluated", "disputed")) == []  # no budget, no job holds it
    store.upsert_made(CHAIN, made(3), b"\x10" * 32, True, oov3=OOV3)  # seen on the new history
    assert store.follow_chain(CHAIN, second) == 0
    assert store.get(made(3).assertion_id).status == "new"  # type: ignore[union-attr]
    assert store.follow_chain(CHAIN + 1, first) == 0  # another chain id is its own
