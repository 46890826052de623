"""The stores on both backends (SQLite files, a real PostgreSQL server), and what only PostgreSQL has: a URL,
a password from the environment, a server that may be down, several processes starting at once."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest

from attest.batch.anchors import AnchorBook
from attest.batch.store import BatchBook
from attest.chain.tx import SignedTx
from attest.config import load_config
from attest.errors import ConfigError, DisputerStateError, LedgerError, StorageError
from attest.flow.pairs import add_preference, create_pair, current_preference
from attest.ledger import Ledger
from attest.storage import Migration, Postgres, open_database
from attest.ui.pages import mine_view
from attest.units import format_units
from disputer.judgequeue import install_schema
from disputer.store import SCHEMA_VERSION, DisputerStore
from disputer.store.schema import MIGRATIONS
from tests.support.ports import free_port
from tests.support.postgres import PostgresServer, StoreAt

ACCOUNT = "0x" + "11" * 20


def begin(ledger: Ledger, *, genesis: str | None = "0xg1") -> int:
    return ledger.begin(
        network="devnet", chain_id=31337, account="dev", asserter=ACCOUNT, query="q?", record=b"\x00\xffrecord",
        digest="0x" + "ab" * 32, want_assert=True,
        plan={"oov3": "0xO", "currency": "0xC", "bond": 2**200, "liveness": 7200, "bond_decimals": 18},
        genesis_hash=genesis,
    )  # fmt: skip


def test_the_ledger_reads_back_what_it_wrote(store_at: StoreAt) -> None:
    with Ledger(store_at("ledger.sqlite")) as ledger:
        first, second = begin(ledger), begin(ledger, genesis=None)
        assert second == first + 1
        ledger.update(first, "pinned", {"cid": "bafy"}, status="pinned", cid="bafy", pins=[{"name": "kubo"}])
        a = ledger.find("bafy")
        assert (a.id, a.status, a.record, a.bond, a.pins, a.want_assert) == (
            first, "pinned", b"\x00\xffrecord", 2**200, [{"name": "kubo"}], True,
        )  # fmt: skip
        assert [s.step for s in ledger.steps(first)] == ["signed", "pinned"]
        assert [x.id for x in ledger.select(statuses=("signed",))] == [second]
        # A NULL genesis matches NULL, a hash matches only itself (IS NOT DISTINCT FROM on both backends).
        wanted = {"chain_id": 31337, "asserter": ACCOUNT.upper(), "oov3": "0xo", "currency": "0xc"}
        assert [x.id for x in ledger.to_assert(genesis_hash="0xg1", **wanted)] == [first]
        assert ledger.to_assert(genesis_hash=None, **wanted) == []
        with pytest.raises(LedgerError, match="no attestation #99"):
            ledger.get(99)


def test_a_batch_takes_each_queued_record_once(store_at: StoreAt) -> None:
    with Ledger(store_at("ledger.sqlite")) as ledger:
        book = BatchBook(ledger.database)
        ids = [begin(ledger) for _ in range(3)]
        for i in ids:
            ledger.update(i, "pinned", status="pinned", cid=f"bafy{i}")
            book.queue(i)
        plan = {"bond": 2**200}
        batch = book.create(network="devnet", chain_id=1, account="dev", asserter=ACCOUNT, plan=plan, limit=2)
        assert batch is not None and [m.attestation_id for m in book.members(batch.id)] == ids[:2]
        rest = book.create(network="devnet", chain_id=1, account="dev", asserter=ACCOUNT, plan=plan, limit=2)
        assert (
            rest is not None
            and rest.id == batch.id + 1
            and [m.attestation_id for m in book.members(rest.id)] == [ids[2]]
        )
        assert book.create(network="devnet", chain_id=1, account="dev", asserter=ACCOUNT, plan=plan, limit=2) is None


def test_the_same_record_twice_is_one_leaf_and_both_rows_follow_it(store_at: StoreAt) -> None:
    """Two servers answering one question in the same microsecond sign the same bytes: one claim, one leaf."""
    with Ledger(store_at("ledger.sqlite")) as ledger:
        book = BatchBook(ledger.database)
        ids = [begin(ledger) for _ in range(4)]
        for i, cid in zip(ids, ("bafysame", "bafyother", "bafysame", "bafysame"), strict=True):
            ledger.update(i, "pinned", status="pinned", cid=cid)
        for i in ids[:3]:
            book.queue(i)
        plan = {"bond": 2**200}
        batch = book.create(network="devnet", chain_id=1, account="dev", asserter=ACCOUNT, plan=plan, limit=10)
        assert batch is not None and batch.count == 2
        assert [(m.attestation_id, m.cid) for m in book.members(batch.id)] == [
            (ids[0], "bafysame"),
            (ids[1], "bafyother"),
        ]
        # The same record queued after its leaf was batched joins that batch; no new batch is made for it.
        book.queue(ids[3])
        assert book.create(network="devnet", chain_id=1, account="dev", asserter=ACCOUNT, plan=plan, limit=10) is None
        rows = {a.id: a for a in ledger.select()}
        assert all(rows[i].batch_id == batch.id for i in ids)
        assert [rows[i].leaf_index for i in ids] == [0, 1, None, None]
        book.update(batch.id, records_status="asserted", assertion_id="0x" + "ab" * 32)
        assert {a.status for a in ledger.select()} == {"asserted"}


def test_stakes_read_a_batch_plan_on_both(store_at: StoreAt) -> None:
    """`Ledger.stakes` reads each batch's plan (JSON) on both backends, and a plan without the currency's
    decimals and symbol takes them from the latest single ask in that currency on that network."""
    with Ledger(store_at("ledger.sqlite")) as ledger:
        book = BatchBook(ledger.database)
        single = begin(ledger)
        ledger.update(single, "asserted", status="asserted", assertion_id="0x" + "01" * 32)
        ledger.update(single, "settled", status="settled", outcome="attested")
        ids = [begin(ledger) for _ in range(2)]
        for i in ids:
            ledger.update(i, "pinned", status="pinned", cid=f"bafy{i}")
            book.queue(i)
        plan = {"currency": "0xC", "bond": 3 * 10**30, "bond_symbol": "BIG"}  # no decimals: the ledger's ask has
        batch = book.create(network="devnet", chain_id=1, account="dev", asserter=ACCOUNT, plan=plan, limit=5)
        assert batch is not None
        book.update(batch.id, records_status="asserted", assertion_id="0x" + "02" * 32)
        with ledger.transaction() as db:  # a record of an older release, without the currency's decimals
            db.execute("UPDATE attestations SET bond_decimals = NULL WHERE id = ?", (ids[1],))
        stakes = ledger.stakes()
        assert ledger.stakes(network="elsewhere") == []
    assert [(s.assertion_id[-2:], s.currency, s.bond, s.decimals, s.symbol, s.batch_id) for s in stakes] == [
        ("01", "0xC", 2**200, 18, None, None),
        ("02", "0xC", 3 * 10**30, 18, "BIG", batch.id),  # counted once, by its first record
    ]  # fmt: skip
    assert stakes[0].outcome == "attested" and stakes[0].ended_at is not None and stakes[1].ended_at is None


def test_a_failed_write_leaves_nothing_on_both(store_at: StoreAt) -> None:
    with Ledger(store_at("ledger.sqlite")) as ledger:
        with pytest.raises(RuntimeError), ledger.transaction():
            begin(ledger)
            raise RuntimeError("the caller fails half-way")
        assert ledger.select() == []


# -- PostgreSQL only ------------------------------------------------------------------------------------------
RACER = """
import sys, time
from attest.storage import Postgres
from disputer.store import DisputerStore
while time.time() < float(sys.argv[2]):
    time.sleep(0.005)
with DisputerStore(Postgres(sys.argv[1])) as store:
    print(store.schema_version())
"""


def test_processes_starting_together_migrate_once(postgres_url: str) -> None:
    start = time.time() + 1.5  # every process is up and waiting by then, so they open the database together
    racers = [
        subprocess.Popen([sys.executable, "-c", RACER, postgres_url, str(start)], stdout=subprocess.PIPE, text=True)
        for _ in range(4)
    ]
    outputs = [r.communicate(timeout=120)[0].strip() for r in racers]
    assert [r.returncode for r in racers] == [0] * 4
    assert outputs == [str(SCHEMA_VERSION)] * 4
    with DisputerStore(Postgres(postgres_url)) as store:
        rows = store._db.execute("SELECT version, name FROM migrations ORDER BY version").fetchall()
    assert [(r[0], r[1]) for r in rows] == [(i + 1, m.name) for i, m in enumerate(MIGRATIONS)]


def test_an_older_schema_is_upgraded_and_a_newer_refused(postgres_url: str, caplog: pytest.LogCaptureFixture) -> None:
    where = Postgres(postgres_url)
    older = open_database(where, MIGRATIONS[:2], what="disputer state", error=DisputerStateError, schema="disputer")
    older.conn.execute(
        "INSERT INTO checkpoints VALUES (?, ?, ?, ?, ?)", (31337, "0xo", 12, b"\x12" * 32, "2026-01-01T00:00:00Z")
    )
    older.close()
    with DisputerStore(where) as store:
        assert store.schema_version() == SCHEMA_VERSION
        assert store.checkpoint(31337, "0xO") is not None
        store._db.execute("INSERT INTO migrations VALUES (?, ?, ?)", (SCHEMA_VERSION + 1, "from the future", "now"))
    assert f"from schema v2 to v{SCHEMA_VERSION}" in caplog.text
    with pytest.raises(DisputerStateError, match=f"has schema v{SCHEMA_VERSION + 1}, newer .* upgrade llm-attest"):
        DisputerStore(where)


def test_a_failing_migration_applies_none_of_itself(postgres_url: str) -> None:
    where = Postgres(postgres_url)
    broken = [
        Migration("one", "CREATE TABLE one(x INTEGER)"),
        Migration("two", "CREATE TABLE two(x INTEGER); INSERT INTO two VALUES (1); SELECT * FROM missing"),
    ]
    with pytest.raises(LedgerError, match=r"cannot be upgraded to schema v2 \(two\): relation .missing") as caught:
        open_database(where, broken, what="test", error=LedgerError, schema="test")
    assert "\n" not in str(caught.value) and "LINE" not in str(caught.value)
    db = open_database(where, broken[:1], what="test", error=LedgerError, schema="test")
    assert db.schema_version() == 1
    assert db.conn.execute("SELECT to_regclass('test.two')").fetchone()[0] is None  # not half of "two"
    db.close()


def test_a_wrong_password_port_or_database_is_one_line_without_the_password(
    postgres_server: PostgresServer, postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ATTEST_DB_PASSWORD", "not-the-secret-9f3a")
    with pytest.raises(StorageError, match="password authentication failed") as wrong:
        Ledger(Postgres(postgres_url))
    monkeypatch.setenv("ATTEST_DB_PASSWORD", postgres_server.password)
    with pytest.raises(StorageError, match=r"refused|failed") as down:
        Ledger(Postgres(postgres_server.url("t1", port=free_port())))
    with pytest.raises(StorageError, match="does not exist") as nodb:
        Ledger(Postgres(postgres_server.url("no_such_db")))
    for err in (wrong, down, nodb):
        text = str(err.value)
        assert "\n" not in text and "not-the-secret" not in text and postgres_server.password not in text
        assert "ATTEST_DB_PASSWORD" in text and text.startswith("cannot connect to the ledger at postgresql://")


def test_a_url_with_a_password_is_refused_without_echoing_it(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    for url in ("postgresql://attest:hunter2secret@db/attest", "postgresql://attest@db/attest?password=hunter2secret"):
        config.write_text(f'[storage]\nurl = "{url}"\n')
        with pytest.raises(ConfigError, match=r"holds a password; .* ATTEST_DB_PASSWORD") as caught:
            load_config(config)
        assert "hunter2secret" not in str(caught.value) and "\n" not in str(caught.value)
    with pytest.raises(StorageError, match="holds a password") as caught:
        Ledger(Postgres("postgresql://attest:hunter2secret@127.0.0.1:1/attest"))
    assert "hunter2secret" not in str(caught.value)
    config.write_text('[storage]\nurl = "mysql://attest@db/attest"\n')
    with pytest.raises(ConfigError, match="postgresql://"):
        load_config(config)
    config.write_text('[storage]\nurl = "postgresql://attest@db:5432/attest"\n')
    assert load_config(config).storage.location("ledger.sqlite") == Postgres("postgresql://attest@db:5432/attest")


def test_the_configured_server_is_where_the_stores_open(
    postgres_url: str, attest_home: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    Path(attest_home, "config.toml").write_text(f'[storage]\nurl = "{postgres_url}"\n')
    with Ledger() as ledger, DisputerStore() as store:
        begin(ledger)
        assert ledger.path == store.path == Postgres(postgres_url)
    with psycopg.connect(postgres_url, password=os.environ["ATTEST_DB_PASSWORD"]) as conn:
        count = conn.execute("SELECT count(*) FROM ledger.attestations").fetchone()
        schemas = conn.execute("SELECT count(*) FROM disputer.migrations").fetchone()
    assert count == (1,) and schemas == (SCHEMA_VERSION,)
    assert not Path(attest_home, "ledger.sqlite").exists()
    monkeypatch.setenv("PGPASSWORD", os.environ.pop("ATTEST_DB_PASSWORD"))  # libpq's own variable works too
    with Ledger() as ledger:
        assert len(ledger.select()) == 1


def test_the_dashboards_mine_page_reads_the_configured_server(postgres_url: str, attest_home: str) -> None:
    Path(attest_home, "config.toml").write_text(f'[storage]\nurl = "{postgres_url}"\n')
    with Ledger() as ledger:
        first = begin(ledger)
        ledger.update(first, "asserted", status="asserted", assertion_id="0x" + "01" * 32)
    mine = mine_view("devnet", None, lambda _: None)
    assert [a.id for a in mine.attestations] == [first] and mine.at_stake == {"0xC": format_units(2**200, 18)}


def doctor(*args: str) -> tuple[list[dict[str, str]], str]:
    attest = str(Path(sys.executable).with_name("attest"))
    result = subprocess.run([attest, "doctor", "--json", *args], capture_output=True, text=True, timeout=180)
    checks = json.loads(result.stdout)["checks"] if result.stdout.strip() else []
    return checks, result.stdout + result.stderr


def test_doctor_checks_the_database(
    postgres_server: PostgresServer, postgres_url: str, attest_home: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    Path(attest_home, "config.toml").write_text(f'[storage]\nurl = "{postgres_url}"\n')
    checks, _ = doctor()
    storage = {c["name"]: (c["status"], c["detail"]) for c in checks[:4]}
    assert storage["database"][0] == "pass" and "PostgreSQL 1" in storage["database"][1]
    assert storage["ledger schema"] == ("warn", "not created yet; the next command that opens it migrates it")
    assert storage["database writes"][0] == "pass"
    queue = next(c for c in checks if c["name"] == "judge queue")
    assert queue["status"] == "pass" and queue["detail"].startswith("not made yet")
    install_schema(Postgres(postgres_url))  # as the first `disputer run --workers` does
    queue = next(c for c in doctor()[0] if c["name"] == "judge queue")
    assert queue["detail"] == "0 judge job(s) waiting, 0 running"
    Ledger().close()  # the first command makes the ledger's schema
    with psycopg.connect(postgres_url, password=postgres_server.password) as conn:
        conn.execute("DELETE FROM ledger.migrations WHERE version > 2")  # as an older release left it
    checks, _ = doctor()
    assert checks[1]["name"] == "ledger schema" and checks[1]["status"] == "warn"
    assert checks[1]["detail"].startswith("v2, older than v")
    with postgres_server.admin(postgres_url.rsplit("/", 1)[1]) as admin:  # a user that may read but not write
        admin.execute("CREATE ROLE reader LOGIN PASSWORD 'reader-pw-77'")
        admin.execute("GRANT USAGE ON SCHEMA ledger TO reader")
        admin.execute("GRANT SELECT ON ALL TABLES IN SCHEMA ledger TO reader")
    Path(attest_home, "config.toml").write_text(f'[storage]\nurl = "{postgres_url.replace("attest@", "reader@")}"\n')
    monkeypatch.setenv("ATTEST_DB_PASSWORD", "reader-pw-77")
    checks, _ = doctor()
    writes = next(c for c in checks if c["name"] == "database writes")
    assert writes["status"] == "fail" and "permission denied" in writes["detail"]
    queue = next(c for c in checks if c["name"] == "judge queue")
    assert queue["status"] == "warn" and "permission denied for schema judge_queue" in queue["detail"]
    monkeypatch.setenv("ATTEST_DB_PASSWORD", "wrong-secret-5150")
    checks, output = doctor()
    assert checks[0]["name"] == "database" and checks[0]["status"] == "fail"
    assert "password authentication failed" in checks[0]["detail"] and "wrong-secret" not in output


def test_both_clis_say_a_wrong_password_in_one_line(
    postgres_url: str, attest_home: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    Path(attest_home, "config.toml").write_text(f'[storage]\nurl = "{postgres_url}"\n')
    monkeypatch.setenv("ATTEST_DB_PASSWORD", "wrong-secret-8086")
    for command in (["attest", "list"], ["disputer", "status", "--network", "local"]):
        result = subprocess.run(
            [str(Path(sys.executable).with_name(command[0])), *command[1:]], capture_output=True, text=True, timeout=60
        )
        assert result.returncode == 1, result.stderr
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and "password authentication failed" in lines[0], result.stderr
        assert "wrong-secret" not in result.stdout + result.stderr


def test_a_lost_connection_fails_its_statement_and_the_next_one_reconnects(
    postgres_server: PostgresServer, postgres_url: str
) -> None:
    """A server restart or fail-over ends every session: the statement that meets it fails (nothing of its
    transaction is kept), and the store goes on on a new connection, never finishing a transaction half-way."""

    def kill_sessions() -> None:
        with postgres_server.admin() as admin:
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
                (postgres_url.rsplit("/", 1)[1],),
            )

    with Ledger(Postgres(postgres_url)) as ledger:
        first = begin(ledger)
        kill_sessions()
        with pytest.raises(LedgerError, match=r"terminat|closed|lost"), ledger.transaction():
            begin(ledger)
        with pytest.raises(LedgerError), ledger.transaction():
            begin(ledger)
            kill_sessions()
            ledger.update(first, "half-way", status="failed")
        assert [(a.id, a.status) for a in ledger.select()] == [(first, "signed")]
        assert begin(ledger) > first  # and writes again


def test_cancel_a_chain_reset_and_pairs_on_both(store_at: StoreAt) -> None:
    with Ledger(store_at("ledger.sqlite")) as ledger:
        kept, gone, dropped = begin(ledger), begin(ledger), begin(ledger)
        signed = SignedTx("settle", 7, "0x" + "cd" * 32, b"\x02raw")
        row = ledger.tx_record_signed(ledger.tx_intent(gone, "assert"), signed, ACCOUNT)
        assert (row.status, row.nonce, row.raw, row.hash_hex) == ("signed", 7, b"\x02raw", signed.tx_hash)
        assert [r.id for r, _a in ledger.in_flight(chain_id=31337, genesis_hash="0xg1", asserter=ACCOUNT)] == [row.id]
        assert ledger.match_chain(ledger.get(gone), "0xg2").status == "orphaned"
        assert ledger.txs(gone)[0].status == "failed"
        assert ledger.cancel(dropped, "changed my mind", unsent=False)
        assert ledger.reopen(dropped).status == "signed"
        pair = create_pair(ledger, kept, dropped)
        first = add_preference(ledger, pair_id=pair, ranker="r", choice="first", record=b"p", cid="c1", supersedes=None)
        with pytest.raises(LedgerError):  # one preference per (pair, ranker, superseded), on both
            add_preference(ledger, pair_id=pair, ranker="r", choice="second", record=b"p", cid="c2", supersedes=None)
        later = add_preference(
            ledger, pair_id=pair, ranker="r", choice="second", record=b"q", cid="c3", supersedes="c1"
        )
        assert later > first
        current = current_preference(ledger, pair, "r")
        assert current is not None and current.cid == "c3"
        # Anchoring claims the preferences once and logs its transaction (migration 8's tables), on both.
        anchors = AnchorBook(ledger.database)
        leaves = [(first, "0x" + "11" * 32), (later, "0x" + "22" * 32)]
        anchor = anchors.create(leaves, network="devnet", chain_id=31337, registry="0xreg", ranker="r")
        assert anchor is not None and anchor.count == 2
        assert anchors.create(leaves, network="devnet", chain_id=31337, registry="0xreg", ranker="r") is None
        sent = anchors.tx_record_signed(anchors.tx_intent(anchor.id, "anchor"), signed, "r")
        assert (sent.subject, sent.status, sent.raw) == (anchor.id, "signed", b"\x02raw")


BATCHER = """
import sys
from attest.batch.store import BatchBook
from attest.ledger import Ledger
from attest.storage import Postgres
with Ledger(Postgres(sys.argv[1])) as ledger:
    book = BatchBook(ledger.database)
    made = 0
    while book.create(network="devnet", chain_id=1, account="dev", asserter="0x", plan={}, limit=2) is not None:
        made += 1
    print(made)
"""


def test_writers_on_two_processes_queue_like_on_sqlite(postgres_url: str) -> None:
    """Forming a batch reads the queued records and then moves them: the store's write lock makes the two one
    step, so two processes batching the same queue put each record in exactly one batch."""
    with Ledger(Postgres(postgres_url)) as ledger:
        book = BatchBook(ledger.database)
        ids = [begin(ledger) for _ in range(30)]
        for i in ids:
            ledger.update(i, "pinned", status="pinned", cid=f"bafy{i}")
            book.queue(i)
        batchers = [
            subprocess.Popen([sys.executable, "-c", BATCHER, postgres_url], stdout=subprocess.PIPE, text=True)
            for _ in range(3)
        ]
        made = [int(b.communicate(timeout=120)[0]) for b in batchers]
        batches = book.select()
        assert sum(made) == len(batches) == 15
        assert sum(b.count for b in batches) == 30
        members = [m.attestation_id for b in batches for m in book.members(b.id)]
        assert sorted(members) == ids
