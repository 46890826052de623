"""The disputer's leader killed with SIGKILL at random moments while it judges on the queue (`disputer run
--workers 0`, two `disputer worker` processes that live on) and assertions keep arriving: afterwards every
assertion of ours has exactly one decision, every wrong one is disputed exactly once on chain and no honest one,
no outbox row is left open, and no decision was logged twice across the lives (issue 23's leader fault row).

The asserter, the daemon process and the offline judge are the chaos test's; the state and the queue are on this
test's PostgreSQL database."""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from pathlib import Path

from attest.accounts import dev_account
from attest.chain.oov3 import AssertionDisputed
from attest.connect import connect
from attest.storage import Postgres
from disputer.store import DisputerStore
from tests.conftest import LocalChain
from tests.test_chaos import CHAOS_CONFIG, Asserter, Daemon, log_lines, waiting_for

TOTAL = 60
KILLS = 4
LEADER = ("run", "--workers", "0")


def _worker_started(log: Path) -> bool:
    return any(line.get("msg") == "judge worker started" for line in log_lines(log))


def test_the_leader_killed_at_random_moments_on_the_queue_misses_nothing_and_disputes_once(
    local_chain: LocalChain, tmp_path: Path, postgres_url: str
) -> None:
    ctx = connect("local")
    asserter = Asserter(local_chain, ctx, dev_account(1), seed=31)
    asserter.fund(dev_account(2).address, TOTAL)
    rng = random.Random(31)
    planned = [asserter.plan(rng.random() >= 0.3) for _ in range(TOTAL)]
    (local_chain.home / "config.toml").write_text(f'[storage]\nurl = "{postgres_url}"\n\n' + CHAOS_CONFIG)
    workers = [Daemon(local_chain.home, tmp_path / f"worker-{i}.log", None, args=("worker",)) for i in range(2)]
    logs: list[Path] = []
    try:
        deadline = time.monotonic() + 60
        while not all(_worker_started(w.log) for w in workers):
            assert all(w.proc.poll() is None for w in workers), [w.log.read_text()[-2000:] for w in workers]
            assert time.monotonic() < deadline, "the workers did not start"
            time.sleep(0.1)
        # Each killed life brings a share of the assertions, sent while it runs.
        for i, share in enumerate(planned[i::KILLS] for i in range(KILLS)):
            logs.append(tmp_path / f"leader-{i}.log")
            leader = Daemon(local_chain.home, logs[-1], None, args=LEADER)
            feeder = threading.Thread(target=asserter.assert_batch, args=(share,))
            feeder.start()
            if leader.wait_started():
                time.sleep(rng.uniform(0.5, 2.5))
            assert leader.kill(), f"life {i} ended before its kill:\n{logs[-1].read_text()[-2000:]}"
            feeder.join()
        logs.append(tmp_path / "leader-final.log")
        leader = Daemon(local_chain.home, logs[-1], None, args=LEADER)
        try:
            assert leader.wait_started(), logs[-1].read_text()[-3000:]
            with DisputerStore(Postgres(postgres_url)) as store:
                deadline = time.monotonic() + 120
                while (waiting := waiting_for(store, asserter, ctx)) is not None:
                    assert leader.proc.poll() is None, logs[-1].read_text()[-3000:]
                    assert time.monotonic() < deadline, f"the disputer did not catch up: {waiting}"
                    time.sleep(0.2)
        except BaseException:
            leader.kill()
            raise
        assert leader.stop() == 0, logs[-1].read_text()[-3000:]
    finally:
        codes = [w.stop() if w.proc.poll() is None else w.proc.returncode for w in workers]
    assert codes == [0, 0], [w.log.read_text()[-2000:] for w in workers]

    made = asserter.made
    wrong = {aid for aid, honest in made.items() if not honest}
    with DisputerStore(Postgres(postgres_url)) as store:
        assert {a.assertion_id for a in store.assertions(ctx.chain_id, ours=True)} == set(made)
        for aid, honest in made.items():
            decision = store.decision(aid)
            assert decision is not None and decision.action == ("none" if honest else "dispute"), (aid.hex(), decision)
        assert store.open_txs() == []
    disputes = Counter(
        e.assertion_id
        for e in ctx.oov3.events_between(0, int(ctx.w3.eth.block_number))
        if isinstance(e, AssertionDisputed)
    )
    assert max(disputes.values()) == 1 and set(disputes) == wrong
    lines = [line for log in logs for line in log_lines(log)]
    decided = Counter(str(line["assertion"]) for line in lines if line["msg"] == "decided")
    assert max(decided.values()) == 1 and len(decided) == len(made)
    judged = sum(1 for w in workers for line in log_lines(w.log) if line.get("msg") == "judged")
    print(f"\nleader chaos on the queue: {len(made)} assertions ({len(wrong)} wrong), {KILLS} kills, {judged} judged")
