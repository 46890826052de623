"""A fake OpenAI-compatible judge for the disputer bench and its tests.

Every chat completion waits a fixed latency, as a hosted model does, then answers one JSON verdict chosen from
the request: the first rule whose marker phrase appears in the prompt (the graded answer) gives the score and
may give its own latency; otherwise the default score. The server is threaded with a deep accept queue, so
requests in flight overlap the way they do at a real API, and it counts the most it ever had in flight.

`JudgeServer` runs in this process (tests); `judge_process` runs the same server in a child interpreter (the
bench), so the judge's own parsing and serving never compete with the daemon for this process's GIL:

    python -m bench.fake_judge --latency 1.0 --rule "never needs trimming=0.05"
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any

ROOT = Path(__file__).resolve().parent.parent  # not bench.common's: the child should not import web3

COMPLETIONS = "/v1/chat/completions"
STATS = "/stats"


@dataclass(frozen=True)
class Rule:
    marker: str  # a phrase only the answers this rule grades contain
    score: float
    latency_s: float | None = None  # None: the server's latency


@dataclass(frozen=True)
class Stats:
    requests: int
    max_in_flight: int


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 1024  # socketserver's 5 would drop SYNs from a burst of concurrent clients

    def handle_error(self, request: object, client_address: object) -> None:
        # A client that gave up drops its connection; writing to it then fails, which is no fault of the server.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)  # type: ignore[arg-type]


class JudgeServer:
    """`with JudgeServer(rules, latency_s=1.0) as judge:` then point an OpenAI client at `judge.base_url`."""

    def __init__(
        self, rules: Sequence[Rule] = (), *, latency_s: float = 1.0, default_score: float = 0.95, port: int = 0
    ) -> None:
        self.rules = tuple(rules)
        self.latency_s = latency_s
        self.default_score = default_score
        self._port = port
        self._lock = threading.Lock()
        self._in_flight = 0
        self._max_in_flight = 0
        self._requests = 0
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        assert self._server is not None, "use the judge server inside `with`"
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    def stats(self) -> Stats:
        with self._lock:
            return Stats(self._requests, self._max_in_flight)

    def verdict(self, prompt: str) -> tuple[float, float]:
        """(score, latency) for a request whose prompt text is `prompt`."""
        for rule in self.rules:
            if rule.marker in prompt:
                return rule.score, self.latency_s if rule.latency_s is None else rule.latency_s
        return self.default_score, self.latency_s

    def __enter__(self) -> JudgeServer:
        judge = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive: the SDK's pool reuses its connections
            # Headers and body go out in two writes; with Nagle on, the client's delayed ACK held the body back
            # 40 ms on every reply of a kept-alive connection (a judge of "1 s" answered in 1.04 s).
            disable_nagle_algorithm = True

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                judge._complete(self)

            def do_GET(self) -> None:
                stats = judge.stats()
                _reply(self, 200, {"requests": stats.requests, "max_in_flight": stats.max_in_flight})

        self._server = _Server(("127.0.0.1", self._port), Handler)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="fake-judge", daemon=True
        )
        self._thread.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _complete(self, handler: BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length else b""
        if handler.path != COMPLETIONS:
            _reply(handler, 404, {"error": {"message": f"no route {handler.path}", "type": "not_found"}})
            return
        with self._lock:
            self._requests += 1
            self._in_flight += 1
            self._max_in_flight = max(self._max_in_flight, self._in_flight)
        try:
            score, latency = self.verdict(_prompt(body))
            self._stopping.wait(latency)
            verdict = json.dumps({"score": score, "rationale": f"bench verdict {score}"})
            _reply(handler, 200, _completion(verdict))
        finally:
            with self._lock:
                self._in_flight -= 1


def _prompt(body: bytes) -> str:
    try:
        data = json.loads(body)
        return "\n".join(str(m.get("content", "")) for m in data.get("messages", []) if isinstance(m, dict))
    except (ValueError, AttributeError):
        return ""


def _completion(text: str) -> dict[str, Any]:
    return {
        "id": "chatcmpl-bench-judge",
        "object": "chat.completion",
        "created": 1_700_000_000,
        "model": "bench-judge",
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop", "logprobs": None}
        ],
        "usage": {"prompt_tokens": 400, "completion_tokens": 20, "total_tokens": 420},
    }


def _reply(handler: BaseHTTPRequestHandler, status: int, body: Any) -> None:
    data = json.dumps(body).encode()
    handler.send_response(status)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(len(data)))
    handler.end_headers()
    handler.wfile.write(data)


class JudgeProcess:
    """A `JudgeServer` in a child interpreter: its URL, and its counters over HTTP."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url

    def stats(self) -> Stats:
        url = self.base_url.removesuffix("/v1") + STATS
        with urllib.request.urlopen(url, timeout=10) as response:
            data = json.loads(response.read())
        return Stats(int(data["requests"]), int(data["max_in_flight"]))


@contextmanager
def judge_process(rules: Sequence[Rule], *, latency_s: float, default_score: float = 0.95) -> Iterator[JudgeProcess]:
    argv = [sys.executable, "-m", "bench.fake_judge", "--latency", str(latency_s), "--default", str(default_score)]
    for rule in rules:
        argv += ["--rule", f"{rule.marker}={rule.score}" + ("" if rule.latency_s is None else f"@{rule.latency_s}")]
    child = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.PIPE, stdin=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None
        line = child.stdout.readline().strip()
        if not line.startswith("http://"):
            raise RuntimeError(f"the fake judge did not start (exit code {child.poll()})")
        yield JudgeProcess(line)
    finally:
        # Closing its stdin is the child's signal to stop; it is killed if it does not.
        if child.stdin is not None:
            child.stdin.close()
        try:
            child.wait(timeout=10)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


def _rule(text: str) -> Rule:
    marker, _, rest = text.rpartition("=")
    score, _, latency = rest.partition("@")
    return Rule(marker, float(score), float(latency) if latency else None)


def main(argv: Sequence[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.fake_judge")
    parser.add_argument("--latency", type=float, default=1.0, help="seconds every request waits")
    parser.add_argument("--default", type=float, default=0.95, help="the score when no rule matches")
    parser.add_argument("--rule", action="append", default=[], help="MARKER=SCORE[@LATENCY]")
    args = parser.parse_args(argv)
    rules = [_rule(r) for r in args.rule]
    with JudgeServer(rules, latency_s=args.latency, default_score=args.default) as server:
        print(server.base_url, flush=True)
        sys.stdin.read()  # until the parent closes our stdin (or exits)


if __name__ == "__main__":
    main(sys.argv[1:])
