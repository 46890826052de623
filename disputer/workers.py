"""Judge workers: `disputer worker` (one process running judge jobs from the queue) and the local workers that
`disputer run --workers N` starts beside its leader on one machine (disputer/judgequeue.py says how they share
the work)."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack

from attest.config import Config
from attest.errors import ConfigError
from attest.storage import Postgres
from disputer.judgequeue import HEARTBEAT_S, QUEUE, STALLED_AFTER_S, JudgeWorker, install_schema, judge_app
from disputer.store import DisputerStore

log = logging.getLogger(__name__)
STOP_WAIT_S = 30.0  # a local worker finishing its job after SIGTERM; past this it is killed (its job is redone)


def queue_server(attest_config: Config, command: str) -> Postgres:
    """The PostgreSQL server the queue lives on: the one `[storage] url` names (the workers read and write the
    disputer's state there too)."""
    url = attest_config.storage.url
    if not url:
        raise ConfigError(
            f'{command} needs a PostgreSQL server for its judge queue: set [storage] url = "postgresql://user@host/db" '
            "in config.toml (the password in ATTEST_DB_PASSWORD)"
        )
    return Postgres(url)


def run_worker(network: str | None, concurrency: int | None) -> None:
    """Run judge jobs, `concurrency` at once (default: `[disputer] concurrency`, as the daemon's judge threads),
    until SIGTERM or SIGINT: the first lets the jobs in progress finish (procrastinate's own handlers), a second
    abandons them (they are redone by another worker)."""
    from attest.connect import connect
    from disputer.config import load_attest_config, load_disputer_config
    from disputer.wiring import build_evaluator

    config = load_disputer_config()
    attest_config = load_attest_config()
    where = queue_server(attest_config, "disputer worker")
    at_once = config.concurrency if concurrency is None else concurrency
    ctx = connect(network, config=attest_config)
    install_schema(where)
    with DisputerStore(where) as store:
        worker = JudgeWorker(
            store,
            build_evaluator(ctx, config, attest_config),
            now=lambda: int(ctx.w3.eth.get_block("latest")["timestamp"]),
            safety_margin_s=config.safety_margin_s,
        )
        app = judge_app(where)

        async def main() -> None:
            # Each running job holds a thread while it judges (and briefly for the store): asyncio's default pool
            # of min(32, cpus + 4) threads would cap `concurrency` at 6 on a 2-core machine.
            pool = ThreadPoolExecutor(2 * at_once + 2, thread_name_prefix="judge")
            asyncio.get_running_loop().set_default_executor(pool)
            async with app.open_async():
                log.info("judge worker started", extra={"network": ctx.network.name, "concurrency": at_once})
                await app.run_worker_async(
                    queues=[QUEUE], name=f"judge-{os.getpid()}", concurrency=at_once,
                    additional_context=worker.context(), delete_jobs="always",
                    update_heartbeat_interval=HEARTBEAT_S, stalled_worker_timeout=STALLED_AFTER_S,
                )  # fmt: skip

        asyncio.run(main())
    log.info("judge worker stopped")


def start_local_workers(stack: ExitStack, count: int, network: str) -> list[subprocess.Popen[bytes]]:
    """`count` worker processes on this machine, logging to this process's stderr; stopped (SIGTERM, then SIGKILL
    after `STOP_WAIT_S`) when `stack` closes."""
    command = [sys.executable, "-c", "from disputer.cli import main; main()", "worker", "--network", network]
    started: list[subprocess.Popen[bytes]] = []
    stack.callback(stop_local_workers, started)
    for _ in range(count):
        started.append(subprocess.Popen(command, stdin=subprocess.DEVNULL))
    log.info("local judge workers started", extra={"workers": [p.pid for p in started]})
    return started


def stop_local_workers(started: list[subprocess.Popen[bytes]]) -> None:
    for proc in started:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    for proc in started:
        try:
            proc.wait(timeout=STOP_WAIT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
