"""What the running daemon tells operators: JSON log lines, Prometheus metrics and a health check on 127.0.0.1.

Log lines are one JSON object each (`ts`, `level`, `logger`, `msg`, plus the record's `extra` fields). A line
with an `"alert"` field asks for a human (a model that keeps failing, a transaction that will not land). Nothing
secret is ever a field: keys stay in the accounts module and the providers scrub their errors.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from attest.localnet import HOST

_RESERVED = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None)).keys()) | {"message", "asctime"}
Labels = tuple[tuple[str, str], ...]


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _RESERVED and not key.startswith("_"):
                data[key] = value
        if record.exc_info and record.exc_info[1] is not None:
            data["error"] = f"{type(record.exc_info[1]).__name__}: {record.exc_info[1]}"
        return json.dumps(data, default=str, ensure_ascii=False)


def json_logging(level: int = logging.INFO) -> logging.Handler:
    """Send the `disputer` loggers' records to stderr as JSON lines; returns the handler (to remove it later)."""
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("disputer")
    logger.addHandler(handler)
    logger.setLevel(level)
    logger.propagate = False
    return handler


def _labels(labels: Mapping[str, str] | None) -> Labels:
    return tuple(sorted((labels or {}).items()))


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


class Metrics:
    """Counters and gauges with labels, rendered in the Prometheus text format (0.0.4)."""

    def __init__(self, prefix: str = "disputer") -> None:
        self.prefix = prefix
        self._lock = threading.Lock()
        self._help: dict[str, tuple[str, str]] = {}  # name -> (type, help)
        self._values: dict[str, dict[Labels, float]] = {}
        self.started = time.time()
        self.last_poll_ok: float | None = None
        self.last_error: str | None = None

    def describe(self, name: str, kind: str, text: str) -> None:
        with self._lock:
            self._help[name] = (kind, text)
            self._values.setdefault(name, {})

    def inc(self, name: str, amount: float = 1.0, labels: Mapping[str, str] | None = None) -> None:
        with self._lock:
            series = self._values.setdefault(name, {})
            key = _labels(labels)
            series[key] = series.get(key, 0.0) + amount

    def set(self, name: str, value: float, labels: Mapping[str, str] | None = None) -> None:
        with self._lock:
            self._values.setdefault(name, {})[_labels(labels)] = value

    def value(self, name: str, labels: Mapping[str, str] | None = None) -> float:
        with self._lock:
            return self._values.get(name, {}).get(_labels(labels), 0.0)

    def render(self) -> str:
        lines: list[str] = []
        with self._lock:
            for name in sorted(self._values):
                full = f"{self.prefix}_{name}"
                kind, text = self._help.get(name, ("untyped", name))
                lines.append(f"# HELP {full} {text}")
                lines.append(f"# TYPE {full} {kind}")
                for labels, value in sorted(self._values[name].items()):
                    shown = ",".join(f'{k}="{_escape(v)}"' for k, v in labels)
                    lines.append(f"{full}{{{shown}}} {value:g}" if shown else f"{full} {value:g}")
        return "\n".join(lines) + "\n"

    def health(self, max_age_s: float) -> tuple[bool, dict[str, Any]]:
        """Healthy when a poll succeeded within `max_age_s` (or the daemon started less than that ago)."""
        now = time.time()
        reference = self.last_poll_ok if self.last_poll_ok is not None else self.started
        ok = now - reference <= max_age_s
        return ok, {
            "ok": ok,
            "last_poll_ok": self.last_poll_ok,
            "seconds_since_poll": None if self.last_poll_ok is None else round(now - self.last_poll_ok, 3),
            "last_error": self.last_error,
        }


def standard_metrics() -> Metrics:
    metrics = Metrics()
    for name, kind, text in (
        ("polls_total", "counter", "watcher polls, by result"),
        ("assertions_seen_total", "counter", "new assertions stored by the watcher"),
        ("evaluations_total", "counter", "assertions evaluated, by outcome"),
        ("decisions_total", "counter", "decisions recorded, by action"),
        ("judge_calls_total", "counter", "calls to the judge"),
        ("undecided_total", "counter", "evaluations without a verdict (model faults, records not fetched)"),
        ("txs_total", "counter", "transactions, by kind and result"),
        ("alerts_total", "counter", "alert log lines, by reason"),
        ("checkpoint_block", "gauge", "the last block scanned"),
        ("pending_assertions", "gauge", "our assertions seen but not decided"),
        ("up", "gauge", "1 while the daemon runs"),
    ):
        metrics.describe(name, kind, text)
    return metrics


class TelemetryServer:
    """GET /metrics (Prometheus text) and /healthz (JSON; 503 when unhealthy) on 127.0.0.1 in a thread."""

    def __init__(self, metrics: Metrics, port: int, *, max_age_s: float) -> None:
        self.metrics = metrics
        self.max_age_s = max_age_s
        served = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                if self.path == "/metrics":
                    body, status, kind = served.metrics.render().encode(), 200, "text/plain; version=0.0.4"
                elif self.path == "/healthz":
                    ok, data = served.metrics.health(served.max_age_s)
                    body, status, kind = json.dumps(data).encode(), 200 if ok else 503, "application/json"
                else:
                    body, status, kind = b"not found\n", 404, "text/plain"
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self._server = ThreadingHTTPServer((HOST, port), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="disputer-telemetry", daemon=True)

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def start(self) -> TelemetryServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


def alert(logger: logging.Logger, metrics: Metrics, what: str, message: str, **fields: Any) -> None:
    """An alert: a warning line with `"alert": "<what>"` (e.g. "undecided") and a count by that reason."""
    metrics.inc("alerts_total", labels={"reason": what})
    logger.warning(message, extra={**fields, "alert": what})
