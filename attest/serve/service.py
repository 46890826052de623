"""What the routes share: the config, the API key book, the limits and the metrics, and the one way an answer is
made (the ask flow in a worker thread, within the time limit and the caller's quota)."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from functools import partial

from fastapi import Request

from attest.config import Config
from attest.flow.ask import AskRequest, AskResult, ask
from attest.flow.attester import Attester
from attest.serve import shape
from attest.serve.errors import ApiError
from attest.serve.keys import KeyBook
from attest.serve.limits import RateLimiter, too_many
from attest.serve.metrics import Metrics

WORKERS = 64  # answers in progress at once


@dataclass(frozen=True)
class Client:
    key_id: int  # the API key the request came with: what its rate and quota are counted against


class Service:
    """What the routes share: the config, the key book (opened when keys are required), limits and metrics."""

    def __init__(self, config: Config, require_keys: bool) -> None:
        self.config = config
        self.settings = config.serve
        self.require_keys = require_keys
        self.keys = KeyBook() if require_keys else None
        self.limiter = RateLimiter(self.settings.rate_per_s, self.settings.burst)
        self.metrics = Metrics()
        self.models = shape.served_models(config)
        self._attester: Attester | None = None
        # An answer spends most of its time waiting (the model, the fsyncs of its pin, the group commit), not on
        # the CPU: asyncio's default pool (CPUs + 4 threads) would cap the answers in progress at 6 on 2 cores.
        self._workers = ThreadPoolExecutor(WORKERS, thread_name_prefix="attest-answer")
        self._attester_lock = threading.Lock()

    def client(self, request: Request) -> Client | None:
        """The caller's key, within its rate (429 with Retry-After otherwise); None when keys are off (a loopback
        bind with no key made: the machine's own users, whom no limit is kept for)."""
        if self.keys is None:
            return None
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise ApiError(
                401, "an API key is required: send `Authorization: Bearer KEY` (`attest serve keys create NAME`)",
                code="invalid_api_key",
            )  # fmt: skip
        key = self.keys.check(token.strip())
        if key is None:
            raise ApiError(401, "the API key is unknown or revoked; ask for a new one", code="invalid_api_key")
        wait = self.limiter.take(f"key:{key.id}")
        if wait > 0:
            raise too_many(f"too many requests: at most {self.settings.rate_per_s:g}/s", wait, "rate_limit_exceeded")
        return Client(key.id)

    def _attest_now(self, request: AskRequest) -> AskResult:
        with self._attester_lock:
            if self._attester is None:
                self._attester = Attester(
                    config=self.config, network=self.settings.network, account=self.settings.account,
                    batch=self.settings.assert_mode == "batch",
                )  # fmt: skip
        return self._attester.attest(request)

    def close(self) -> None:
        """Wait for the last answer's ledger commit."""
        self._workers.shutdown(wait=True)
        if self._attester is not None:
            self._attester.close()
        if self.keys is not None:
            self.keys.database.close()

    def reserve(self, client: Client | None) -> bool:
        """Take one of the key's records for today before the ask starts (False: no key, nothing to take), so
        requests running at once cannot together pass the quota; 429 when none is left."""
        if self.keys is None or client is None:
            return False
        if not self.keys.reserve_record(client.key_id, self.settings.daily_records):
            now = datetime.now(UTC)
            midnight = (now + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
            raise too_many(
                f"this key made its {self.settings.daily_records} records for today (UTC); try again tomorrow",
                (midnight - now).total_seconds(), "insufficient_quota",
            )  # fmt: skip
        return True

    async def attest(self, client: Client | None, request: AskRequest) -> AskResult:
        """The ask flow in a worker thread, within the time limit. On a timeout the 504 goes out while the thread
        finishes: its record then lands whole in the ledger (or not at all), unanswered, and counts."""
        reserved = self.reserve(client)
        mode = self.settings.assert_mode
        request = replace(
            request, network=self.settings.network, account=self.settings.account, do_assert=mode != "none",
            batch=mode == "batch",
        )  # fmt: skip
        # Without an assertion per answer, the Attester (config, account, KB read once; group commit) answers.
        job = partial(ask, request, config=self.config) if mode == "each" else partial(self._attest_now, request)
        try:
            answering = asyncio.get_running_loop().run_in_executor(self._workers, job)
            result = await asyncio.wait_for(answering, self.settings.timeout_s)
        except TimeoutError:
            raise ApiError(
                504, f"no answer within {self.settings.timeout_s:g} s ([serve] timeout_s); try again later",
                type="server_error", code="timeout",
            ) from None  # fmt: skip
        except Exception:
            if reserved and self.keys is not None and client is not None:
                self.keys.release_record(client.key_id)  # no record was made: it does not count
            raise
        self.metrics.records.labels(mode).inc()
        return result
