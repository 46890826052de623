"""A client for the IPFS Pinning Service API (ipfs/pinning-services-api-spec), spoken by Pinata, Filebase and others.

A pinning service is given a CID and fetches the DAG over IPFS itself; no bytes are uploaded here. So `put` only
computes the CID locally and asks for a pin: the service can finish only if the blocks are reachable on IPFS (a
node we also pin to, or the `origins` passed to the constructor).

`pin` waits up to `timeout_s` for the pin to settle. A pin still "queued" or "pinning" when the wait ends is
reported with `ok=True` and that status: the service accepted it and keeps working, so it is not a failure, but
it is not final either; callers wanting certainty check `status == "pinned"` (or later, `status(requestid)`).

Pin requests are reused: `pin` and `put` first look for a live request for the CID, so a retry after a crash or
a lost response never creates (and pays for) a second pin.

The token goes into one header and nowhere else: not into messages, reprs or results. Text quoted from the
service is scrubbed of it too, in case a service echoes credentials back.
"""

from __future__ import annotations

import http.client
import json
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlencode, urlsplit

from attest.errors import NotFound, StoreError
from attest.ipfs._http import BodyTooLarge, ShortBody, read_body, time_left
from attest.ipfs.store import DEFAULT_TIMEOUT_S, PinResult
from attest.ipfs.unixfs import cid_of
from attest.jsonsafe import nested_deeper_than

if TYPE_CHECKING:
    from attest.ipfs.cid import CID

STATUSES = ("queued", "pinning", "pinned", "failed")
_LIVE = ("queued", "pinning", "pinned")
MAX_LIST_LIMIT = 1000  # the spec's maximum page size
HAS_TIMEOUT_S = 10.0  # `has` must answer quickly; it is a hint, `pin` is the authority
_MAX_JSON_DEPTH = 16  # a PinStatus list nests 4 deep; see attest.jsonsafe for why the bound matters
_MAX_RESPONSE_BYTES = 16 * 1024 * 1024  # a 1000-pin page is ~1 MB; anything far larger is a broken server
_MAX_RETRY_AFTER_S = 30.0
_QUOTE_CHARS = 200


@dataclass(frozen=True)
class PinStatus:
    """One pin request as the service reports it."""

    requestid: str
    status: str  # one of STATUSES
    created: datetime
    cid: str
    name: str | None = None
    origins: tuple[str, ...] = ()
    meta: Mapping[str, str] = field(default_factory=dict)
    delegates: tuple[str, ...] = ()  # multiaddrs of the service's nodes; an IPFS node may connect to them
    info: Mapping[str, str] = field(default_factory=dict)


class _Transient(StoreError):
    """A 429, a 5xx or a dropped connection: worth another try while time remains."""

    def __init__(self, message: str, *, rate_limited: bool = False, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.rate_limited = rate_limited  # a 429 was not processed at all, so even a POST may be repeated
        self.retry_after = retry_after


class _OutOfTime(StoreError):
    """The call's deadline passed before the service answered."""


class _GaveUp(StoreError):
    """Transient failures outlasted our retries or our time."""


class PinningService:
    def __init__(
        self,
        endpoint: str,
        token: str,
        *,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        poll_interval_s: float = 1.0,
        origins: Sequence[str] = (),
        token_env: str = "ATTEST_PINNING_TOKEN",
        max_retries: int = 3,
        backoff_s: float = 0.5,
    ) -> None:
        parts = urlsplit(endpoint)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise StoreError(f"pinning endpoint {endpoint!r} is not an http(s) URL; use e.g. https://host/psa")
        if parts.username or parts.password or parts.query or parts.fragment:
            # Credentials in a URL end up in logs and messages; the token has its own channel.
            raise StoreError(
                f"pinning endpoint for {parts.hostname} must be a plain base URL (no user, query or fragment); "
                f"the token goes in {token_env}"
            )
        token = token.strip()
        if not token:
            raise StoreError(f"no pinning service token; set {token_env}")
        if not all(0x21 <= ord(ch) <= 0x7E for ch in token):
            # http.client would reject it with an error quoting the header value, i.e. the token.
            raise StoreError(f"the pinning token in {token_env} has characters an HTTP header cannot carry")
        if timeout_s <= 0 or poll_interval_s <= 0 or max_retries < 0 or backoff_s < 0:
            raise ValueError("timeout_s and poll_interval_s must be positive; max_retries and backoff_s not negative")
        self._https = parts.scheme == "https"
        self._host = parts.hostname
        self._port = parts.port
        self._base_path = parts.path.rstrip("/")
        self._token = token
        self._token_env = token_env
        self.name = f"pinning {parts.netloc}"
        self.timeout_s = timeout_s
        self.poll_interval_s = poll_interval_s
        self.origins = tuple(origins)
        self.max_retries = max_retries
        self.backoff_s = backoff_s

    def __repr__(self) -> str:
        return f"PinningService({self.name!r}, timeout_s={self.timeout_s:g})"

    # -- ContentStore --------------------------------------------------------------------------------------
    def put(self, data: bytes, *, cid_version: int = 1) -> CID:
        """Compute the CID locally and ask for a pin without waiting for it; the bytes must be on IPFS."""
        cid = cid_of(data, cid_version=cid_version)
        self._find_or_create(str(cid), self._deadline(self.timeout_s))
        return cid

    def get(self, cid: CID, *, timeout_s: float | None = None) -> bytes:
        raise StoreError("a pinning service does not serve content; read through a gateway or node")

    def pin(self, cid: CID) -> PinResult:
        """Ask for a pin (or find the live request for it) and poll until it settles or `timeout_s` passes."""
        deadline = self._deadline(self.timeout_s)
        current = self._find_or_create(str(cid), deadline)
        while current.status in ("queued", "pinning") and time.monotonic() + self.poll_interval_s < deadline:
            time.sleep(self.poll_interval_s)
            try:
                current = self._status(current.requestid, deadline)
            except (_OutOfTime, _GaveUp):
                break  # the pin was accepted; report what we last knew rather than fail it
        return self._result(str(cid), current)

    def has(self, cid: CID) -> bool:
        """True when a pin of `cid` with status "pinned" exists on this account.

        A service that cannot say within `HAS_TIMEOUT_S` raises `StoreError`: "unknown" is not "no".
        """
        budget = min(self.timeout_s, HAS_TIMEOUT_S)
        try:
            return bool(self._list(self._deadline(budget), cid=str(cid), statuses=("pinned",), limit=1))
        except _OutOfTime:
            raise StoreError(f"{self.name} did not answer within {budget:g}s; try again later") from None

    # -- the rest of the API ---------------------------------------------------------------------------------
    def list_pins(
        self, status: str | Iterable[str] | None = None, *, cid: CID | str | None = None, limit: int = 100
    ) -> list[PinStatus]:
        """Pin requests, newest first. `status=None` means every status (the spec's default is "pinned" only)."""
        statuses = STATUSES if status is None else (status,) if isinstance(status, str) else tuple(status)
        unknown = [s for s in statuses if s not in STATUSES]
        if unknown or not statuses:
            raise ValueError(f"status must be among {', '.join(STATUSES)}; got {unknown or 'none'}")
        if not 1 <= limit <= MAX_LIST_LIMIT:
            raise ValueError(f"limit must be between 1 and {MAX_LIST_LIMIT} (the spec's maximum page)")
        return self._list(
            self._deadline(self.timeout_s), cid=None if cid is None else str(cid), statuses=statuses, limit=limit
        )

    def status(self, requestid: str) -> PinStatus:
        return self._status(requestid, self._deadline(self.timeout_s))

    def replace(self, requestid: str, cid: CID | str) -> PinStatus:
        """Swap the pin of one request for another CID; the service answers with a new request id."""
        body = self._pin_body(str(cid))
        # A lost answer might mean the swap happened; repeating it could 404, so only 429 is retried.
        data = self._call(
            "POST",
            self._request_path(requestid),
            body=body,
            deadline=self._deadline(self.timeout_s),
            not_found=f"pin request {requestid}",
            retry_server_errors=False,
        )
        return self._parse_status(data)

    def remove(self, requestid: str) -> None:
        """Delete a pin request (the service unpins it)."""
        self._call(
            "DELETE",
            self._request_path(requestid),
            deadline=self._deadline(self.timeout_s),
            not_found=f"pin request {requestid}",
            json_body=False,
        )

    # -- internals -----------------------------------------------------------------------------------------
    @staticmethod
    def _deadline(seconds: float) -> float:
        return time.monotonic() + seconds

    def _request_path(self, requestid: str) -> str:
        if not requestid:
            raise ValueError("requestid must not be empty")
        return f"/pins/{quote(requestid, safe='')}"

    def _pin_body(self, cid: str) -> dict[str, Any]:
        body: dict[str, Any] = {"cid": cid}
        if self.origins:
            body["origins"] = list(self.origins)
        return body

    def _status(self, requestid: str, deadline: float) -> PinStatus:
        data = self._call("GET", self._request_path(requestid), deadline=deadline, not_found=f"pin request {requestid}")
        return self._parse_status(data)

    def _list(self, deadline: float, *, cid: str | None, statuses: Sequence[str], limit: int) -> list[PinStatus]:
        query = {"status": ",".join(statuses), "limit": str(limit)}
        if cid is not None:
            query["cid"] = cid
        data = self._call("GET", "/pins", query=query, deadline=deadline)
        results = data.get("results")
        if not isinstance(results, list) or not isinstance(data.get("count"), int):
            raise self._malformed("a pin list without `count` and `results`")
        return [self._parse_status(item) for item in results]

    def _find_or_create(self, cid: str, deadline: float) -> PinStatus:
        for attempt in range(self.max_retries + 1):
            live = self._list(deadline, cid=cid, statuses=_LIVE, limit=1)
            if live:
                return live[0]
            try:
                # Not retried inside `_call`: a 5xx or dropped connection may hide a pin that was created, so
                # each new attempt looks for it first.
                return self._parse_status(
                    self._call("POST", "/pins", body=self._pin_body(cid), deadline=deadline, retry_server_errors=False)
                )
            except _Transient as err:
                self._pause(err, attempt, deadline)
        raise AssertionError("unreachable: _pause raises on the last attempt")

    def _pause(self, err: _Transient, attempt: int, deadline: float) -> None:
        """Sleep before the next attempt, or give up when attempts or time run out."""
        delay = err.retry_after if err.retry_after is not None else self.backoff_s * 2**attempt
        if attempt >= self.max_retries:
            raise _GaveUp(f"{err}; gave up after {attempt + 1} attempts, try again later") from None
        if time.monotonic() + delay >= deadline:
            raise _GaveUp(f"{err}; no time left to retry within {self.timeout_s:g}s, try again later") from None
        time.sleep(delay)

    def _call(
        self,
        method: str,
        path: str,
        *,
        deadline: float,
        query: Mapping[str, str] | None = None,
        body: Mapping[str, Any] | None = None,
        not_found: str | None = None,
        retry_server_errors: bool = True,
        json_body: bool = True,
    ) -> dict[str, Any]:
        target = self._base_path + path + (f"?{urlencode(query, safe=',')}" if query else "")
        payload = None if body is None else json.dumps(body).encode()
        attempt = 0
        while True:
            try:
                status, headers, data = self._exchange(method, target, payload, deadline)
                return self._interpret(status, headers, data, not_found=not_found, json_body=json_body)
            except _Transient as err:
                if not (retry_server_errors or err.rate_limited):
                    raise
                self._pause(err, attempt, deadline)
                attempt += 1

    def _exchange(
        self, method: str, target: str, payload: bytes | None, deadline: float
    ) -> tuple[int, http.client.HTTPMessage, bytes]:
        """One request and its whole response, all within `deadline` (a slow-dripping server cannot stretch it)."""

        left = time_left(deadline)

        conn_type = http.client.HTTPSConnection if self._https else http.client.HTTPConnection
        headers = {
            "Authorization": f"Bearer {self._token}",
            "Accept": "application/json",
            "User-Agent": "llm-attest",
        }
        if payload is not None:
            headers["Content-Type"] = "application/json"
        conn: http.client.HTTPConnection | None = None
        try:
            conn = conn_type(self._host, self._port, timeout=left())
            conn.connect()
            sock = conn.sock  # kept: http.client drops its reference once the response owns the socket
            conn.request(method, target, body=payload, headers=headers)
            sock.settimeout(left())
            response = conn.getresponse()
            try:
                body = read_body(response, sock, left, _MAX_RESPONSE_BYTES)
            except BodyTooLarge:
                raise self._malformed(f"a response over {_MAX_RESPONSE_BYTES} bytes") from None
            except ShortBody:
                raise _Transient(f"{self.name} closed the connection in the middle of a response") from None
            return response.status, response.headers, body
        except TimeoutError:
            raise _OutOfTime(f"{self.name} did not answer within {self.timeout_s:g}s; try again later") from None
        except (OSError, http.client.HTTPException) as err:
            raise _Transient(f"cannot reach {self.name} ({type(err).__name__}: {self._scrub(str(err))})") from None
        finally:
            if conn is not None:
                conn.close()

    def _interpret(
        self, status: int, headers: http.client.HTTPMessage, data: bytes, *, not_found: str | None, json_body: bool
    ) -> dict[str, Any]:
        if 200 <= status < 300:
            if not json_body:
                return {}
            try:
                text = data.decode("utf-8")
                if nested_deeper_than(text, _MAX_JSON_DEPTH):
                    raise self._malformed(f"JSON nested more than {_MAX_JSON_DEPTH} levels deep")
                parsed = json.loads(text)
            except (UnicodeDecodeError, json.JSONDecodeError):
                raise self._malformed("a body that is not JSON") from None
            if not isinstance(parsed, dict):
                raise self._malformed("JSON that is not an object")
            return parsed
        said = self._service_says(data)
        if status in (401, 403):
            raise StoreError(
                f"the pinning service at {self._host} rejected the token (HTTP {status}); check {self._token_env}"
            )
        if status == 404 and not_found is not None:
            raise NotFound(not_found, self.name)
        if status == 404:
            raise StoreError(
                f"{self.name} has no pinning API at {self._base_path or '/'} (HTTP 404); the endpoint should be "
                "the API base URL, e.g. https://api.pinata.cloud/psa"
            )
        if status == 409:
            raise StoreError(f"{self.name} refused the pin for lack of funds or quota{said}; check the account")
        if status == 429 or status >= 500:
            raise _Transient(
                f"{self.name} answered HTTP {status}{said}",
                rate_limited=status == 429,
                retry_after=_retry_after(headers),
            )
        if 300 <= status < 400:
            location = self._scrub(headers.get("Location", "?"))[:_QUOTE_CHARS]
            raise StoreError(f"{self.name} redirects to {location}; set the endpoint to that URL")
        raise StoreError(f"{self.name} refused the request (HTTP {status}){said}")

    def _parse_status(self, item: object) -> PinStatus:
        if not isinstance(item, dict):
            raise self._malformed("a pin status that is not an object")
        pin = item.get("pin")
        requestid, status, created = item.get("requestid"), item.get("status"), item.get("created")
        if not (isinstance(requestid, str) and requestid and status in STATUSES and isinstance(pin, dict)):
            raise self._malformed("a pin status without `requestid`, a known `status` and `pin`")
        cid, name = pin.get("cid"), pin.get("name")
        if not isinstance(cid, str) or not (name is None or isinstance(name, str)):
            raise self._malformed("a pin without a `cid`")
        try:
            created_at = datetime.fromisoformat(created) if isinstance(created, str) else None
        except ValueError:
            created_at = None
        if created_at is None:
            raise self._malformed("a pin status whose `created` is not an ISO 8601 time")
        return PinStatus(
            requestid=requestid,
            status=str(status),
            created=created_at,
            cid=cid,
            name=name,
            origins=_strings(pin.get("origins")),
            meta=_string_map(pin.get("meta")),
            delegates=_strings(item.get("delegates")),
            info={k: self._scrub(v) for k, v in _string_map(item.get("info")).items()},
        )

    def _result(self, cid: str, current: PinStatus) -> PinResult:
        detail = f"request {current.requestid}"
        if current.status == "failed":
            reasons = "; ".join(f"{k}: {v}" for k, v in current.info.items())[:_QUOTE_CHARS]
            detail += f" failed{': ' + reasons if reasons else ''}; check that the blocks are reachable on IPFS"
        elif current.status != "pinned":
            detail += f" still {current.status} after {self.timeout_s:g}s; the service keeps working on it"
        return PinResult(self.name, cid, ok=current.status != "failed", status=current.status, detail=detail)

    def _malformed(self, what: str) -> StoreError:
        return StoreError(f"{self.name} sent {what}; it may not implement the IPFS Pinning Service API")

    def _service_says(self, data: bytes) -> str:
        """The spec's `{"error": {"reason", "details"}}`, quoted safely, or "" when the body is not that."""
        try:
            text = data.decode("utf-8")
            if nested_deeper_than(text, _MAX_JSON_DEPTH):
                return ""
            error = json.loads(text).get("error")
            parts = [error.get("reason"), error.get("details")]
        except (ValueError, AttributeError):
            return ""
        text = ": ".join(p for p in parts if isinstance(p, str) and p)
        return f" ({self._scrub(text)[:_QUOTE_CHARS]})" if text else ""

    def _scrub(self, text: str) -> str:
        printable = "".join(ch if ch.isprintable() else " " for ch in text)
        return printable.replace(self._token, "[token]")


def _retry_after(headers: http.client.HTTPMessage) -> float | None:
    try:
        seconds = float(headers.get("Retry-After", ""))
    except ValueError:
        return None  # absent, or an HTTP date: fall back to our own backoff
    return min(max(seconds, 0.0), _MAX_RETRY_AFTER_S)


def _strings(value: object) -> tuple[str, ...]:
    return tuple(v for v in value if isinstance(v, str)) if isinstance(value, list) else ()


def _string_map(value: object) -> dict[str, str]:
    return {str(k): str(v) for k, v in value.items()} if isinstance(value, dict) else {}
