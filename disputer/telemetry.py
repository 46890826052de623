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
from typing import Any, Literal

import prometheus_client
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, generate_latest

from attest.errors import ConfigError
from attest.localnet import HOST

_RESERVED = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None)).keys()) | {"message", "asctime"}
Kind = Literal["counter", "gauge"]

# Without this every counter also exposes a `<name>_created` gauge: series the exposition never had, which
# dashboards and alerts built on it do not expect. (A process-wide switch; the disputer is the process.)
prometheus_client.disable_created_metrics()  # type: ignore[no-untyped-call]  # untyped upstream


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


class Metrics:
    """Counters and gauges with labels in a registry of their own (several daemons, or tests, in one process do
    not share series), exposed in the Prometheus text format by prometheus_client."""

    def __init__(self, prefix: str = "disputer") -> None:
        self.prefix = prefix
        self.registry = CollectorRegistry(auto_describe=True)
        self._lock = threading.Lock()
        self._series: dict[str, Counter | Gauge] = {}
        self.started = time.time()
        self.last_poll_ok: float | None = None
        self.last_error: str | None = None
        self.poll_error: str | None = None  # why the last poll failed; None once one succeeds

    def describe(self, name: str, kind: Kind, text: str, labels: tuple[str, ...] = ()) -> None:
        """Declare a series (shown from the start, at 0 when it has no labels)."""
        with self._lock:
            self._declare(name, kind, text, labels)

    def _declare(self, name: str, kind: Kind, text: str, labels: tuple[str, ...]) -> Counter | Gauge:
        made = (Counter if kind == "counter" else Gauge)(
            name, text, labels, namespace=self.prefix, registry=self.registry
        )
        self._series[name] = made
        return made

    def _child(self, name: str, kind: Kind, labels: Mapping[str, str] | None) -> Counter | Gauge:
        with self._lock:
            series = self._series.get(name)
            if series is None:  # not declared: the first use says its kind and label names
                series = self._declare(name, kind, name, tuple(sorted(labels or {})))
        return series.labels(**labels) if labels else series

    def inc(self, name: str, amount: float = 1.0, labels: Mapping[str, str] | None = None) -> None:
        self._child(name, "counter", labels).inc(amount)

    def set(self, name: str, value: float, labels: Mapping[str, str] | None = None) -> None:
        gauge = self._child(name, "gauge", labels)
        assert isinstance(gauge, Gauge), f"{name} is a counter"
        gauge.set(value)

    def value(self, name: str, labels: Mapping[str, str] | None = None) -> float:
        found = self.registry.get_sample_value(f"{self.prefix}_{name}", dict(labels or {}))
        return 0.0 if found is None else found

    def render(self) -> str:
        return generate_latest(self.registry).decode()

    def health(self, max_age_s: float) -> tuple[bool, dict[str, Any]]:
        """Healthy when the last poll succeeded, and did so within `max_age_s` (or the daemon started less than
        that ago and has not failed a poll yet)."""
        now = time.time()
        reference = self.last_poll_ok if self.last_poll_ok is not None else self.started
        ok = self.poll_error is None and now - reference <= max_age_s
        return ok, {
            "ok": ok,
            "last_poll_ok": self.last_poll_ok,
            "seconds_since_poll": None if self.last_poll_ok is None else round(now - self.last_poll_ok, 3),
            "last_poll_error": self.poll_error,
            "last_error": self.last_error,
        }


def standard_metrics() -> Metrics:
    metrics = Metrics()
    declared: tuple[tuple[str, Kind, str, tuple[str, ...]], ...] = (
        ("polls_total", "counter", "watcher polls, by result", ("result",)),
        ("assertions_seen_total", "counter", "new assertions stored by the watcher", ()),
        ("evaluations_total", "counter", "assertions evaluated, by outcome", ("outcome",)),
        ("decisions_total", "counter", "decisions recorded, by action", ("action",)),
        ("judge_calls_total", "counter", "calls to the judge", ()),
        ("undecided_total", "counter", "evaluations without a verdict (model faults, records not fetched)", ()),
        ("txs_total", "counter", "transactions, by kind and result", ("kind", "result")),
        ("alerts_total", "counter", "alert log lines, by reason", ("reason",)),
        ("checkpoint_block", "gauge", "the last block scanned", ()),
        ("pending_assertions", "gauge", "our assertions seen but not decided", ()),
        ("up", "gauge", "1 while the daemon runs", ()),
        ("judge_jobs", "gauge", "judge jobs on the queue (`run --workers`), by status: waiting, running", ("status",)),
        ("judge_oldest_waiting_seconds", "gauge", "how long the oldest waiting judge job has waited", ()),
    )
    for name, kind, text, labels in declared:
        metrics.describe(name, kind, text, labels)
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
                    body, status, kind = served.metrics.render().encode(), 200, CONTENT_TYPE_LATEST
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

        try:
            self._server = ThreadingHTTPServer((HOST, port), Handler)
        except OSError as err:
            raise ConfigError(
                f"cannot serve metrics on {HOST}:{port} ({err.strerror}); pick a free port with --metrics-port "
                "(0 turns metrics off)"
            ) from None
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
