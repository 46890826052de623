"""`attest ask` over a slow RPC: JSON-RPC round trips per ask, by method, and wall time excluding the model,
through a proxy that adds 50 ms to every round trip, against the web3-alone anchor (approve + assertTruth
built, signed and sent with plain web3) measured in the same run on the same chain.

A round trip is one HTTP request: a JSON-RPC batch is one round trip however many calls it carries (the table
counts calls by method too). Two figures for `ask`: the first ask of a process (a CLI run: nothing cached in
memory), and later asks of the same process (the library, the disputer). The anchor's first round is timed with
its own set-up (web3 provider, contract objects from the ABIs, chain id, minimum bond), which any client pays once
per process too, and is compared with the first ask; its later rounds with the later asks.

    python -m bench.rpc [--quick]
"""

from __future__ import annotations

import http.client
import json
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from web3 import Web3

from bench.ask import FALLBACK_CORPUS, BareAsserter, _ask_once, fake_openai
from bench.common import Table, env_var, percentile, throwaway_home

LATENCY_S = 0.050
QUERY = "How often should the wick be trimmed?"  # answered by the small fixture KB: every ask asserts
GOAL_X = 1.5


@dataclass
class LatencyProxy:
    """Forwards JSON-RPC to `upstream` after `latency_s`, counting round trips and the calls they carry."""

    upstream: str
    latency_s: float = LATENCY_S
    trips: int = 0
    calls: Counter[str] = field(default_factory=Counter)
    trace: list[str] | None = None  # every call in order, when a list is given
    refuse_batches: bool = False  # answer a batch with one error, as some providers do
    # Receipts asked for before the node mined the transaction: waiting, not work; how many depends on the
    # machine's load (anvil mines an automined transaction just after answering its send).
    unmined_receipts: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def reset(self) -> tuple[int, Counter[str]]:
        with self._lock:
            seen = (self.trips, self.calls)
            self.trips, self.calls, self.unmined_receipts = 0, Counter(), 0
        return seen

    def record_answer(self, body: bytes, answer: bytes) -> None:
        if b"eth_getTransactionReceipt" not in body:
            return
        try:
            asked, answered = json.loads(body), json.loads(answer)
        except ValueError:
            return
        pairs = zip(asked, answered, strict=False) if isinstance(asked, list) and isinstance(answered, list) else []
        if isinstance(asked, dict) and isinstance(answered, dict):
            pairs = [(asked, answered)]
        unmined = sum(
            1 for call, reply in pairs
            if call.get("method") == "eth_getTransactionReceipt" and "result" in reply and reply["result"] is None
        )  # fmt: skip
        with self._lock:
            self.unmined_receipts += unmined

    def record(self, body: bytes) -> None:
        try:
            parsed = json.loads(body)
        except ValueError:
            parsed = {}
        methods = [c.get("method", "?") for c in parsed] if isinstance(parsed, list) else [parsed.get("method", "?")]
        with self._lock:
            self.trips += 1
            self.calls.update(methods)
            if self.trace is not None:
                calls = parsed if isinstance(parsed, list) else [parsed]
                self.trace.append(" + ".join(f"{c.get('method')}{json.dumps(c.get('params'))[:90]}" for c in calls))

    def forward(self, body: bytes) -> bytes:
        parts = urlsplit(self.upstream)
        conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port or 80, timeout=30)
        try:
            conn.request("POST", parts.path or "/", body, {"Content-Type": "application/json"})
            return conn.getresponse().read()
        finally:
            conn.close()


def _handler(proxy: LatencyProxy) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # else a delayed ACK adds ~40 ms to answers sent as headers + body

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            proxy.record(body)
            time.sleep(proxy.latency_s)
            if proxy.refuse_batches and body.lstrip().startswith(b"["):
                answer = b'{"jsonrpc":"2.0","id":null,"error":{"code":-32600,"message":"batches are not supported"}}'
            else:
                answer = proxy.forward(body)
                proxy.record_answer(body, answer)
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

    return Handler


@contextmanager
def devnet_through(home: Path, proxy: LatencyProxy) -> Iterator[None]:
    """`connect("local")` in this home reaches the node through the proxy (it reads the port from node.json)."""
    node_file = home / "devnet" / "node.json"
    original = node_file.read_text()
    node_file.write_text(json.dumps({**json.loads(original), "port": proxy.port}))
    try:
        yield
    finally:
        node_file.write_text(original)


@dataclass
class Run:
    trips: list[int] = field(default_factory=list)
    calls: Counter[str] = field(default_factory=Counter)  # summed over the runs
    wall_ms: list[float] = field(default_factory=list)  # excluding the model's answer

    def add(self, trips: int, calls: Counter[str], wall_ms: float) -> None:
        self.trips.append(trips)
        self.calls.update(calls)
        self.wall_ms.append(wall_ms)

    def per_run(self, method: str) -> float:
        return self.calls[method] / max(1, len(self.trips))


def measure(n: int, latency_s: float = LATENCY_S) -> tuple[Run, Run, Run, Run]:
    """(first ask of a process, later asks, the anchor's first round with its set-up, its later rounds)."""
    from attest.config import Config, Defaults, LlmConfig
    from attest.kb import KnowledgeBase

    first, later, anchor_first, anchor = Run(), Run(), Run(), Run()
    with throwaway_home() as (home, w3, deployment), env_var("ATTEST_HOME", str(home)), fake_openai() as url:
        with KnowledgeBase() as kb:
            kb.add_path(FALLBACK_CORPUS)
        config = Config(defaults=Defaults(account="dev:1"), llm=LlmConfig(provider="openai", base_url=url))
        proxy = LatencyProxy(str(w3.provider.endpoint_uri), latency_s)  # type: ignore[attr-defined]
        try:
            with devnet_through(home, proxy):
                for i in range(n + 1):
                    proxy.reset()
                    timings, wall, claim = _ask_once(QUERY, config)
                    trips, calls = proxy.reset()
                    (first if i == 0 else later).add(trips, calls, wall - timings["answer"])
                proxy.reset()
                started = time.perf_counter()
                bare = BareAsserter(Web3(Web3.HTTPProvider(proxy.url)), deployment, claim)
                setup_ms = (time.perf_counter() - started) * 1000
                for i in range(n + 1):
                    ms = bare.once(i)
                    trips, calls = proxy.reset()
                    if i == 0:
                        anchor_first.add(trips, calls, setup_ms + ms)
                    else:
                        anchor.add(trips, calls, ms)
        finally:
            proxy.close()
    return first, later, anchor_first, anchor


def run(quick: bool = False) -> list[Table]:
    n = 3 if quick else 10
    first, later, anchor_first, anchor = runs = measure(n)
    methods = sorted({m for r in runs for m in r.calls})
    rows: list[tuple[str, ...]] = [(m, *(f"{r.per_run(m):g}" for r in runs)) for m in methods]
    rows.append(("**round trips (p50)**", *(f"{percentile(r.trips, 50):g}" for r in runs)))
    rows.append(("**wall ms excl. model (p50)**", *(f"{percentile(r.wall_ms, 50):.0f}" for r in runs)))
    # Like with like: the first ask against the anchor's first round, later asks against its later rounds.
    ratios = [
        (percentile(r.trips, 50) / percentile(a.trips, 50), percentile(r.wall_ms, 50) / percentile(a.wall_ms, 50))
        for r, a in ((first, anchor_first), (later, anchor))
    ]
    rows.append(("x anchor (trips / wall)", *(f"{t:.2f}x / {w:.2f}x" for t, w in ratios), "1x / 1x", "1x / 1x"))
    met = all(t <= GOAL_X and w <= GOAL_X for t, w in ratios)
    return [
        Table(
            f"`attest ask` JSON-RPC round trips through a proxy adding {LATENCY_S * 1000:.0f} ms each, {n} asks",
            (
                "method (calls per ask)",
                "first ask of a process",
                "later asks",
                "anchor: web3 alone, first round with its set-up",
                "anchor: later rounds",
            ),
            rows,
            f"Goal: at most {GOAL_X}x the anchor's round trips and wall time — {'met' if met else 'NOT met'}. "
            "Library flow `attest.flow.ask.ask` on the devnet (provider `openai` at a local server that answers at "
            "once; its time is excluded), approve + assertTruth each ask (no standing allowance). A JSON-RPC batch is "
            "one round trip; the method rows count calls. The anchor sends the same two transactions with web3 "
            "alone (build with its gas estimate and fees, nonce, sign, send, wait for the receipt) through the same "
            "proxy; its first round includes its set-up (provider, contract objects, chain id, minimum bond), as the "
            "first ask includes its own, and each ask is compared with the matching anchor column. Quick figures on a "
            "shared 2-core machine.",
        )
    ]


def main(argv: list[str]) -> None:
    for table in run(quick="--quick" in argv):
        print(table.markdown())


if __name__ == "__main__":
    main(sys.argv[1:])
