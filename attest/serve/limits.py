"""What one client may ask: a token bucket per key (rate and burst), and a cap on request bodies that holds
whether or not the client sends Content-Length."""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from attest.serve.errors import ApiError


@dataclass
class Bucket:
    tokens: float
    stamp: float = field(default_factory=time.monotonic)


class RateLimiter:
    """`rate` requests per second sustained, `burst` at once, per client. Only the event loop touches it."""

    def __init__(self, rate: float, burst: int) -> None:
        self.rate = rate
        self.burst = burst
        self.buckets: dict[str, Bucket] = {}

    def take(self, client: str, *, now: float | None = None) -> float:
        """0.0 when the request may go ahead (a token is spent), else the seconds until a token is back."""
        now = time.monotonic() if now is None else now
        bucket = self.buckets.setdefault(client, Bucket(float(self.burst), now))
        bucket.tokens = min(float(self.burst), bucket.tokens + (now - bucket.stamp) * self.rate)
        bucket.stamp = now
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return 0.0
        return (1.0 - bucket.tokens) / self.rate


def too_many(message: str, wait_s: float, code: str) -> ApiError:
    return ApiError(
        429, message, type="rate_limit_error" if code == "rate_limit_exceeded" else "insufficient_quota", code=code,
        headers={"Retry-After": str(max(1, math.ceil(wait_s)))},
    )  # fmt: skip


class BodyLimit:
    """413 for a body over `max_bytes`: at once from Content-Length, else as soon as the chunks read pass it."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._refuse(send)
            return
        seen = 0
        started = False

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise _TooLarge
            return message

        async def tracked(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted, tracked)
        except _TooLarge:
            if not started:
                await self._refuse(send)

    async def _refuse(self, send: Send) -> None:
        error = ApiError(
            413, f"the request body is over {self.max_bytes} bytes ([serve] max_body_bytes); send a shorter one",
            code="request_too_large",
        )  # fmt: skip
        body = json.dumps(error.body()).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": 413, "headers": headers})
        await send({"type": "http.response.body", "body": body})


class _TooLarge(Exception):
    pass
