"""`kill -9` of `attest serve` in the middle of a load of 64 concurrent clients, then a restart: every record
whose answer reached a client is pinned, in the ledger and in exactly one asserted batch; none lost, none
asserted twice (real process, real HTTP, real devnet; docs/reliability.md)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from attest.config import Config
from attest.flow.ask import AskRequest
from attest.flow.attester import Attester
from attest.ledger import Ledger
from tests.conftest import LocalChain
from tests.support.serve import serving
from tests.support.serve_load import Load, Server, drive, landed, statuses, wait_until_landed
from tests.test_ask import KB_DOCS, QUESTION, ok, oov3

CONFIG = """
[serve]
assert = "batch"
rate_per_s = 100000
burst = 100000

[batch]
max_records = 100
max_age_s = 3600
"""  # a batch when 100 are queued; what is queued at the kill is asserted only because a restart flushes it
KILL_AFTER = 120  # answers


def test_kill_9_under_load_loses_no_answered_record_and_asserts_none_twice(
    local_chain: LocalChain, tmp_path: Path
) -> None:
    ok("kb", "add", str(KB_DOCS))
    home = local_chain.home
    (home / "config.toml").write_text(CONFIG)
    server = Server(home, tmp_path / "serve.log")
    server.start()

    def kill_midway(load: Load) -> None:
        if len(load.answered) == KILL_AFTER:
            server.kill()

    try:
        load = asyncio.run(drive(server.url, clients=64, requests=400, question=QUESTION, model="extractive",
                                 on_answer=kill_midway))  # fmt: skip
        assert server.proc is not None and server.proc.returncode == -9
        assert len(load.answered) >= KILL_AFTER and load.errors  # killed mid-load: requests in flight failed
        server.start()  # the flusher finishes what the crash interrupted, then asserts what it left queued
        wait_until_landed(home, load.answered, timeout_s=120)
    finally:
        server.stop()
    events = oov3(local_chain).events_between(local_chain.deployment.block_number, local_chain.w3.eth.block_number)
    count = landed(home, load.answered, events)
    print(f"{len(load.answered)} answered, {len(load.errors)} failed at the kill; {count}; {statuses(home)}")
    n = len(load.answered)
    assert (count.in_ledger, count.pinned, count.in_one_asserted_batch) == (n, n, n), count
    assert (count.lost, count.asserted_twice) == (0, 0), count
    # Records committed whose response the kill cut off are asserted too: nothing is left queued or half-made.
    assert set(statuses(home)) == {"asserted"}, statuses(home)


def test_on_start_the_server_asserts_what_a_crash_left_queued(local_chain: LocalChain) -> None:
    ok("kb", "add", str(KB_DOCS))
    with Attester() as attester:  # answered, then the process died before any batch was due
        left = [attester.attest(AskRequest(QUESTION, provider="extractive")).attestation.id for _ in range(3)]
    config = Config.model_validate({"serve": {"assert": "batch"}, "batch": {"max_records": 1000, "max_age_s": 3600}})
    with serving(config, flush_poll_s=0.1):
        deadline = time.monotonic() + 60
        while statuses(local_chain.home) != {"asserted": 3}:
            assert time.monotonic() < deadline, statuses(local_chain.home)
            time.sleep(0.2)
    with Ledger() as ledger:
        assert len({ledger.get(i).batch_id for i in left}) == 1
