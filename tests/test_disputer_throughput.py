"""The daemon's evaluation pipeline under load, on the devnet's real UMA stack: signed records pinned locally and
asserted in bulk (the disputer bench's setup), judged by the real OpenAI SDK against bench.fake_judge's slow
server. Bounds are loose multiples of the judge's latency, so a loaded machine passes and the old pipeline
(asyncio's 6-thread default executor; every verdict waiting for the slowest) does not."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from typing import Any

from hexbytes import HexBytes

from attest.connect import ChainContext, connect
from bench import disputer as bench
from bench.fake_judge import Rule, judge_server
from disputer.daemon import StepReport
from disputer.store import DisputerStore, made_of
from tests.conftest import LocalChain

LATENCY_S = 1.0


def _assert_backlog(chain: LocalChain, n: int) -> bench.Backlog:
    backlog = bench.prepare(chain.w3, chain.deployment, n)
    bench.send_all(chain.w3, backlog.raw)
    return backlog


def _count_rpc(ctx: ChainContext) -> Counter[str]:
    """Count the JSON-RPC methods the daemon's web3 sends from now on (instrumentation of web3's provider)."""
    counts: Counter[str] = Counter()
    provider: Any = ctx.w3.provider
    send = provider.make_request

    def counting(method: str, params: Any) -> Any:
        counts[str(method)] += 1
        return send(method, params)

    provider.make_request = counting
    return counts


def test_judging_runs_concurrency_calls_at_once(local_chain: LocalChain) -> None:
    n = 20
    backlog = _assert_backlog(local_chain, n)
    honest = [d for d in backlog.digests if d not in backlog.wrong]
    assert len(honest) == 18  # answers 9 and 19 are wrong
    ctx = connect("local")
    with judge_server([Rule(bench.WRONG_MARKER, 0.9)], latency_s=LATENCY_S) as judge:  # every answer stands here
        with DisputerStore(local_chain.home / "wide.sqlite") as store:
            daemon = bench.daemon_for(ctx, store, judge.base_url, concurrency=n)
            daemon.watcher.poll()
            rpc = _count_rpc(ctx)
            started = time.monotonic()
            report = asyncio.run(daemon.step())
            elapsed = time.monotonic() - started
            assert report.errors == [] and len(report.decisions) == n
            assert set(report.decisions.values()) == {"none"}
        wide = judge.stats()
        # 20 one-second calls, 20 at a time: about one latency. Six at a time (asyncio's default executor on a
        # 2-core host) needs four rounds.
        assert elapsed < 3.5 * LATENCY_S, elapsed
        assert wide.requests == n and wide.max_in_flight >= 12
        # Verdicts that send nothing read neither the assertion nor the wallet: no eth_call at all.
        assert rpc["eth_call"] == 0, dict(rpc)
        assert daemon.attempts == {}  # decided assertions leave no per-assertion state behind
        with DisputerStore(local_chain.home / "narrow.sqlite") as store:
            narrow = bench.daemon_for(ctx, store, judge.base_url, concurrency=4)
            assert len(asyncio.run(narrow.step()).decisions) == n
        assert judge.stats().max_in_flight == wide.max_in_flight  # the narrow daemon never went past 4
        assert judge.stats().requests == 2 * n


def test_a_dispute_is_not_held_back_by_slow_judgements(local_chain: LocalChain) -> None:
    backlog = _assert_backlog(local_chain, 10)  # answer 9, the last asserted, is the wrong one
    ctx = connect("local")
    rules = [Rule(bench.WRONG_MARKER, 0.05, latency_s=0.1)]
    with judge_server(rules, latency_s=3.0) as judge, DisputerStore(local_chain.home / "d.sqlite") as store:
        daemon = bench.daemon_for(ctx, store, judge.base_url, concurrency=10)
        with bench.recording() as seen:
            report: StepReport = asyncio.run(daemon.step())
    assert report.errors == []
    (disputed,) = seen.disputed
    assert report.decisions.pop(disputed) == "dispute" and set(report.decisions.values()) == {"none"}
    with DisputerStore(local_chain.home / "d.sqlite") as store:
        stored = store.get(disputed)
    assert stored is not None and "0x" + stored.domain_id.hex() in backlog.wrong
    honest_decided = [t for aid, t in seen.decided.items() if aid != disputed]
    # The wrong answer's verdict came back first: its dispute was mined before any slow verdict was in.
    assert seen.disputed[disputed] < min(honest_decided)
    assert ctx.oov3.get_assertion(disputed).disputed


def test_one_at_a_time_still_decides_everything_in_chain_order(local_chain: LocalChain) -> None:
    _assert_backlog(local_chain, 3)
    ctx = connect("local")
    with judge_server(latency_s=0.05) as judge, DisputerStore(local_chain.home / "one.sqlite") as store:
        daemon = bench.daemon_for(ctx, store, judge.base_url, concurrency=1)
        report = asyncio.run(daemon.step())
        order = [a.assertion_id for a in store.assertions(ctx.chain_id, ours=True)]
    assert judge.stats().max_in_flight == 1
    assert report.evaluated == order  # one thread takes them in the order the chain made them


def test_disputes_decided_together_go_out_in_one_pipeline(local_chain: LocalChain) -> None:
    """Five wrong answers handled as one batch: one approval of all five bonds, then five disputes signed with
    consecutive nonces before any is mined; each lands (each carries a gas margin: estimated exactly, the third
    of a row ran out of gas) and is recorded mined."""
    n = 50  # answers 9, 19, 29, 39 and 49 are wrong
    backlog = _assert_backlog(local_chain, n)
    ctx = connect("local")
    disputer = bench.dev_account(2).address
    nonce_before = int(ctx.w3.eth.get_transaction_count(disputer))
    rules = [Rule(bench.WRONG_MARKER, 0.05)]
    with judge_server(rules, latency_s=0.0) as judge, DisputerStore(local_chain.home / "p.sqlite") as store:
        daemon = bench.daemon_for(ctx, store, judge.base_url, concurrency=1)
        daemon.watcher.poll()
        mine = store.assertions(ctx.chain_id, ours=True)
        wrong = [a for a in mine if "0x" + a.domain_id.hex() in backlog.wrong]
        assert len(wrong) == 5
        report = StepReport()
        decisions = daemon.handle_many([(a, daemon.evaluator.evaluate(made_of(a))) for a in wrong], report)
        rows = [r for a in wrong for r in store.txs_for(a.assertion_id)]
    assert [d.action for d in decisions] == ["dispute"] * 5
    assert decisions[0].approve_first  # the wallet starts with no allowance
    assert all(ctx.oov3.get_assertion(a.assertion_id).disputer == disputer for a in wrong)
    assert all(result.mined for results in report.sent.values() for result in results)
    approvals = [r for r in rows if r.kind == "approve"]
    disputes = sorted((r for r in rows if r.kind == "dispute"), key=lambda r: r.nonce or 0)
    assert len(approvals) == 1 and len(disputes) == 5 and {r.status for r in rows} == {"mined"}
    assert [r.nonce for r in disputes] == list(range(nonce_before + 1, nonce_before + 6))
    assert int(ctx.w3.eth.get_transaction_count(disputer)) == nonce_before + 6
    approve_input = bytes(ctx.w3.eth.get_transaction(HexBytes(approvals[0].tx_hash or b""))["input"])
    assert int.from_bytes(approve_input[36:68], "big") == sum(a.bond for a in wrong)
    for row in disputes:
        receipt = ctx.w3.eth.get_transaction_receipt(HexBytes(row.tx_hash or b""))
        assert receipt["status"] == 1
        limit = int(ctx.w3.eth.get_transaction(HexBytes(row.tx_hash or b""))["gas"])
        # The 20% margin over an estimate that a pipelined dispute outgrows by about 1%.
        assert limit * 100 >= int(receipt["gasUsed"]) * 110
