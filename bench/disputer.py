"""Disputer throughput: a backlog of signed, pinned, asserted records judged on the devnet by the daemon.

Setup (not measured): a throwaway devnet home; records signed by dev account 1 and pinned to its local store
(one cited document, so the context check passes); every assertTruth pre-signed with consecutive nonces and
sent as raw bytes. One answer in ten is wrong. The judge is the real `LlmJudge` (OpenAI SDK, one sample per
answer) talking to `bench.fake_judge` in a child process: every request waits `LATENCY_S`, then honest
answers get 0.95 and wrong ones 0.05, so each wrong one is disputed (an approval per batch, its disputes mined).

Measured, each daemon built by `build_daemon` over a fresh SQLite store, voting and settling off:
- baseline: concurrency 1 (one assertion at a time, like the original tool) on the first `baseline`
  assertions only (a thousand 1 s judge calls in a row would take 17 minutes); the chain is then reverted;
- ours: `step()` from a fresh store over the whole backlog: throughput = judged / wall time, RSS as the
  decisions reach 25/50/75/100 % of it, and how long after the daemon started each dispute was mined;
- stream: then `run()` (poll every `POLL_S`) while new assertions arrive at a fixed rate: AssertionMade
  (the assertTruth receipt, wall clock) to the decision and to the dispute's receipt.

Dispute and decision times come from the daemon's own log records (`created`), so nothing is added to its path.
Peak RSS is /proc/self/status VmHWM, reset (clear_refs) when each measured phase starts.

    python -m bench.disputer [--quick]

One scenario, end to end (its setup, three measured phases and their tables), kept in one file of about 500
lines so the numbers in docs/benchmarks.md can be traced to their code in one read.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from eth_account.signers.local import LocalAccount
from web3 import Web3
from web3.types import RPCEndpoint

from attest.accounts import dev_account
from attest.chain.artifacts import shipped
from attest.chain.oov3 import ZERO_ADDRESS, to_bytes32
from attest.chain.tx import Sender
from attest.claim import build_claim, rules_bytes
from attest.config import Config, LlmConfig
from attest.connect import ChainContext, connect
from attest.context import RetrievedChunk
from attest.devnet import Deployment
from attest.flow.token import Token
from attest.ipfs.local import LocalStore
from attest.llm.registry import provider_from_config
from attest.networks import ASSERT_TRUTH2
from attest.record.canonical import digest_hex
from attest.record.codec import encode_record
from attest.record.model import validate_record
from attest.record.signing import sign_record
from bench.common import Table, env_var, mib, percentile, reset_peak, status_kib, throwaway_home
from bench.fake_judge import Rule, judge_process
from disputer.config import DisputerConfig
from disputer.daemon import Daemon
from disputer.judge import LlmJudge
from disputer.store import DisputerStore
from disputer.wiring import build_daemon

GOAL_PER_S = 50.0
LATENCY_S = 1.0
CONCURRENCY = 64
POLL_S = 1.0
WRONG_EVERY = 10  # answer i is wrong when i % WRONG_EVERY == WRONG_EVERY - 1
LIVENESS_S = 7200
MODEL = "bench-judge"

DOCUMENT = (
    "# Keeping the lamp\n\n"
    "Trim the wick every four hours so the flame stays bright.\n"
    "Polish the lens with a dry linen cloth each morning.\n"
)
CITED = "Trim the wick every four hours so the flame stays bright."
HONEST = "Trim the wick every four hours so the flame stays bright [1]."
WRONG_MARKER = "never needs trimming"
WRONG = f"The wick {WRONG_MARKER}; replace the whole lamp once a year [1]."


@dataclass(frozen=True)
class Sizes:
    backlog: int  # assertions judged by our daemon from a fresh store
    baseline: int  # the first ones of the backlog, judged one at a time
    stream: int  # assertions made while our daemon runs
    stream_rate: float  # per second


FULL = Sizes(backlog=1000, baseline=30, stream=200, stream_rate=20.0)
QUICK = Sizes(backlog=100, baseline=10, stream=30, stream_rate=15.0)


# -- setup -------------------------------------------------------------------------------------------------
@dataclass
class Backlog:
    raw: list[bytes]  # pre-signed assertTruth transactions, in nonce order
    digests: list[str]  # each record's digest (the assertion's domainId), same order
    wrong: set[str]  # digests of the wrong answers


def is_wrong(i: int) -> bool:
    return i % WRONG_EVERY == WRONG_EVERY - 1


def query(i: int) -> str:
    return f"How often should the wick of lamp {i:06d} be trimmed?"


def _record(i: int, account: LocalAccount, doc_cid: str) -> bytes:
    record = validate_record(
        {
            "schema": "llm-attest/record/v1",
            # Same length for every i: every claim, hence every assertTruth, costs the same gas.
            "query": query(i),
            "answer": WRONG if is_wrong(i) else HONEST,
            "context": [
                {
                    "source": "keeping-the-lamp.md",
                    "doc_cid": doc_cid,
                    "chunk_index": 0,
                    "text": CITED,
                    "sha256": hashlib.sha256(CITED.encode()).hexdigest(),
                }
            ],
            "corpus": None,
            "model": {
                "provider": "external",
                "requested_model": "bench",
                "returned_model": None,
                "system_fingerprint": None,
                "response_id": None,
                "params": {"temperature": None, "top_p": None, "max_tokens": None, "seed": None},
                "usage": None,
                "license": None,
                "sdk": None,
            },
            "prompt": None,
            "created_at": "2025-01-01T00:00:00Z",
            "asserter": account.address,
        }
    )
    return encode_record(sign_record(record, account))


def prepare(w3: Web3, deployment: Deployment, n: int) -> Backlog:
    """Sign and pin `n` records and pre-sign their assertTruth transactions (after one approval, sent here)."""
    from attest.record.codec import decode_record

    store = LocalStore()
    doc_cid = store.put(DOCUMENT.encode())
    rules = store.put(rules_bytes())
    for cid in (doc_cid, rules):
        store.pin(cid)
    account = dev_account(1)
    oov3 = w3.eth.contract(address=Web3.to_checksum_address(deployment.oov3), abi=shipped("OptimisticOracleV3").abi)
    token = Token(w3, deployment.currency)
    bond = int(oov3.functions.getMinimumBond(token.address).call())
    chain_id = int(w3.eth.chain_id)
    Sender(w3, account).transact(token.approve_call(oov3.address, 2**256 - 1), "approve")
    backlog = Backlog([], [], set())
    nonce = w3.eth.get_transaction_count(account.address, "pending")
    fees = _fees(w3)
    gas = 0
    for i in range(n):
        data = _record(i, account, str(doc_cid))
        cid = store.put(data)
        store.pin(cid)
        digest = digest_hex(decode_record(data))
        args = [
            build_claim(str(cid), digest, account.address, str(rules), query(i)),
            account.address, deployment.registry, ZERO_ADDRESS, LIVENESS_S, token.address, bond,
            to_bytes32(ASSERT_TRUTH2), bytes.fromhex(digest[2:]),
        ]  # fmt: skip
        if not gas:
            gas = int(oov3.functions.assertTruth(*args).estimate_gas({"from": account.address})) + 50_000
        tx = {"to": oov3.address, "data": oov3.encode_abi("assertTruth", args=args), "gas": gas, "nonce": nonce + i}
        signed = account.sign_transaction({**tx, **fees, "chainId": chain_id, "value": 0})
        backlog.raw.append(bytes(signed.raw_transaction))
        backlog.digests.append(digest)
        if is_wrong(i):
            backlog.wrong.add(digest)
    return backlog


def _fees(w3: Web3) -> dict[str, int]:
    base = int(w3.eth.get_block("latest").get("baseFeePerGas", 0) or 0)
    tip = 10**9
    # Each assertion fills a small fraction of a block, so the base fee only falls: twice today's is plenty.
    return {"maxFeePerGas": 2 * base + tip, "maxPriorityFeePerGas": tip}


def send_all(w3: Web3, raw: Sequence[bytes]) -> None:
    """Send pre-signed transactions (anvil automines each) and check the last one landed."""
    last = None
    for data in raw:
        last = w3.eth.send_raw_transaction(data)
    if last is not None and w3.eth.wait_for_transaction_receipt(last, poll_latency=0.005)["status"] != 1:
        raise RuntimeError("an assertTruth of the setup reverted")


# -- measuring ---------------------------------------------------------------------------------------------
@dataclass
class Recorder(logging.Handler):
    """Decisions and mined disputes as the daemon logs them, with the wall time of each log record."""

    milestones: tuple[int, ...] = ()
    decided: dict[bytes, float] = field(default_factory=dict)
    disputed: dict[bytes, float] = field(default_factory=dict)
    rss_at: dict[int, int] = field(default_factory=dict)  # decisions so far -> VmRSS (KiB)

    def __post_init__(self) -> None:
        logging.Handler.__init__(self, logging.INFO)

    def __hash__(self) -> int:  # logging keeps handlers in sets and weak references
        return id(self)

    def emit(self, record: logging.LogRecord) -> None:
        aid = getattr(record, "assertion", None)
        if not isinstance(aid, str):
            return
        key = bytes.fromhex(aid[2:])
        if record.msg == "decided":
            self.decided[key] = record.created
            if len(self.decided) in self.milestones:
                self.rss_at[len(self.decided)] = status_kib("VmRSS")
        elif getattr(record, "kind", None) == "dispute" and getattr(record, "status", None) == "mined":
            self.disputed[key] = record.created


@contextlib.contextmanager
def recording(milestones: tuple[int, ...] = ()) -> Iterator[Recorder]:
    logger = logging.getLogger("disputer.daemon")
    recorder = Recorder(milestones)
    old_level = logger.level
    logger.setLevel(logging.INFO)
    logger.addHandler(recorder)
    try:
        yield recorder
    finally:
        logger.removeHandler(recorder)
        logger.setLevel(old_level)


@dataclass
class Phase:
    judged: int
    seconds: float
    peak_kib: int
    start_to_dispute: list[float]  # s, for each dispute: from the daemon's start to its receipt
    verdict_to_dispute: list[float]  # s, for each dispute: from its decision to its receipt
    rss_at: dict[int, int] = field(default_factory=dict)
    max_in_flight: int = 0
    made_to_decision: list[float] = field(default_factory=list)  # stream only
    made_to_dispute: list[float] = field(default_factory=list)  # stream only

    @property
    def per_s(self) -> float:
        return self.judged / self.seconds


def daemon_for(ctx: ChainContext, store: DisputerStore, url: str, concurrency: int) -> Daemon:
    config = DisputerConfig(
        samples=1, attempts=1, concurrency=concurrency, poll_interval_s=POLL_S, backfill_s=86400,
        vote=False, settle=False,
    )  # fmt: skip
    llm = LlmConfig(provider="openai", base_url=url, model=MODEL)
    judge = LlmJudge(provider_from_config(llm), MODEL, samples=1)
    return build_daemon(ctx, store, config, Config(), dev_account(2), judge=judge)


async def _drain(daemon: Daemon, recorder: Recorder, n: int) -> None:
    """Steps until `n` assertions are decided (one step handles a whole backlog; more only after a failure)."""
    for _ in range(5):
        report = await daemon.step()
        if report.errors:
            raise RuntimeError(f"the daemon failed: {report.errors[0]}")
        if len(recorder.decided) >= n:
            return
    raise RuntimeError(f"{len(recorder.decided)} of {n} assertions decided after 5 steps")


def _backlog_phase(daemon: Daemon, rec: Recorder, n: int) -> Phase:
    reset_peak()
    started = time.time()
    asyncio.run(_drain(daemon, rec, n))
    return Phase(
        judged=len(rec.decided),
        seconds=max(rec.decided.values()) - started,
        peak_kib=status_kib("VmHWM"),
        start_to_dispute=[t - started for t in rec.disputed.values()],
        verdict_to_dispute=[t - rec.decided[a] for a, t in rec.disputed.items()],
        rss_at=dict(rec.rss_at),
    )


def _quarters(n: int) -> tuple[int, ...]:
    return tuple(max(1, n * q // 4) for q in (1, 2, 3, 4))


def measure_backlog(ctx: ChainContext, home: Path, url: str, n: int, concurrency: int, name: str) -> Phase:
    with DisputerStore(home / f"{name}.sqlite") as store, recording(_quarters(n)) as rec:
        return _backlog_phase(daemon_for(ctx, store, url, concurrency), rec, n)


def measure_stream(
    ctx: ChainContext, home: Path, url: str, backlog: Backlog, sizes: Sizes, w3: Web3
) -> tuple[Phase, Phase]:
    """Our daemon over the backlog (from a fresh store), then running while the stream arrives."""
    n = sizes.backlog
    made_at: dict[str, float] = {}
    with DisputerStore(home / "ours.sqlite") as store, recording(_quarters(n)) as rec:
        daemon = daemon_for(ctx, store, url, CONCURRENCY)
        ours = _backlog_phase(daemon, rec, n)
        burst_decided, burst_disputed = set(rec.decided), set(rec.disputed)
        stream_raw = backlog.raw[n:]
        stream_digests = backlog.digests[n:]
        wrong = sum(1 for d in stream_digests if d in backlog.wrong)
        sender = threading.Thread(
            target=send_at_rate, args=(w3, stream_raw, stream_digests, sizes.stream_rate, made_at), daemon=True
        )
        reset_peak()
        stream_started = time.time()

        async def run() -> None:
            stop = asyncio.Event()
            task = asyncio.create_task(daemon.run(stop))
            sender.start()
            deadline = time.monotonic() + len(stream_raw) / sizes.stream_rate + 60
            while time.monotonic() < deadline:
                done = len(rec.decided) - len(burst_decided) >= len(stream_raw)
                if done and len(rec.disputed) - len(burst_disputed) >= wrong:
                    break
                await asyncio.sleep(0.05)
            stop.set()
            await asyncio.wait_for(task, timeout=120)

        asyncio.run(run())
        sender.join(timeout=30)
        domain = {a: "0x" + s.domain_id.hex() for a in rec.decided if (s := store.get(a)) is not None}
        new_decided = {a: t for a, t in rec.decided.items() if a not in burst_decided}
        new_disputed = {a: t for a, t in rec.disputed.items() if a not in burst_disputed}
        stream = Phase(
            judged=len(new_decided),
            seconds=(max(new_decided.values()) - stream_started) if new_decided else float("nan"),
            peak_kib=status_kib("VmHWM"),
            start_to_dispute=[],
            verdict_to_dispute=[t - new_decided[a] for a, t in new_disputed.items() if a in new_decided],
            made_to_decision=[t - made_at[domain[a]] for a, t in new_decided.items() if domain.get(a) in made_at],
            made_to_dispute=[t - made_at[domain[a]] for a, t in new_disputed.items() if domain.get(a) in made_at],
        )
    if stream.judged < len(stream_raw) or len(stream.made_to_dispute) < wrong:
        raise RuntimeError(
            f"the stream phase ended with {stream.judged} of {len(stream_raw)} decided, "
            f"{len(stream.made_to_dispute)} of {wrong} disputes mined"
        )
    return ours, stream


def send_at_rate(
    w3: Web3, raw: Sequence[bytes], digests: Sequence[str], rate: float, made_at: dict[str, float]
) -> None:
    """Send one assertTruth every 1/rate seconds; with automine the send returns once it is mined."""
    begin = time.monotonic()
    for i, (data, digest) in enumerate(zip(raw, digests, strict=True)):
        delay = begin + i / rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        w3.eth.send_raw_transaction(data)
        made_at[digest] = time.time()


def measure_ceiling(url: str, n: int, concurrency: int) -> float:
    """The judge alone: the same `LlmJudge` calls (same prompts, SDK and server), `concurrency` threads, and no
    chain, record or store. What the daemon could reach on this machine if everything else were free."""
    doc_cid = str(LocalStore().put(DOCUMENT.encode()))
    cited = RetrievedChunk("keeping-the-lamp.md", doc_cid, 0, CITED, hashlib.sha256(CITED.encode()).hexdigest())
    judge = LlmJudge(provider_from_config(LlmConfig(provider="openai", base_url=url, model=MODEL)), MODEL, samples=1)
    started = time.monotonic()
    with ThreadPoolExecutor(concurrency) as pool:
        verdicts = list(pool.map(lambda i: judge.judge(query(i), [cited], HONEST), range(n)))
    seconds = time.monotonic() - started
    if any(v.score is None for v in verdicts):
        raise RuntimeError("the judge-alone phase got undecided verdicts")
    return n / seconds


@dataclass
class Results:
    sizes: Sizes
    baseline: Phase
    ours: Phase
    stream: Phase
    wrong: int
    ceiling_per_s: float  # the judge alone, same concurrency


def measure(sizes: Sizes) -> Results:
    total = sizes.backlog + sizes.stream
    rules = [Rule(WRONG_MARKER, 0.05)]
    with throwaway_home() as (home, w3, deployment), env_var("ATTEST_HOME", str(home)):
        backlog = prepare(w3, deployment, total)
        ctx = connect("local")
        with judge_process(rules, latency_s=LATENCY_S) as judge:
            send_all(w3, backlog.raw[: sizes.baseline])
            snapshot = w3.provider.make_request(RPCEndpoint("evm_snapshot"), [])["result"]
            baseline = measure_backlog(ctx, home, judge.base_url, sizes.baseline, 1, "baseline")
            if w3.provider.make_request(RPCEndpoint("evm_revert"), [snapshot])["result"] is not True:
                raise RuntimeError("anvil did not revert to the snapshot")
            send_all(w3, backlog.raw[sizes.baseline : sizes.backlog])
            before = judge.stats().max_in_flight
            ours, stream = measure_stream(ctx, home, judge.base_url, backlog, sizes, w3)
            ours.max_in_flight = max(before, judge.stats().max_in_flight)
            baseline.max_in_flight = before
            ceiling = measure_ceiling(judge.base_url, sizes.backlog, CONCURRENCY)
    wrong = sum(1 for d in backlog.digests[: sizes.backlog] if d in backlog.wrong)
    if ours.judged != sizes.backlog or len(ours.start_to_dispute) != wrong:
        raise RuntimeError(f"ours judged {ours.judged} of {sizes.backlog} and disputed {len(ours.start_to_dispute)}")
    return Results(sizes, baseline, ours, stream, wrong, ceiling)


# -- tables ------------------------------------------------------------------------------------------------
def _p(values: Sequence[float], p: float) -> str:
    return f"{percentile(values, p):.2f}" if values else "-"


def tables(r: Results) -> list[Table]:
    s, b, o, st = r.sizes, r.baseline, r.ours, r.stream
    met = "met" if o.per_s >= GOAL_PER_S else "NOT met"
    if s.backlog < FULL.backlog:  # two waves of 64 and a start-up: a quick run is not what the goal is about
        met = f"judged on the full {FULL.backlog:,}-assertion run, not this quick one, which has"
    main = Table(
        f"Disputer throughput: a backlog of {s.backlog} assertions, judge latency {LATENCY_S:g} s",
        ("metric", f"ours (concurrency {CONCURRENCY})", "baseline (concurrency 1)"),
        [
            ("assertions judged", str(o.judged), f"{b.judged} (subset)"),
            ("wall time (s)", f"{o.seconds:.2f}", f"{b.seconds:.2f}"),
            ("**throughput (judged/s)**", f"**{o.per_s:.1f}**", f"{b.per_s:.2f}"),
            ("ours / baseline", f"{o.per_s / b.per_s:.1f}x", "1x"),
            ("the judge alone at the same concurrency (judged/s)", f"{r.ceiling_per_s:.1f}", "-"),
            ("ours / the judge alone", f"{o.per_s / r.ceiling_per_s:.0%}", "-"),
            ("judge requests in flight, most at once", str(o.max_in_flight), str(b.max_in_flight)),
            ("disputes mined", str(len(o.start_to_dispute)), str(len(b.start_to_dispute))),
            (
                "daemon start → dispute mined, p50 / p95 (s)",
                f"{_p(o.start_to_dispute, 50)} / {_p(o.start_to_dispute, 95)}",
                f"{_p(b.start_to_dispute, 50)} / {_p(b.start_to_dispute, 95)}",
            ),
            (
                "verdict → dispute mined, p50 / p95 (s)",
                f"{_p(o.verdict_to_dispute, 50)} / {_p(o.verdict_to_dispute, 95)}",
                f"{_p(b.verdict_to_dispute, 50)} / {_p(b.verdict_to_dispute, 95)}",
            ),
            ("peak RSS of the bench process (MiB)", mib(o.peak_kib), mib(b.peak_kib)),
        ],
        f"Goal: at least {GOAL_PER_S:.0f} judged/s — {met} ({o.per_s:.1f}/s). Daemon from `build_daemon` over a "
        f"fresh SQLite store, `step()` until all are decided; one in {WRONG_EVERY} answers is wrong and is disputed "
        "(verdicts that arrive together are one batch: one approve of their bonds, then their disputeAssertion "
        "transactions with consecutive nonces, each mined); voting and settling off. Judge: `LlmJudge` (OpenAI SDK, 1 "
        f"sample) against a local OpenAI-compatible server in a child process that waits {LATENCY_S:g} s per "
        f"request. The baseline judges only the first {s.baseline} assertions (one at a time, {s.baseline} x "
        f"{LATENCY_S:g} s), on the same chain, reverted afterwards; the ratio compares rates. All assertions were "
        "made before the daemon started, so start → dispute is queueing plus judging plus the transactions. "
        f'"The judge alone": the same {s.backlog} judge calls from {CONCURRENCY} threads with no chain, record '
        "or store: the ceiling this machine and SDK allow (each call's CPU queues for the GIL behind the others').",
    )
    quarters = sorted(o.rss_at)
    memory = Table(
        f"Disputer memory over the backlog of {s.backlog}",
        ("decided", *(str(q) for q in quarters), "peak"),
        [("RSS (MiB)", *(mib(o.rss_at[q]) for q in quarters), mib(o.peak_kib))],
        "VmRSS of the bench process read as the daemon logs the n-th decision; peak is VmHWM, reset when the "
        "backlog phase starts (setup memory excluded; the process also holds web3, the SDK and the setup's data).",
    )
    stream = Table(
        f"Disputer latency: {s.stream} assertions arriving at {s.stream_rate:g}/s while it runs",
        ("from AssertionMade to", "count", "p50 (s)", "p95 (s)"),
        [
            (
                "decision recorded",
                str(len(st.made_to_decision)),
                _p(st.made_to_decision, 50),
                _p(st.made_to_decision, 95),
            ),
            ("dispute mined", str(len(st.made_to_dispute)), _p(st.made_to_dispute, 50), _p(st.made_to_dispute, 95)),
        ],
        f"The same daemon, right after the backlog, in `run()` polling every {POLL_S:g} s (confirmations 0 on the "
        "devnet). AssertionMade time is the wall clock when the automined assertTruth returned; the floor is the "
        f"judge's {LATENCY_S:g} s plus up to one poll interval. Peak RSS during the stream: {mib(st.peak_kib)} MiB.",
    )
    return [main, memory, stream]


def run(quick: bool = False) -> list[Table]:
    return tables(measure(QUICK if quick else FULL))


def main(argv: list[str]) -> None:
    for table in run(quick="--quick" in argv):
        print(table.markdown())


if __name__ == "__main__":
    main(sys.argv[1:])
