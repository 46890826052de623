"""`attest serve` under load, for the crash test and the bench: the server as a real process (`python -m attest
serve`), many concurrent clients over real HTTP (aiohttp), and the count afterwards of where every answered
record ended up (in the ledger, pinned, in exactly one asserted batch, its root asserted once on chain)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import requests as http_sync

from attest.batch.manifest import decode_manifest
from attest.batch.store import BatchBook
from attest.chain.oov3 import AssertionMade
from attest.ipfs.cid import CID
from attest.ipfs.local import LocalStore
from attest.ledger import Ledger
from attest.localnet import HOST
from attest.storage import Postgres
from tests.support.ports import free_port


class Server:
    """`attest serve` on a free loopback port in ATTEST_HOME `home`, its log in `log`."""

    def __init__(self, home: Path, log: Path) -> None:
        self.home, self.log = home, log
        self.port = free_port()
        self.url = f"http://{HOST}:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout_s: float = 60.0) -> None:
        env = {**os.environ, "ATTEST_HOME": str(self.home)}
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "attest", "serve", "--port", str(self.port)],
                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, env=env,
            )  # fmt: skip
        deadline = time.monotonic() + timeout_s
        while True:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"attest serve did not start:\n{self.log.read_text()[-3000:]}")
            try:
                if http_sync.get(self.url + "/healthz", timeout=1).status_code == 200:
                    return
            except http_sync.ConnectionError:
                pass
            time.sleep(0.1)

    def cpu_seconds(self) -> float:
        """CPU time (user + system) the server process has used so far (Linux /proc)."""
        assert self.proc is not None
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def kill(self) -> None:
        """kill -9: no shutdown hook runs."""
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=30)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=60)


@dataclass
class Load:
    answered: list[dict[str, object]] = field(default_factory=list)  # the attestation object of each response
    latencies_s: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def rate(self) -> float:
        return len(self.answered) / self.seconds if self.seconds else 0.0


async def drive(
    url: str | Sequence[str],
    *,
    clients: int,
    requests: int,
    question: str,
    model: str,
    on_answer: Callable[[Load], None] | None = None,
    numbered: bool = False,
) -> Load:
    """`requests` chat completions from `clients` concurrent clients (one connection each); a failed request is
    an error, not retried. Given several servers' URLs, the clients are spread over them, and a client whose
    server fails to answer goes on with the next one, as behind a load balancer. `numbered`: each request's
    question ends in its number, so no two records are alike."""
    urls = [url] if isinstance(url, str) else list(url)
    load = Load()
    left = [requests]

    async def client(http: aiohttp.ClientSession, first: int) -> None:
        server = first
        while left[0] > 0:
            left[0] -= 1
            content = f"{question} #{left[0]}" if numbered else question
            body = {"model": model, "messages": [{"role": "user", "content": content}]}
            started = time.perf_counter()
            try:
                async with http.post(urls[server % len(urls)] + "/v1/chat/completions", json=body) as reply:
                    status, text = reply.status, await reply.text()
            except (aiohttp.ClientError, TimeoutError) as err:
                load.errors.append(f"{type(err).__name__}: {err}")
                server += 1
                continue
            if status != 200:
                load.errors.append(f"{status}: {text[:200]}")
                continue
            load.latencies_s.append(time.perf_counter() - started)
            load.answered.append(json.loads(text)["attestation"])
            if on_answer is not None:
                on_answer(load)

    connector = aiohttp.TCPConnector(limit=clients)
    started = time.perf_counter()
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=120)) as http:
        await asyncio.gather(*(client(http, i) for i in range(clients)))
    load.seconds = time.perf_counter() - started
    return load


@dataclass(frozen=True)
class Landed:
    answered: int  # distinct records whose response reached a client
    in_ledger: int
    pinned: int
    in_one_asserted_batch: int
    lost: int  # answered, but not in an asserted batch
    asserted_twice: int  # records in more than one batch manifest, plus roots asserted more than once
    batches: int


def _ledger_of(home: Path, server: Postgres | None) -> Ledger:
    return Ledger(server or home / "ledger.sqlite")


def landed(
    home: Path, answered: list[dict[str, object]], events: Sequence[object], server: Postgres | None = None
) -> Landed:
    """Where every answered record is now: the ledger (in `home`, or on `server`), the block store of `home`, and
    `events` (OOv3's logs)."""
    ids = {int(str(a["id"])) for a in answered}
    store = LocalStore(home / "ipfs")
    with _ledger_of(home, server) as ledger:
        book = BatchBook(ledger.database)
        batches = {b.id: b for b in book.select()}
        rows = {}
        for i in ids:
            try:
                rows[i] = ledger.get(i)
            except Exception:  # a record the ledger lacks counts as lost
                continue
    pinned = sum(1 for r in rows.values() if r.cid and store.is_pinned(CID.parse(r.cid)))
    good = {
        i for i, r in rows.items()
        if r.batch_id is not None and batches[r.batch_id].status == "asserted" and batches[r.batch_id].assertion_id
    }  # fmt: skip
    in_manifests: dict[str, int] = {}
    for b in batches.values():
        if b.manifest is not None:
            for leaf in decode_manifest(b.manifest).leaves:
                in_manifests[leaf.cid] = in_manifests.get(leaf.cid, 0) + 1
    made = [e for e in events if isinstance(e, AssertionMade)]
    roots = [b.root for b in batches.values() if b.root is not None]
    twice = sum(1 for r in rows.values() if in_manifests.get(r.cid or "", 0) > 1)
    twice += sum(1 for root in roots if sum(1 for e in made if "0x" + e.domain_id.hex() == root) > 1)
    return Landed(len(ids), len(rows), pinned, len(good), len(ids) - len(good), twice, len(batches))


def wait_until_landed(
    home: Path, answered: list[dict[str, object]], timeout_s: float, server: Postgres | None = None
) -> None:
    """Until every answered record is in an asserted batch and none is left queued (the restarted server's
    flusher, or the servers that go on), or the timeout."""
    ids = [int(str(a["id"])) for a in answered]
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with _ledger_of(home, server) as ledger:
            if all(ledger.get(i).status == "asserted" for i in ids) and not BatchBook(ledger.database).queued():
                return
        time.sleep(0.5)


def statuses(home: Path, server: Postgres | None = None) -> dict[str, int]:
    """How many records of the ledger are in each status: answered at the client or not (a kill cuts responses
    already committed)."""
    with _ledger_of(home, server) as ledger:
        rows = ledger.database.conn.execute("SELECT status, count(*) FROM attestations GROUP BY status")
        return {str(status): int(n) for status, n in rows}
