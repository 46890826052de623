"""The service's Prometheus metrics, in a registry of its own (two apps in one process never share counters)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "attest_serve_requests", "HTTP requests answered", ["route", "status"], registry=self.registry
        )
        self.latency = Histogram(
            "attest_serve_request_seconds", "Time to answer a request", ["route"], registry=self.registry,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
        )  # fmt: skip
        self.records = Counter(
            "attest_serve_records", "Records signed, pinned and in the ledger", ["mode"], registry=self.registry
        )
        self.errors = Counter("attest_serve_errors", "Error responses by code", ["code"], registry=self.registry)
        self.batch_leader = Gauge(
            "attest_batch_leader", "1 while this server asserts the account's batches on the chain, 0 while another "
            "server sharing the ledger does", ["chain_id", "account"], registry=self.registry,
        )  # fmt: skip

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
