"""The RPC transport: web3's HTTP provider with bounded retries of what is safe to repeat (reads, and
`eth_sendRawTransaction`, whose same signed bytes can only ever be one transaction)."""

from __future__ import annotations

import json
import os
import random
import threading
import time
from collections.abc import Sequence
from typing import Any, cast
from urllib.parse import urlsplit

import requests
from eth_typing import URI
from web3 import HTTPProvider, Web3
from web3.types import RPCEndpoint, RPCResponse

from attest.errors import ChainError, ConfigError, RpcUnavailable

RPC_TRIES = 6
RPC_BACKOFF_S = 0.1  # doubled per retry, with jitter: 0.1 .. 1.6 s, about 3 s in all before giving up
RPC_BACKOFF_CAP_S = 5.0  # also caps a server's Retry-After

_TRANSIENT_HTTP = frozenset({408, 425, 429, 500, 502, 503, 504})
# JSON-RPC errors that say "not now" rather than "no": load-balanced nodes lagging a block, rate limits, gateways.
_TRANSIENT_RPC_MESSAGES = (
    "header not found",
    "timeout",
    "timed out",
    "rate limit",
    "too many requests",
    "limit exceeded",
    "temporarily unavailable",
    "service unavailable",
    "try again",
    "overloaded",
)
_TRANSIENT_RPC_CODES = frozenset({-32005})  # EIP-1474 "limit exceeded"
# Reads repeat harmlessly, and so does eth_sendRawTransaction (same bytes, same hash, one nonce). A node-signed
# eth_sendTransaction would sign a second transaction, and a lost eth_getFilterChanges answer is gone for good.
_RETRIED_NAMESPACES = frozenset({"eth", "net", "web3", "txpool"})
_NEVER_RETRIED = frozenset({"eth_sendTransaction", "eth_getFilterChanges"})
_BAD_URL = (requests.exceptions.InvalidURL, requests.exceptions.InvalidSchema, requests.exceptions.MissingSchema)


def may_retry(method: str) -> bool:
    return method.split("_", 1)[0] in _RETRIED_NAMESPACES and method not in _NEVER_RETRIED


def rpc_origin(url: str) -> str:
    """Scheme, host and port only: provider URLs often carry an API key in their path or query."""
    parts = urlsplit(url)
    host = parts.hostname or "?"
    return f"{parts.scheme}://{host}{f':{parts.port}' if parts.port else ''}"


def _transient_rpc_error(raw: bytes) -> str | None:
    """The node's message when `raw` is a JSON-RPC error worth retrying, or a non-JSON body; else None."""
    head = raw.lstrip()[:1]
    if head not in (b"{", b"["):
        return "a response that is not JSON"
    # Error objects are small; large answers (logs, blocks) are not parsed twice.
    if len(raw) > 4096 or b'"error"' not in raw:
        return None
    try:
        body = json.loads(raw)
    except ValueError:
        return "a response that is not JSON"
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        return None
    message = str(error.get("message", ""))
    lowered = message.lower()
    if "revert" in lowered:  # a contract's own words ("timeout not reached") are an answer, not a hiccup
        return None
    if error.get("code") in _TRANSIENT_RPC_CODES or any(m in lowered for m in _TRANSIENT_RPC_MESSAGES):
        return f"RPC error {error.get('code')}: {message[:80]}"
    return None


class RetryingHTTPProvider(HTTPProvider):
    """web3's HTTP provider with bounded retries and jittered backoff on transient failures: HTTP 5xx/429,
    timeouts, refused or dropped connections, and "try later" JSON-RPC errors. When the endpoint stays down it
    raises `RpcUnavailable`, whose message names the endpoint without its path (API keys live there)."""

    def __init__(
        self,
        url: str,
        *,
        timeout: float,
        tries: int = RPC_TRIES,
        backoff_s: float = RPC_BACKOFF_S,
        **kwargs: Any,
    ) -> None:
        # web3's own retry (ExceptionRetryConfiguration) misses requests' ConnectionError (a dropped connection
        # is not the builtin ConnectionError), never retries JSON-RPC errors, and retries evm_* test methods.
        super().__init__(url, request_kwargs={"timeout": timeout}, exception_retry_configuration=None, **kwargs)
        self.tries = max(1, tries)
        self.backoff_s = backoff_s
        self.reads = ReadCache()

    def make_request(self, method: RPCEndpoint, params: Any) -> RPCResponse:
        lifetime = ReadCache.lifetime(method, params)
        if lifetime is None:
            return super().make_request(method, params)
        key = ReadCache.key(method, params)
        cached = self.reads.get(key)
        if cached is not None:
            return cached
        response = super().make_request(method, params)
        self.reads.put(key, method, lifetime, response)
        return response

    def make_batch_request(self, batch_requests: list[tuple[RPCEndpoint, Any]]) -> list[RPCResponse] | RPCResponse:
        """A JSON-RPC batch of reads: one round trip, retried as a read would be."""
        raw = self._make_request(RPCEndpoint("eth_batch"), self.encode_batch_rpc_request(batch_requests))
        response = self.decode_rpc_response(raw)
        if not isinstance(response, list):
            return response
        return sorted(cast(list[RPCResponse], response), key=lambda r: int(r.get("id") or 0))

    def _make_request(self, method: RPCEndpoint, request_data: bytes) -> bytes:
        tries = self.tries if may_retry(method) else 1
        url = URI(str(self.endpoint_uri))
        why, wait_at_least = "", 0.0
        for attempt in range(tries):
            if attempt:
                backoff = min(RPC_BACKOFF_CAP_S, self.backoff_s * 2 ** (attempt - 1))
                time.sleep(max(wait_at_least, backoff * random.uniform(0.5, 1.0)))
            wait_at_least = 0.0
            try:
                raw: bytes = self._request_session_manager.make_post_request(
                    url, request_data, **self.get_request_kwargs()
                )
            except requests.HTTPError as err:
                status = err.response.status_code if err.response is not None else 0
                if status not in _TRANSIENT_HTTP:
                    raise ChainError(
                        f"the RPC at {rpc_origin(url)} answered HTTP {status} to {method}; "
                        "check the URL and any API key it needs"
                    ) from None
                why, wait_at_least = f"HTTP {status}", _retry_after(err.response)
                continue
            except _BAD_URL:
                raise ChainError(f"{rpc_origin(url)} is not a usable RPC URL; fix it") from None
            except requests.RequestException as err:  # timeouts, refused or dropped connections, cut-off bodies
                why = type(err).__name__
                continue
            if tries == 1:
                return raw
            transient = _transient_rpc_error(raw)
            if transient is None:
                return raw
            why = transient
        raise RpcUnavailable(
            f"the RPC at {rpc_origin(url)} did not answer {method} after {tries} "
            f"{'try' if tries == 1 else 'tries'} ({why})"
        )


RPC_TIMEOUT_ENV = "ATTEST_RPC_TIMEOUT_S"  # seconds per RPC request, for every connection; overrides the defaults


def http_provider(url: str, timeout: float) -> HTTPProvider:
    """Bounded retries on transient RPC failures (see `RetryingHTTPProvider`), `timeout` seconds per request
    unless ATTEST_RPC_TIMEOUT_S says otherwise (a slow remote node; an impatient test), and a `ReadCache`
    (web3's validation asks eth_chainId before every call and estimate; a chain id never changes under a URL)."""
    chosen = os.environ.get(RPC_TIMEOUT_ENV, "").strip()
    if chosen:
        try:
            timeout = float(chosen)
        except ValueError:
            timeout = -1.0
        if not 0 < timeout <= 600:
            raise ConfigError(f"{RPC_TIMEOUT_ENV}={chosen!r} is not a number of seconds in (0, 600]; fix or unset it")
    return RetryingHTTPProvider(url, timeout=timeout)


def _retry_after(response: requests.Response | None) -> float:
    value = response.headers.get("Retry-After", "") if response is not None else ""
    try:
        return min(RPC_BACKOFF_CAP_S, max(0.0, float(value)))
    except ValueError:
        return 0.0


def _selector(signature: str) -> str:
    return "0x" + Web3.keccak(text=signature)[:4].hex()


# Reads whose answer cannot change for a contract at an address: token decimals and symbol, our registry's
# immutables, OOv3's Finder. Kept for the life of the connection.
_FIXED = frozenset(
    _selector(s) for s in ("decimals()", "symbol()", "oracle()", "minLiveness()", "finder()")
)  # fmt: skip
# Reads UMA governance changes rarely: whitelists, minimum bond and final fee, OOv3's cached parameters and
# defaults, Finder lookups. Kept `RARE_TTL_S`, and forgotten at once when a transaction's static call or a mined
# transaction reverts (`ReadCache.forget_rare`): the next check reads the chain again.
_RARE = frozenset(
    _selector(s)
    for s in (
        "getMinimumBond(address)", "isIdentifierSupported(bytes32)", "isOnWhitelist(address)", "cachedOracle()",
        "cachedIdentifiers(bytes32)", "cachedCurrencies(address)", "computeFinalFee(address)", "defaultCurrency()",
        "defaultLiveness()", "getImplementationAddress(bytes32)",
    )
)  # fmt: skip
RARE_TTL_S = 60.0
_FOREVER = float("inf")


class ReadCache:
    """Answers of reads that cannot change (chain id, a contract's code, immutables) or change rarely (a short
    TTL), by (method, params), for one connection. Everything else goes to the node every time."""

    def __init__(self) -> None:
        self._entries: dict[str, tuple[float, RPCResponse]] = {}
        self._lock = threading.Lock()

    @staticmethod
    def lifetime(method: str, params: Any) -> float | None:
        """How long an answer to this request may be reused (seconds), or None: never."""
        if method == "eth_chainId":
            return _FOREVER
        if method == "eth_getCode" and len(params) == 2 and params[1] == "latest":
            return _FOREVER  # only kept when there is code (see `put`)
        if method != "eth_call" or len(params) != 2 or params[1] != "latest" or not isinstance(params[0], dict):
            return None
        call = params[0]
        if set(call) - {"to", "data", "from"}:
            return None
        selector = str(call.get("data", ""))[:10].lower()
        return _FOREVER if selector in _FIXED else RARE_TTL_S if selector in _RARE else None

    @staticmethod
    def key(method: str, params: Any) -> str:
        return json.dumps([method, params], sort_keys=True, default=str).lower()

    def get(self, key: str) -> RPCResponse | None:
        with self._lock:
            entry = self._entries.get(key)
        if entry is None or entry[0] < time.monotonic():
            return None
        return entry[1]

    def put(self, key: str, method: str, lifetime: float, response: RPCResponse) -> None:
        result = response.get("result")
        if "error" in response or result is None or result in ("0x", ""):
            return  # no contract there yet (no code, a call answered with nothing) may change; an error is no answer
        with self._lock:
            self._entries[key] = (time.monotonic() + lifetime, response)

    def forget_rare(self) -> None:
        with self._lock:
            self._entries = {k: v for k, v in self._entries.items() if v[0] == _FOREVER}


def forget_rare_reads(w3: Web3) -> None:
    """A transaction reverted, or would have: what it checked may have changed, so read the rare things again."""
    cache = getattr(w3.provider, "reads", None)
    if isinstance(cache, ReadCache):
        cache.forget_rare()


def prefetch(w3: Web3, requests: Sequence[tuple[str, Any]]) -> None:
    """Read these requests in one JSON-RPC batch (one round trip) into the connection's read cache, so the checks
    that make them next ask nothing of the node. Only what the cache keeps is read; the rest is left to the
    checks themselves. Reads `eth_call` as [{"to", "data"}, "latest"], the form web3 sends."""
    provider = w3.provider
    if not isinstance(provider, RetryingHTTPProvider):
        return
    wanted: list[tuple[str, Any, float]] = []
    for method, params in requests:
        lifetime = ReadCache.lifetime(method, params)
        if lifetime is not None and provider.reads.get(ReadCache.key(method, params)) is None:
            wanted.append((method, params, lifetime))
    if len(wanted) < 2:
        return  # one read is no batch: the check makes it
    try:
        answers = provider.make_batch_request([(RPCEndpoint(m), p) for m, p, _ in wanted])
    except (ChainError, ValueError):  # refused (some providers limit batches): the checks read one by one
        return
    if not isinstance(answers, list) or len(answers) != len(wanted):
        return  # a node that takes no batches answers one error: the checks read one by one
    for (method, params, lifetime), answer in zip(wanted, answers, strict=True):
        provider.reads.put(ReadCache.key(method, params), method, lifetime, answer)


def call_read(to: str, data: str) -> tuple[str, Any]:
    """An `eth_call` request at the latest block, for `prefetch`."""
    return "eth_call", [{"to": Web3.to_checksum_address(to), "data": data}, "latest"]
