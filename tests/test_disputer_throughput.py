"""The daemon's evaluation pipeline under load, on the devnet's real UMA stack: signed records pinned locally and
asserted in bulk (the disputer bench's setup), judged by the real OpenAI SDK against bench.fake_judge's slow
server. Bounds are loose multiples of the judge's latency, so a loaded machine passes and the old pipeline
(asyncio's 6-thread default executor; every verdict waiting for the slowest) does not."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from typing import Any

from attest.chain.connect import ChainContext, connect
from bench import disputer as bench
from bench.fake_judge import JudgeServer, Rule
from disputer.daemon import StepReport
from disputer.store import DisputerStore
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
    with JudgeServer([Rule(bench.WRONG_MARKER, 0.9)], latency_s=LATENCY_S) as judge:  # every answer stands here
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
    with JudgeServer(rules, latency_s=3.0) as judge, DisputerStore(local_chain.home / "d.sqlite") as store:
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
    with JudgeServer(latency_s=0.05) as judge, DisputerStore(local_chain.home / "one.sqlite") as store:
        daemon = bench.daemon_for(ctx, store, judge.base_url, concurrency=1)
        report = asyncio.run(daemon.step())
        order = [a.assertion_id for a in store.assertions(ctx.chain_id, ours=True)]
    assert judge.stats().max_in_flight == 1
    assert report.evaluated == order  # one thread takes them in the order the chain made them
