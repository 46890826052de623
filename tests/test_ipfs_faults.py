"""IPFS faults seen by the disputer: it reads a real asserted record through a trustless gateway (a local fake)
that serves tampered bytes, another CID's bytes, a record over the size limit, or never answers.

What each means for the decision:
- tampered or substituted bytes fail the CID check block by block: that is the gateway lying, not the asserter
  (whose claim names the CID), so the source is skipped; a good source next in line is used, and with none the
  record is unavailable: fetched again until the safety margin (an outage uses up no attempts), then undecided,
  never disputed.
- a record over the size limit is the asserter's fault (every byte that arrived was verified against the CID,
  and the rules cap a record at 1 MiB): a failed check, disputed, and the download stops at the limit.
- a record that never arrives is unavailable within the configured timeout: retried until the margin, undecided.
Every fault is detected on every try (evaluated several times over) within a bounded time.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from typing import Literal

import pytest
from web3 import Web3

from attest.accounts import dev_account
from attest.chain.artifacts import uma
from attest.chain.oov3 import AssertionMade
from attest.chain.tx import Sender
from attest.claim import build_claim, parse_claim, rules_cid
from attest.config import Config
from attest.connect import connect
from attest.ipfs.cid import CID
from attest.ipfs.gateway import Gateway
from attest.ipfs.local import LocalStore
from attest.ipfs.unixfs import CHUNK_SIZE, import_bytes
from attest.networks import ASSERT_TRUTH2
from attest.record.codec import DEFAULT_MAX_BYTES
from disputer.daemon import Daemon
from disputer.evaluate import Evaluation, Evaluator
from disputer.store import DisputerStore
from disputer.wiring import build_daemon
from tests.conftest import LocalChain
from tests.support.ipfs_services import FakeGateway
from tests.support.oov3 import assert_truth
from tests.test_disputer_daemon import HONEST, QUERY, Env, kb_home, step, verdict

__all__ = ["kb_home"]  # the fixture, imported for pytest

Mode = Literal["raw", "car"]
TIMEOUT_S = 0.5
TRIES = 4  # evaluations of the same assertion: a fault must be caught every time
SLACK_S = 5.0  # a shared, busy machine
WHITESPACE = bytes(b" \t\n\r"[i % 4] for i in range(256))


@pytest.fixture
def env(kb_home: LocalChain, monkeypatch: pytest.MonkeyPatch) -> Iterator[Env]:
    with verdict(0.93) as fake:  # a judge that finds the honest answer right
        yield Env(kb_home, connect("local"), fake, monkeypatch)


def blocks_of(data: bytes) -> tuple[CID, dict[str, bytes]]:
    root, blocks = import_bytes(data)
    return root, {str(c): b for c, b in blocks}


def record_bytes(made: AssertionMade) -> tuple[CID, bytes]:
    cid = CID.parse(parse_claim(made.claim).record_cid)
    return cid, LocalStore().get(cid)


def evaluator(env: Env, *readers: Gateway | LocalStore) -> Evaluator:
    return Evaluator(env.judge(), readers, registry=env.ctx.registry, timeout_s=TIMEOUT_S)


def daemon_reading(env: Env, store: DisputerStore, evaluator_: Evaluator, **config: object) -> Daemon:
    daemon = build_daemon(
        env.ctx, store, env.config(vote=False, settle=False, **config), Config(), dev_account(2), judge=env.judge()
    )
    daemon.evaluator = evaluator_  # the disputer's machine: this gateway is all it can read from
    return daemon


def evaluate_often(ev: Evaluator, made: AssertionMade) -> tuple[list[Evaluation], float]:
    started = time.monotonic()
    results = [ev.evaluate(made) for _ in range(TRIES)]
    return results, time.monotonic() - started


def assert_claim(env: Env, cid: str, like: AssertionMade) -> AssertionMade:
    """An assertion through our registry whose claim names `cid` (with `like`'s digest and asserter)."""
    asserter = Sender(env.ctx.w3, dev_account(1))
    original = parse_claim(like.claim)
    claim = build_claim(cid, original.digest, original.asserter, rules_cid(), QUERY)
    currency = env.chain.deployment.currency
    token = env.ctx.w3.eth.contract(address=Web3.to_checksum_address(currency), abi=uma("TestnetERC20").abi)
    bond = env.ctx.oov3.minimum_bond(currency)
    asserter.transact(token.functions.approve(env.ctx.oov3.address, bond), "approve")
    made, _ = assert_truth(env.ctx.oov3,
        asserter, claim=claim, asserter=asserter.address, callback_recipient=env.ctx.require_registry(),
        liveness=7200, currency=currency, bond=bond, identifier=ASSERT_TRUTH2,
        domain_id=bytes.fromhex(original.digest[2:]),
    )  # fmt: skip
    return made


# -- wrong bytes: a lying source, never the asserter's fault -----------------------------------------------
@pytest.mark.parametrize("mode", ["raw", "car"])
@pytest.mark.parametrize("fault", ["tampered", "other-cid"])
def test_wrong_bytes_from_the_only_source_are_caught_every_time_and_never_disputed(
    env: Env, mode: Mode, fault: str
) -> None:
    made = env.attest(HONEST)
    other = env.attest("Polish the lens with a soft cloth.", "What should the lens be polished with?")
    cid, data = record_bytes(made)
    root, blocks = blocks_of(data)
    assert root == cid
    with FakeGateway(blocks) as gateway:
        if fault == "tampered":
            gateway.knobs.tamper = {str(cid)}
        else:
            gateway.knobs.substitute = {str(cid): record_bytes(other)[1]}  # a real, signed record: just not this one
        ev = evaluator(env, Gateway(gateway.url, mode=mode, timeout_s=TIMEOUT_S))
        results, elapsed = evaluate_often(ev, made)
        for result in results:
            assert result.unavailable is not None and "do not match" in result.unavailable
            assert gateway.url in result.unavailable and str(cid) in result.unavailable
            assert result.failed == () and result.verdict is None and result.judge_calls == 0
        assert elapsed < TRIES * TIMEOUT_S + SLACK_S
        with env.store() as db:
            daemon = daemon_reading(env, db, ev, attempts=2)
            first, second = step(daemon), step(daemon)  # past `attempts`: an outage is not a judge fault
            env.chain.advance(7200 - 120)  # into the 600 s safety margin
            last = step(daemon)
            decision = db.decision(made.assertion_id)
    assert made.assertion_id in first.retried and made.assertion_id in second.retried
    assert last.decisions[made.assertion_id] == "undecided"
    assert decision is not None and "do not match" in decision.reason and "never disputed" in decision.reason
    assert env.disputes() == [] and env.fake.requests == []  # nothing judged on bytes that are not the record
    assert daemon.metrics.value("alerts_total", {"reason": "undecided"}) == 2


def test_a_lying_gateway_is_skipped_for_a_good_source_and_costs_nothing(env: Env) -> None:
    made = env.attest(HONEST)
    cid, data = record_bytes(made)
    with FakeGateway(blocks_of(data)[1]) as gateway:
        gateway.knobs.tamper = {str(cid)}
        ev = evaluator(env, Gateway(gateway.url, timeout_s=TIMEOUT_S), LocalStore())
        for result in evaluate_often(ev, made)[0]:
            assert result.unavailable is None and result.failed == () and result.score == pytest.approx(0.93)
        assert gateway.count("GET", f"/ipfs/{cid}") == TRIES  # asked every time, refused every time
        with env.store() as db:
            report = step(daemon_reading(env, db, ev))
    assert report.decisions == {made.assertion_id: "none"} and env.disputes() == []


# -- oversize: the asserter's fault, found without downloading it all -------------------------------------
@pytest.mark.parametrize("mode", ["raw", "car"])
def test_an_oversize_record_is_a_failed_check_and_the_download_stops_at_the_limit(env: Env, mode: Mode) -> None:
    honest = env.attest(HONEST)
    _, data = record_bytes(honest)
    # 4 MiB: a record padded far past the 1 MiB limit with whitespace (still JSON), varied so no two chunks are
    # alike, and chunked the way `ipfs add` does: 16 leaves under one root.
    padding = os.urandom(4 * 1024 * 1024 - len(data)).translate(WHITESPACE)
    huge = data[:-1] + padding + data[-1:]
    root, blocks = blocks_of(huge)
    assert len(blocks) == 17
    made = assert_claim(env, str(root), honest)
    with FakeGateway(blocks) as gateway:
        ev = evaluator(env, Gateway(gateway.url, mode=mode, timeout_s=TIMEOUT_S))
        results, elapsed = evaluate_often(ev, made)
        for result in results:
            assert result.unavailable is None and result.verdict is None and result.judge_calls == 0
            assert [c.name for c in result.failed] == ["schema"]
            assert f"over the {DEFAULT_MAX_BYTES:,}-byte limit" in result.failed_checks[0]
        assert elapsed < TRIES * TIMEOUT_S + SLACK_S
        # The root, then leaves until the limit is passed (1 MiB is 4 leaves, the 5th passes it), of 65 blocks;
        # a CAR is cut off at twice the limit and one block more, then read block by block the same way.
        raw_requests = 1 + DEFAULT_MAX_BYTES // CHUNK_SIZE + 1
        assert gateway.count("GET", "") == TRIES * (raw_requests + (1 if mode == "car" else 0))
        with env.store() as db:
            report = step(daemon_reading(env, db, ev))
            decision = db.decision(made.assertion_id)
    assert report.decisions[made.assertion_id] == "dispute"
    assert (
        decision is not None and decision.judge == "deterministic-checks" and "failed check schema" in decision.reason
    )
    assert env.disputes() == [made.assertion_id]


def test_a_padded_car_proves_nothing_and_the_record_is_read_block_by_block(env: Env) -> None:
    made = env.attest(HONEST)
    cid, data = record_bytes(made)
    with FakeGateway(blocks_of(data)[1]) as gateway:
        # A small record in a CAR padded far past any record's size: the gateway's doing, not the asserter's.
        gateway.knobs.car_padding = 8 * 1024 * 1024
        # The local store second: it serves the cited documents (the record comes from the gateway, first in line).
        result = evaluator(env, Gateway(gateway.url, mode="car", timeout_s=TIMEOUT_S), LocalStore()).evaluate(made)
        assert (
            gateway.count("GET", f"/ipfs/{cid}?format=car") == 1
            and gateway.count("GET", f"/ipfs/{cid}?format=raw") == 1
        )
    assert result.failed == () and result.unavailable is None and result.score == pytest.approx(0.93)


# -- never resolves: unavailable within the timeout, never disputed -----------------------------------------
def test_a_record_that_never_arrives_is_unavailable_within_the_timeout_every_time(env: Env) -> None:
    made = env.attest(HONEST)
    _, data = record_bytes(made)
    with FakeGateway(blocks_of(data)[1]) as gateway:
        gateway.knobs.slow_s = 60.0
        ev = evaluator(env, Gateway(gateway.url, timeout_s=TIMEOUT_S))
        for _ in range(TRIES):
            started = time.monotonic()
            result = ev.evaluate(made)
            assert time.monotonic() - started < TIMEOUT_S + SLACK_S
            assert (
                result.unavailable is not None
                and f"not found at gateway {gateway.url} within {TIMEOUT_S:g}s" in result.unavailable
            )
            assert result.failed == () and result.verdict is None
        with env.store() as db:
            daemon = daemon_reading(env, db, ev, attempts=2)
            actions = [step(daemon).decisions.get(made.assertion_id) for _ in range(3)]
            env.chain.advance(7200 - 120)  # into the 600 s safety margin
            actions.append(step(daemon).decisions.get(made.assertion_id))
            decision = db.decision(made.assertion_id)
    assert actions == [None, None, None, "undecided"]  # fetched again past `attempts`, final at the margin
    assert decision is not None and "not found" in decision.reason and "never disputed" in decision.reason
    assert env.disputes() == []


def test_an_unreachable_record_near_expiry_is_undecided_at_once(env: Env) -> None:
    made = env.attest(HONEST)
    cid, data = record_bytes(made)
    with FakeGateway(blocks_of(data)[1]) as gateway:
        gateway.knobs.missing = {str(cid)}
        ev = evaluator(env, Gateway(gateway.url, timeout_s=TIMEOUT_S))
        env.chain.advance(7200 - 120)
        with env.store() as db:
            report = step(daemon_reading(env, db, ev, attempts=10, safety_margin_s=600))
    assert report.decisions == {made.assertion_id: "undecided"} and env.disputes() == []
