"""Several `attest serve` processes on one PostgreSQL ledger: answers/s of 1 and of 3 processes sharing it under
48 concurrent clients (spread over the servers), then where every answered record is (in the ledger, pinned, in
exactly one asserted batch, its root asserted once). The baseline, in the same run: one process on a SQLite
ledger in its home, as `attest serve` runs by default.

    python -m bench serve_shared [--quick]
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from bench.common import ROOT, Table, env_var, percentile, throwaway_home
from tests.support.postgres import PostgresServer, find_bindir
from tests.support.serve_load import Landed, Load, Server, drive, landed, wait_until_landed

CLIENTS = 48
KB_DOCS = ROOT / "tests" / "fixtures" / "kb" / "good"
QUESTION = "How often should the wick be trimmed?"  # the fixture KB answers it, so the extractive model does too
HEADERS = (
    "ledger", "server processes", "answers/s", "p50 (ms)", "p99 (ms)", "errors",
    "answered/in ledger/pinned/in one asserted batch", "lost/asserted twice", "batches", "vs 1 process on SQLite",
)  # fmt: skip


def _config(url: str | None) -> str:
    storage = f'[storage]\nurl = "{url}"\n\n' if url else ""
    return (
        f'{storage}[defaults]\naccount = "dev:1"\n\n[serve]\nassert = "batch"\nrate_per_s = 100000\n'
        "burst = 100000\n\n[batch]\nmax_records = 500\nmax_age_s = 1\n"
    )


@dataclass(frozen=True)
class Run:
    ledger: str
    processes: int
    load: Load
    landed: Landed


def _serve(home: Path, processes: int, n: int, url: str | None) -> Load:
    """A warm-up round, then `n` answers from CLIENTS clients spread over `processes` servers."""
    from attest.storage import Postgres

    with tempfile.TemporaryDirectory() as logs:
        servers = [Server(home, Path(logs) / f"serve{i}.log") for i in range(processes)]
        try:
            for server in servers:
                server.start()
            urls = [s.url for s in servers]
            # One question for all: servers answering it in the same microsecond make the same record twice,
            # which must end as one leaf of one asserted batch (see the table's note).
            asyncio.run(drive(urls, clients=CLIENTS, requests=CLIENTS, question=QUESTION, model="extractive"))
            load = asyncio.run(drive(urls, clients=CLIENTS, requests=n, question=QUESTION, model="extractive"))
            wait_until_landed(home, load.answered, timeout_s=300, server=Postgres(url) if url else None)
        finally:
            for server in servers:
                server.stop()
    return load


def measure(n: int) -> list[Run]:
    from attest.chain.oov3 import OptimisticOracleV3
    from attest.kb import KnowledgeBase
    from attest.storage import Postgres
    from attest.storage.postgres import PASSWORD_ENV

    bindir = find_bindir()
    if bindir is None:
        raise SystemExit("PostgreSQL is not installed: `apt-get install postgresql` (scripts/dev test installs it)")
    database = PostgresServer(bindir)
    database.start()
    runs = []
    try:
        with (
            throwaway_home() as (home, w3, deployment),
            env_var("ATTEST_HOME", str(home)),
            env_var(PASSWORD_ENV, database.password),
        ):
            with KnowledgeBase() as kb:
                kb.add_path(KB_DOCS)
            oov3 = OptimisticOracleV3(w3, deployment.oov3)
            for ledger, processes in (("SQLite", 1), ("PostgreSQL", 1), ("PostgreSQL", 3)):
                url = database.new_database() if ledger == "PostgreSQL" else None  # each run its own ledger
                (home / "config.toml").write_text(_config(url))
                start_block = w3.eth.block_number
                load = _serve(home, processes, n, url)
                events = oov3.events_between(start_block, w3.eth.block_number)
                count = landed(home, load.answered, events, Postgres(url) if url else None)
                runs.append(Run(ledger, processes, load, count))
    finally:
        database.stop()
    return runs


def _ms(values: Sequence[float], p: float) -> str:
    return f"{percentile(values, p) * 1000:.0f}"


def run(quick: bool = False) -> list[Table]:
    n = 150 if quick else 1000
    runs = measure(n)
    base = runs[0].load.rate
    rows = []
    for r in runs:
        c = r.landed
        rows.append((
            r.ledger, str(r.processes), f"{r.load.rate:.0f}", _ms(r.load.latencies_s, 50),
            _ms(r.load.latencies_s, 99), str(len(r.load.errors)),
            f"{c.answered}/{c.in_ledger}/{c.pinned}/{c.in_one_asserted_batch}", f"{c.lost}/{c.asserted_twice}",
            str(c.batches), f"{r.load.rate / base:.2f}x",
        ))  # fmt: skip
    return [
        Table(
            f"`attest serve` processes sharing one PostgreSQL ledger: {CLIENTS} concurrent clients, {n} chat "
            "completions (extractive model), on the devnet",
            HEADERS,
            rows,
            f"Each row its own ledger (a fresh database on a PostgreSQL server the bench starts in a temporary "
            f"directory, fsync off like the tests'; or the home's SQLite file). The {CLIENTS} aiohttp clients are "
            'spread over the servers, one warm-up round first. `[serve] assert = "batch"`: one server leads the '
            "account's batches (`attest_batch_leader`) and asserts them; after the load every answered record is "
            "counted in the ledger, the block store, the batch manifests and OOv3's AssertionMade logs (`batches` "
            "counts the warm-up's too). The machine has 2 cores, shared by the servers, the clients, anvil and "
            "PostgreSQL. One question for all: two servers sometimes answer it in the same microsecond and make the "
            "same record twice (same bytes, digest and CID); its rows share one leaf of one batch.",
        ),
    ]


def main(argv: list[str]) -> None:
    for table in run(quick="--quick" in argv):
        print(table.markdown())


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main(sys.argv[1:])
