"""A fault-injecting JSON-RPC proxy for tests: it sits between a client and a real node (anvil) and, for a
seeded random share of calls, answers badly instead of forwarding.

Fault kinds: HTTP 500/502/503, a JSON-RPC error object ("header not found", what a load-balanced node lagging
a block says), a slow answer, a timeout (held past the client's timeout, never forwarded), a dropped
connection (closed without an answer, never forwarded), and `lost_response`: forwarded to the node, which acts
on it (an eth_sendRawTransaction lands on chain), then the connection is closed as if the answer were lost.

`script` forces a fault on the n-th distinct call of a method (a client's retries of one request do not count
again, so "the second transaction sent" stays the second whatever the dice did), and `down` fails every call;
`counts` and `by_method` say what was injected, for assertions and reports.
"""

from __future__ import annotations

import http.client
import json
import random
import socket
import struct
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Literal, get_args
from urllib.parse import urlsplit

Fault = Literal["http_500", "http_502", "http_503", "rpc_error", "slow", "timeout", "drop", "lost_response"]
FAULTS: tuple[Fault, ...] = get_args(Fault)


@dataclass
class Scripted:
    method: str
    nth: int  # 1-based: the n-th distinct call (by params) of `method` from the moment it was scripted
    fault: Fault
    then_down: bool  # the proxy stays down after this call (until `down` is cleared)
    seen: set[str] = field(default_factory=set)
    fired: bool = False


@dataclass
class FaultProxy:
    upstream: str
    rate: float = 0.2
    seed: int = 0
    faults: tuple[Fault, ...] = FAULTS
    slow_s: tuple[float, float] = (1.0, 3.0)
    hold_s: float = 3.5  # longer than the client's timeout
    down_fault: Fault = "drop"
    calls: int = 0
    forwarded: int = 0
    counts: Counter[str] = field(default_factory=Counter)  # fault kind -> injected
    by_method: Counter[tuple[str, str]] = field(default_factory=Counter)  # (method, fault kind or "ok") -> calls
    down: bool = False

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)
        self._lock = threading.Lock()
        self._scripts: list[Scripted] = []
        parts = urlsplit(self.upstream)
        self._up_host, self._up_port = parts.hostname or "127.0.0.1", parts.port or 80
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="faultproxy", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def __enter__(self) -> FaultProxy:
        self._thread.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, err: BaseException | None, tb: TracebackType | None) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def script(self, method: str, fault: Fault, *, nth: int = 1, then_down: bool = False) -> None:
        with self._lock:
            self._scripts.append(Scripted(method, nth, fault, then_down))

    def fired(self) -> bool:
        """Whether every scripted fault has happened."""
        with self._lock:
            return all(s.fired for s in self._scripts)

    def injected(self) -> int:
        return sum(self.counts.values())

    def choose(self, method: str, params: str = "") -> Fault | None:
        """What this call gets: a fault kind, or None to forward it untouched."""
        with self._lock:
            self.calls += 1
            fault = self._scripted(method, params)
            if fault is None and self.down:
                fault = self.down_fault
            # The random draw happens on every call, so a script or an outage does not shift the seeded sequence.
            draw, pick = self._rng.random(), self._rng.choice(self.faults)
            if fault is None and draw < self.rate:
                fault = pick
            if fault is None:
                self.forwarded += 1
            else:
                self.counts[fault] += 1
            self.by_method[(method, fault or "ok")] += 1
            return fault

    def _scripted(self, method: str, params: str) -> Fault | None:
        for s in self._scripts:
            if s.fired or s.method != method or params in s.seen:
                continue
            s.seen.add(params)
            if len(s.seen) == s.nth:
                s.fired = True
                if s.then_down:
                    self.down = True
                return s.fault
        return None

    def slow_delay(self) -> float:
        with self._lock:
            return self._rng.uniform(*self.slow_s)

    def forward(self, body: bytes) -> tuple[int, bytes]:
        conn = http.client.HTTPConnection(self._up_host, self._up_port, timeout=30)
        try:
            conn.request("POST", "/", body, {"Content-Type": "application/json"})
            response = conn.getresponse()
            return response.status, response.read()
        finally:
            conn.close()


def _parse(body: bytes) -> tuple[str, str, Any]:
    """(method, params as canonical JSON, id) of a JSON-RPC request; a batch is named by its first call."""
    try:
        request = json.loads(body)
    except ValueError:
        return "?", "", None
    if isinstance(request, list):
        request = request[0] if request else {}
    if not isinstance(request, dict):
        return "?", "", None
    params = json.dumps(request.get("params"), sort_keys=True)
    return str(request.get("method", "?")), params, request.get("id")


def _handler(proxy: FaultProxy) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            return None

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            method, params, request_id = _parse(body)
            fault = proxy.choose(method, params)
            if fault is None:
                self._answer(*proxy.forward(body))
            elif fault in ("http_500", "http_502", "http_503"):
                self._answer(int(fault[5:]), b"upstream trouble")
            elif fault == "rpc_error":
                error = {"code": -32000, "message": "header not found"}
                self._answer(200, json.dumps({"jsonrpc": "2.0", "id": request_id, "error": error}).encode())
            elif fault == "slow":
                time.sleep(proxy.slow_delay())
                self._answer(*proxy.forward(body))
            elif fault == "timeout":
                time.sleep(proxy.hold_s)
                self._drop()
            elif fault == "drop":
                self._drop()
            else:  # lost_response: the node acts on it, the client never hears
                proxy.forward(body)
                self._drop()

        def _answer(self, status: int, payload: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def _drop(self) -> None:
            # A reset, not a polite close: what a crashed node or a dropping load balancer looks like.
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.close_connection = True
            self.connection.close()

    return Handler
