"""Judging on the queue: judged/s with 1, 2 and 4 `disputer worker` processes against a 1 s fake judge.

Setup (not measured): a throwaway devnet home and a PostgreSQL server of its own (Debian's binaries, as the tests
start it); the backlog of bench/disputer.py (signed, pinned records, one answer in ten wrong) asserted before
anything runs; the fake judge (bench/fake_judge.py) in a child process, `LATENCY_S` per request.

Measured, once per worker count, each over a fresh database (the disputer's state and the queue): the workers are
started and idle first (their start-up is not counted); then the leader, in this process (`build_daemon`, the
queue's `JudgeQueue`, `run()` polling every `POLL_S`), from its start to the n-th decision it logs. The leader
runs as a dry run: it decides and records, sends nothing, so the rate is the judging's and the deciding's, not
the disputes'.

    python -m bench judge_workers [--quick]
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

from attest.accounts import dev_account
from attest.config import Config, LlmConfig
from attest.connect import ChainContext, connect
from attest.llm.registry import provider_from_config
from attest.storage import Postgres
from attest.storage.postgres import PASSWORD_ENV
from bench.common import Table, env_var, throwaway_home
from bench.disputer import MODEL, WRONG_MARKER, prepare, recording, send_all
from bench.fake_judge import Rule, judge_process
from disputer.config import DisputerConfig
from disputer.judge import LlmJudge
from disputer.judgequeue import JudgeQueue, install_schema, judge_app
from disputer.store import DisputerStore
from disputer.wiring import build_daemon
from disputer.workers import stop_local_workers
from tests.support.postgres import INSTALL_HINT, PostgresServer, find_bindir

WORKERS = (1, 2, 4)
# Judge jobs at once in one worker process: 8 keeps one worker waiting on the judge (8/s at most with a 1 s
# judge), 32 lets one worker take most of this machine's CPU by itself.
CONCURRENCIES = (8, 32)
BASELINE_CONCURRENCY = 32  # the daemon without a queue: judge threads in the leader
LATENCY_S = 1.0
POLL_S = 0.5
FULL_N = 1000  # 2,000 assertTruths sent in a row failed to land in setup once (docs/benchmarks.md)
QUICK_N = 300
GOAL = 1.8  # judged/s with 2 workers over 1
KEY_ENV = "BENCH_JUDGE_KEY"
START_BOUND_S = 180.0


def _config(home: Path, url: str, judge_url: str) -> None:
    (home / "config.toml").write_text(
        f'[llm]\nprovider = "openai"\nmodel = "{MODEL}"\nbase_url = "{judge_url}"\nkey_env = "{KEY_ENV}"\n\n'
        f'[disputer]\nsamples = 1\nattempts = 1\nvote = false\nsettle = false\n\n[storage]\nurl = "{url}"\n'
    )


def _start_workers(count: int, concurrency: int, log: Path) -> list[subprocess.Popen[bytes]]:
    command = [sys.executable, "-c", "from disputer.cli import main; main()", "worker", "--network", "local"]
    started: list[subprocess.Popen[bytes]] = []
    with log.open("ab") as err:
        for _ in range(count):
            started.append(
                subprocess.Popen(
                    [*command, "--concurrency", str(concurrency)], stdin=subprocess.DEVNULL, stdout=err, stderr=err
                )
            )
    deadline = time.monotonic() + START_BOUND_S
    while log.read_text(errors="replace").count('"judge worker started"') < count:
        if time.monotonic() > deadline or any(p.poll() is not None for p in started):
            stop_local_workers(started)
            raise RuntimeError(f"the workers did not start: {log.read_text(errors='replace')[-2000:]}")
        time.sleep(0.1)
    return started


def _leader_rate(ctx: ChainContext, where: Postgres, judge_url: str, n: int, *, queued: bool) -> float:
    """judged/s of a leader from its start to its n-th decision: judging on the queue, or (not `queued`) in its
    own `BASELINE_CONCURRENCY` threads as `disputer run` without --workers."""
    config = DisputerConfig(
        samples=1, attempts=1, poll_interval_s=POLL_S, backfill_s=86400, vote=False, settle=False, dry_run=True,
        concurrency=BASELINE_CONCURRENCY,
    )  # fmt: skip
    llm = LlmConfig(provider="openai", base_url=judge_url, model=MODEL, key_env=KEY_ENV)
    judge = LlmJudge(provider_from_config(llm), MODEL, samples=1)  # judges only without the queue
    with DisputerStore(where) as store, recording() as rec:
        daemon = build_daemon(ctx, store, config, Config(), dev_account(2), judge=judge)
        app = judge_app(where) if queued else None
        if app is not None:
            daemon.judge_queue = JudgeQueue(app)
        started = time.time()

        async def drive() -> None:
            stop = asyncio.Event()
            task = asyncio.create_task(daemon.run(stop))
            deadline = time.monotonic() + 60 + n / 2
            while len(rec.decided) < n and time.monotonic() < deadline and not task.done():
                await asyncio.sleep(0.05)
            stop.set()
            await asyncio.wait_for(task, timeout=120)

        async def lead() -> None:
            if app is None:
                await drive()
                return
            async with app.open_async():
                await drive()

        asyncio.run(lead())
        if len(rec.decided) < n:
            raise RuntimeError(f"{len(rec.decided)} of {n} assertions decided")
        return n / (max(rec.decided.values()) - started)


Rates = dict[tuple[int, int], float]  # (worker processes, jobs at once per worker) -> judged/s; (0, 0): no queue


def measure(n: int) -> Rates:
    bindir = find_bindir()
    if bindir is None:
        raise RuntimeError(INSTALL_HINT)
    server = PostgresServer(bindir)
    server.start()
    rates: Rates = {}
    try:
        with (
            throwaway_home() as (home, w3, deployment),
            env_var("ATTEST_HOME", str(home)),
            env_var(PASSWORD_ENV, server.password),
            env_var(KEY_ENV, "bench-key"),
        ):
            send_all(w3, prepare(w3, deployment, n).raw)
            ctx = connect("local")
            with judge_process([Rule(WRONG_MARKER, 0.05)], latency_s=LATENCY_S) as judge:
                where = Postgres(server.new_database())
                rates[0, 0] = _leader_rate(ctx, where, judge.base_url, n, queued=False)
                for concurrency in CONCURRENCIES:
                    for count in WORKERS:
                        where = Postgres(server.new_database())
                        _config(home, where.url, judge.base_url)
                        install_schema(where)
                        workers = _start_workers(count, concurrency, home / f"workers-{count}-{concurrency}.log")
                        try:
                            rates[count, concurrency] = _leader_rate(ctx, where, judge.base_url, n, queued=True)
                        finally:
                            stop_local_workers(workers)
    finally:
        server.stop()
    return rates


def tables(n: int, rates: Rates) -> list[Table]:
    rows = [("no queue: the leader's own threads", "-", str(BASELINE_CONCURRENCY), f"{rates[0, 0]:.1f}", "-")]
    for concurrency in CONCURRENCIES:
        one = rates[1, concurrency]
        rows += [
            ("queue", str(w), str(concurrency), f"{rates[w, concurrency]:.1f}", f"{rates[w, concurrency] / one:.2f}x")
            for w in WORKERS
        ]
    ratios = {c: rates[2, c] / rates[1, c] for c in CONCURRENCIES}
    said = ", ".join(f"{ratios[c]:.2f}x at {c} jobs per worker" for c in CONCURRENCIES)
    met = "met" if all(r >= GOAL for r in ratios.values()) else "NOT met at every concurrency"
    return [
        Table(
            f"Judging on the queue: {n} assertions, judge latency {LATENCY_S:g} s, {os.cpu_count()} CPUs",
            ("judging", "worker processes", "jobs at once per worker", "judged/s", "over 1 worker"),
            rows,
            f"Goal: at least {GOAL:g}x from 1 to 2 workers — {met} ({said}). Each worker is `disputer worker "
            "--concurrency C` (procrastinate, its jobs on the PostgreSQL server that holds the state), started and "
            f"idle before the clock starts; the leader (this process, a dry run: it decides and records, sends "
            f"nothing) polls every {POLL_S:g} s and decides on the judgements the workers keep. judged/s = "
            "assertions / (leader start → its last decision), each row over a fresh database. The first row is "
            "the same leader without the queue (`disputer run` without --workers). The judge is `LlmJudge` "
            f"(OpenAI SDK, 1 sample) against a local server that waits {LATENCY_S:g} s per request; the leader, "
            "PostgreSQL, anvil and the judge server share this machine's CPUs with the workers.",
        )
    ]


def run(quick: bool = False) -> list[Table]:
    n = QUICK_N if quick else FULL_N
    return tables(n, measure(n))


def main(argv: list[str]) -> None:
    for table in run(quick="--quick" in argv):
        print(table.markdown())


if __name__ == "__main__":
    main(sys.argv[1:])
