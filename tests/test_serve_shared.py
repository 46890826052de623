"""Several `attest serve` processes sharing one ledger on PostgreSQL: one of them leads an account's batches (its
/metrics says so), a leader's death hands the batches to another, and under load a kill -9 of the leader loses no
answered record and asserts none twice (real PostgreSQL, real processes, real HTTP, real devnet;
docs/reliability.md)."""

from __future__ import annotations

import asyncio
import re
import time
from contextlib import ExitStack
from pathlib import Path

import requests

from attest.batch.store import BatchBook
from attest.config import load_config
from attest.ledger import Ledger
from attest.storage import Postgres
from tests.conftest import LocalChain
from tests.support.serve import serving
from tests.support.serve_load import Load, Server, drive, landed, statuses, wait_until_landed
from tests.test_ask import KB_DOCS, QUESTION, ok, oov3

LEADER_GAUGE = re.compile(r'^attest_batch_leader\{account="0x[0-9a-fA-F]{40}",chain_id="\d+"\} ([01])\.0$', re.M)


def _config(url: str, max_records: int, max_age_s: float) -> str:
    return f"""
[storage]
url = "{url}"

[serve]
assert = "batch"
rate_per_s = 100000
burst = 100000

[batch]
max_records = {max_records}
max_age_s = {max_age_s}
"""


def leads(base_url: str) -> bool | None:
    """What the server's /metrics says: True while it leads its account's batches, None before its first poll."""
    found = LEADER_GAUGE.findall(requests.get(base_url + "/metrics", timeout=30).text)
    return None if not found else found == ["1"]


def the_leader(urls: list[str], timeout_s: float = 60.0) -> int:
    """The index of the one server that leads, once every server has polled."""
    deadline = time.monotonic() + timeout_s
    while True:
        said = [leads(u) for u in urls]
        if None not in said and said.count(True) == 1:
            return said.index(True)
        assert said.count(True) <= 1, f"two leaders at once: {said}"
        assert time.monotonic() < deadline, f"no single leader: {said}"
        time.sleep(0.2)


def test_one_of_two_servers_leads_and_the_other_takes_over_when_it_stops(
    local_chain: LocalChain, postgres_url: str
) -> None:
    ok("kb", "add", str(KB_DOCS))
    home, server = local_chain.home, Postgres(postgres_url)
    (home / "config.toml").write_text(_config(postgres_url, max_records=4, max_age_s=3600))
    config = load_config()
    stacks = [ExitStack(), ExitStack()]
    try:
        urls = [stack.enter_context(serving(config)) for stack in stacks]
        leader = the_leader(urls)
        load = asyncio.run(drive(urls, clients=4, requests=8, question=QUESTION, model="extractive"))
        assert len(load.answered) == 8, load.errors
        wait_until_landed(home, load.answered, timeout_s=120, server=server)
        stacks[leader].close()  # the leader stops: its session, and the lock, end with it
        follower = urls[1 - leader]
        assert the_leader([follower]) == 0
        more = asyncio.run(drive(follower, clients=4, requests=4, question=QUESTION, model="extractive"))
        assert len(more.answered) == 4, more.errors
        wait_until_landed(home, more.answered, timeout_s=120, server=server)
    finally:
        for stack in stacks:
            stack.close()
    answered = load.answered + more.answered
    events = oov3(local_chain).events_between(local_chain.deployment.block_number, local_chain.w3.eth.block_number)
    count = landed(home, answered, events, server)
    assert (count.in_one_asserted_batch, count.lost, count.asserted_twice, count.batches) == (12, 0, 0, 3), count


KILL_AFTER = 100  # answers


def test_kill_9_of_the_leader_of_three_servers_under_load_loses_no_answered_record_and_asserts_none_twice(
    local_chain: LocalChain, postgres_url: str, tmp_path: Path
) -> None:
    """Three `attest serve` processes on one PostgreSQL ledger, 48 clients spread over them; the batch leader is
    killed with SIGKILL mid-load and another server takes its batches over (the two left flush the tail)."""
    ok("kb", "add", str(KB_DOCS))
    home, server = local_chain.home, Postgres(postgres_url)
    # A batch per 20 queued, or once the oldest waited 2 s: the tail after the load is asserted without a restart.
    (home / "config.toml").write_text(_config(postgres_url, max_records=20, max_age_s=2))
    servers = [Server(home, tmp_path / f"serve{i}.log") for i in range(3)]
    ledger = Ledger(server)
    try:
        for s in servers:
            s.start()
        urls = [s.url for s in servers]
        leader = the_leader(urls)
        at_the_kill: list[tuple[int, int]] = []  # (answered, batches made)

        def kill_midway(load: Load) -> None:
            # Once the leader has made batches (only it makes any), so that another finishes what it left.
            if at_the_kill or len(load.answered) < KILL_AFTER:
                return
            made = len(BatchBook(ledger.database).select())
            if made:
                servers[leader].kill()
                at_the_kill.append((len(load.answered), made))

        # Numbered questions: two servers answering the same question in the same microsecond make one record
        # twice (the same bytes, digest and CID), which a batch refuses as a repeated leaf; that open defect of
        # the record format (bench/serve_shared.py runs into it) is not what this test is about.
        load = asyncio.run(drive(urls, clients=48, requests=300, question=QUESTION, model="extractive",
                                 on_answer=kill_midway, numbered=True))  # fmt: skip
        killed = servers[leader].proc
        assert killed is not None and killed.returncode == -9
        assert len(load.answered) >= KILL_AFTER and load.errors  # killed mid-load: its requests in flight failed
        survivors = [u for i, u in enumerate(urls) if i != leader]
        the_leader(survivors)  # one of the two took the batches over
        wait_until_landed(home, load.answered, timeout_s=180, server=server)
    finally:
        ledger.close()
        for s in servers:
            s.stop()
    events = oov3(local_chain).events_between(local_chain.deployment.block_number, local_chain.w3.eth.block_number)
    count = landed(home, load.answered, events, server)
    print(
        f"{len(load.answered)} answered, {len(load.errors)} failed at the kill; killed at answer {at_the_kill[0][0]}, "
        f"{at_the_kill[0][1]} batches begun by the killed leader; {count}; {statuses(home, server)}"
    )
    n = len(load.answered)
    assert (count.in_ledger, count.pinned, count.in_one_asserted_batch) == (n, n, n), count
    assert (count.lost, count.asserted_twice) == (0, 0), count
    # Records committed whose response the kill cut off are asserted too: nothing is left queued or half-made.
    assert set(statuses(home, server)) == {"asserted"}, statuses(home, server)
    assert count.batches > at_the_kill[0][1]  # the new leader batched and asserted the rest
