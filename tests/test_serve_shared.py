"""Several `attest serve` processes sharing one ledger on PostgreSQL: one of them leads an account's batches (its
/metrics says so), a leader's death hands the batches to another, and under load a kill -9 of the leader loses no
answered record and asserts none twice (real PostgreSQL, real processes, real HTTP, real devnet;
docs/reliability.md)."""

from __future__ import annotations

import asyncio
import re
import time
from contextlib import ExitStack

import requests

from attest.config import load_config
from attest.storage import Postgres
from tests.conftest import LocalChain
from tests.support.serve import serving
from tests.support.serve_load import drive, landed, wait_until_landed
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
