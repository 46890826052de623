"""PostgreSQL stopped for 10 s while `disputer run` keeps its state there and assertions keep arriving (issue 23's
fault row): the daemon rides the outage out (each pass that meets it fails whole and is tried again), and
afterwards every assertion of ours has exactly one decision, every wrong one is disputed exactly once on chain,
no honest one is, and no outbox row is left open.

The server is this test's own (the session's is shared by other tests); the daemon is the real console script,
the asserter the chaos test's (signed records in the local store, assertTruth sent as raw transactions)."""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from attest.accounts import dev_account
from attest.chain.oov3 import AssertionDisputed
from attest.connect import connect
from attest.storage import Postgres
from attest.storage.postgres import PASSWORD_ENV
from disputer.store import DisputerStore
from tests.conftest import LocalChain
from tests.support.postgres import PostgresServer, running_server
from tests.test_chaos import CHAOS_CONFIG, Asserter, Daemon, log_lines, waiting_for

OUTAGE_S = 10.0
TOTAL = 60


@pytest.fixture
def own_server() -> Iterator[PostgresServer]:
    with running_server() as server:
        yield server


def test_postgres_stopped_for_10_s_mid_run_misses_nothing_and_disputes_once(
    local_chain: LocalChain, own_server: PostgresServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = own_server.new_database()
    monkeypatch.setenv(PASSWORD_ENV, own_server.password)  # the daemon inherits it
    ctx = connect("local")
    asserter = Asserter(local_chain, ctx, dev_account(1), seed=23)
    asserter.fund(dev_account(2).address, TOTAL)
    rng = random.Random(23)
    planned = [asserter.plan(rng.random() >= 0.3) for _ in range(TOTAL)]
    (local_chain.home / "config.toml").write_text(f'[storage]\nurl = "{url}"\n\n' + CHAOS_CONFIG)
    log = tmp_path / "disputer.log"
    daemon = Daemon(local_chain.home, log, None)
    try:
        assert daemon.wait_started(), log.read_text()[-3000:]
        asserter.assert_batch(planned[: TOTAL // 3])
        with DisputerStore(Postgres(url)) as store:
            deadline = time.monotonic() + 60
            while sum(store.status_summary(ctx.chain_id)["decisions"].values()) == 0:
                assert time.monotonic() < deadline, "nothing decided before the outage"
                time.sleep(0.2)
        # The outage: the server stops (every session cut) while the next third of the assertions arrives.
        own_server.pause()
        stopped = time.monotonic()
        feeder = threading.Thread(target=asserter.assert_batch, args=(planned[TOTAL // 3 : 2 * TOTAL // 3],))
        feeder.start()
        feeder.join()
        time.sleep(max(0.0, OUTAGE_S - (time.monotonic() - stopped)))
        assert daemon.proc.poll() is None, f"the daemon ended in the outage:\n{log.read_text()[-3000:]}"
        own_server.resume()
        asserter.assert_batch(planned[2 * TOTAL // 3 :])
        with DisputerStore(Postgres(url)) as store:
            deadline = time.monotonic() + 90
            while (waiting := waiting_for(store, asserter, ctx)) is not None:
                assert daemon.proc.poll() is None, log.read_text()[-3000:]
                assert time.monotonic() < deadline, f"the disputer did not catch up after the outage: {waiting}"
                time.sleep(0.2)
    except BaseException:
        daemon.kill()
        raise
    assert daemon.stop() == 0, log.read_text()[-3000:]

    lines = log_lines(log)
    # The outage was seen (so the test could fail), and told as passes that failed, not as a crash.
    failed = [line for line in lines if line.get("level") == "warning" and "failed" in str(line["msg"])]
    assert failed, "the daemon never met the outage"
    made = asserter.made
    wrong = {aid for aid, honest in made.items() if not honest}
    with DisputerStore(Postgres(url)) as store:
        assert {a.assertion_id for a in store.assertions(ctx.chain_id, ours=True)} == set(made)
        for aid, honest in made.items():
            decision = store.decision(aid)
            assert decision is not None and decision.action == ("none" if honest else "dispute"), (aid.hex(), decision)
        assert store.open_txs() == []
        assert sum(store.status_summary(ctx.chain_id)["decisions"].values()) == len(made)
    disputes = Counter(
        e.assertion_id
        for e in ctx.oov3.events_between(0, int(ctx.w3.eth.block_number))
        if isinstance(e, AssertionDisputed)
    )
    assert max(disputes.values(), default=0) == 1
    assert set(disputes) == wrong
    decided = Counter(str(line["assertion"]) for line in lines if line["msg"] == "decided")
    assert max(decided.values()) == 1 and len(decided) == len(made)
    print(f"\npostgres outage: {len(made)} assertions ({len(wrong)} wrong), {len(failed)} failed passes logged")
