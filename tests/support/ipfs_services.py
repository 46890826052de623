"""Local stand-ins for the two remote IPFS services we cannot reach from tests: a Pinning Service API server and a
trustless HTTP gateway. Both are real HTTP servers on 127.0.0.1 (free port), used as context managers, so the
clients under test speak real HTTP; knobs make them misbehave the ways real services do.
"""

from __future__ import annotations

import io
import itertools
import json
import sys
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from attest.ipfs.car import write_car
from attest.ipfs.cid import CID, RAW
from attest.ipfs.dagpb import links


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: object, client_address: object) -> None:
        # Clients that give up mid-response (timeouts under test) reset the connection; that is the point.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)  # type: ignore[arg-type]


class _FakeServer:
    """A threaded HTTP server bound to 127.0.0.1 on a free port, started by `with` and stopped after it."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.stopping = threading.Event()  # wakes handlers that were told to be slow, so shutdown is quick
        self.requests: list[tuple[str, str, dict[str, str]]] = []  # (method, path?query, headers)
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def handle(self, handler: _Handler) -> None:
        raise NotImplementedError

    @property
    def port(self) -> int:
        assert self._server is not None, "use the fake server inside `with`"
        return int(self._server.server_address[1])

    def __enter__(self) -> _FakeServer:
        fake = self

        class Handler(_Handler):
            def _dispatch(self) -> None:
                with fake.lock:
                    fake.requests.append((self.command, self.path, dict(self.headers.items())))
                fake.handle(self)

        self._server = _QuietServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name=type(self).__name__, daemon=True)
        self._thread.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def count(self, method: str, path_prefix: str = "") -> int:
        with self.lock:
            return sum(1 for m, p, _ in self.requests if m == method and p.startswith(path_prefix))


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def _dispatch(self) -> None:
        raise NotImplementedError

    def do_GET(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        self._dispatch()

    def do_DELETE(self) -> None:
        self._dispatch()

    def do_HEAD(self) -> None:
        self._dispatch()

    def log_message(self, format: str, *args: Any) -> None:
        pass  # keep pytest output clean

    def body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def reply(self, status: int, body: bytes = b"", content_type: str = "application/json", **headers: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in headers.items():
            self.send_header(name.replace("_", "-"), value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def reply_json(self, status: int, obj: object, **headers: str) -> None:
        self.reply(status, json.dumps(obj).encode(), **headers)

    def reply_error(self, status: int, reason: str, details: str = "", **headers: str) -> None:
        self.reply_json(status, {"error": {"reason": reason, "details": details}}, **headers)


# -- IPFS Pinning Service API ------------------------------------------------------------------------------
@dataclass
class FakePin:
    requestid: str
    seq: int  # creation order; timestamps from one test can tie
    cid: str
    name: str | None
    origins: list[str]
    meta: dict[str, str]
    created: datetime
    polls: int = 0


@dataclass
class PinningKnobs:
    steps_to_pinned: int = 2  # GETs of a pin before it reads "pinned": queued, pinning, …, pinned
    fail_cids: set[str] = field(default_factory=set)  # these pins end "failed" instead of "pinned"
    next_errors: list[int] = field(default_factory=list)  # statuses answered, one per request, before normal service
    retry_after: str | None = None  # the Retry-After header sent with those errors
    error_after_create: int | None = None  # create the pin, then answer this status: a response lost in transit
    malformed: bool = False  # answer every authorised request with 200 and a body that is not JSON
    raw_body: bytes | None = None  # answer every authorised request with 200 and exactly these bytes as JSON
    slow_s: float = 0.0  # wait this long before answering anything


class FakePinningService(_FakeServer):
    """The IPFS Pinning Service API (POST/GET /pins, GET/POST/DELETE /pins/{requestid}) with in-memory pins.

    A pin reads "queued" on creation and advances on each GET of it (queued → pinning → pinned, or failed for
    `knobs.fail_cids`). A wrong token gets 401, and the error echoes the token presented, as a careless service
    might, so tests can check that the client never repeats it.
    """

    BASE = "/psa"
    DELEGATE = "/ip4/127.0.0.1/tcp/4001/p2p/12D3KooWGzxzKZYveHXtpG6AsrUJBcWxHBFS2HsEoGTxrMLvKXtf"

    def __init__(self, token: str) -> None:
        super().__init__()
        self.token = token
        self.knobs = PinningKnobs()
        self.pins: dict[str, FakePin] = {}
        self._seq = itertools.count()

    def __enter__(self) -> FakePinningService:
        super().__enter__()
        return self

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{self.BASE}"

    def status_of(self, pin: FakePin) -> str:
        if pin.polls == 0:
            return "queued"
        if pin.polls < self.knobs.steps_to_pinned:
            return "pinning"
        return "failed" if pin.cid in self.knobs.fail_cids else "pinned"

    def pin_status(self, pin: FakePin) -> dict[str, Any]:
        status = self.status_of(pin)
        info = {"status_details": "could not fetch the DAG: no providers found"} if status == "failed" else {}
        body: dict[str, Any] = {"cid": pin.cid, "origins": pin.origins, "meta": pin.meta}
        if pin.name is not None:
            body["name"] = pin.name
        return {
            "requestid": pin.requestid,
            "status": status,
            "created": pin.created.isoformat().replace("+00:00", "Z"),
            "pin": body,
            "delegates": [self.DELEGATE],
            "info": info,
        }

    def handle(self, h: _Handler) -> None:
        if self.knobs.slow_s and self.stopping.wait(self.knobs.slow_s):
            return
        presented = h.headers.get("Authorization", "")
        if presented != f"Bearer {self.token}":
            h.reply_error(401, "UNAUTHORIZED", f"access token {presented.removeprefix('Bearer ')!r} is not valid")
            return
        with self.lock:
            forced = self.knobs.next_errors.pop(0) if self.knobs.next_errors else None
        if forced is not None:
            extra = {"Retry_After": self.knobs.retry_after} if self.knobs.retry_after is not None else {}
            # Echoing the credentials in an error is careless, and is exactly what the client must not repeat.
            details = f"failed while serving {presented}"
            h.reply_error(forced, _REASONS.get(forced, "INTERNAL_SERVER_ERROR"), details, **extra)
            return
        if self.knobs.malformed:
            h.reply(200, b"<html>maintenance</html>", "text/html")
            return
        if self.knobs.raw_body is not None:
            h.reply(200, self.knobs.raw_body, "application/json")
            return
        url = urlsplit(h.path)
        if not url.path.startswith(self.BASE + "/pins"):
            h.reply_error(404, "NOT_FOUND", "no such endpoint")
            return
        rest = url.path[len(self.BASE + "/pins") :]
        try:
            if rest in ("", "/"):
                self._collection(h, h.command, parse_qs(url.query))
            else:
                self._one(h, h.command, unquote(rest.removeprefix("/")))
        except _BadRequest as err:
            h.reply_error(400, "BAD_REQUEST", str(err))

    def _collection(self, h: _Handler, method: str, query: dict[str, list[str]]) -> None:
        if method == "POST":
            pin = self._new_pin(h.body())
            if self.knobs.error_after_create is not None:
                status, self.knobs.error_after_create = self.knobs.error_after_create, None
                h.reply_error(status, "INTERNAL_SERVER_ERROR", "the pin was stored but the answer was lost")
                return
            h.reply_json(202, self.pin_status(pin))
        elif method == "GET":
            h.reply_json(200, self._list(query))
        else:
            h.reply_error(405, "METHOD_NOT_ALLOWED")

    def _one(self, h: _Handler, method: str, requestid: str) -> None:
        with self.lock:
            pin = self.pins.get(requestid)
            if pin is not None and method == "GET":
                pin.polls += 1
        if pin is None:
            h.reply_error(404, "NOT_FOUND", "The specified resource was not found")
        elif method == "GET":
            h.reply_json(200, self.pin_status(pin))
        elif method == "DELETE":
            with self.lock:
                del self.pins[requestid]
            h.reply(202)
        elif method == "POST":
            replacement = self._new_pin(h.body())
            with self.lock:
                del self.pins[requestid]
            h.reply_json(202, self.pin_status(replacement))
        else:
            h.reply_error(405, "METHOD_NOT_ALLOWED")

    def _new_pin(self, raw: bytes) -> FakePin:
        try:
            body = json.loads(raw)
        except ValueError:
            raise _BadRequest("body is not JSON") from None
        if not isinstance(body, dict) or not isinstance(body.get("cid"), str):
            raise _BadRequest("`cid` is required")
        try:
            CID.parse(body["cid"])
        except ValueError:
            raise _BadRequest(f"{body['cid']!r} is not a CID") from None
        name, origins, meta = body.get("name"), body.get("origins", []), body.get("meta", {})
        if name is not None and (not isinstance(name, str) or len(name) > 255):
            raise _BadRequest("`name` must be a string of at most 255 characters")
        if not isinstance(origins, list) or not all(isinstance(o, str) for o in origins) or len(origins) > 20:
            raise _BadRequest("`origins` must be a list of up to 20 multiaddrs")
        if not isinstance(meta, dict) or not all(isinstance(v, str) for v in meta.values()):
            raise _BadRequest("`meta` must map strings to strings")
        with self.lock:
            pin = FakePin(uuid.uuid4().hex, next(self._seq), body["cid"], name, origins, meta, datetime.now(UTC))
            self.pins[pin.requestid] = pin
        return pin

    def _list(self, query: dict[str, list[str]]) -> dict[str, Any]:
        def one(key: str, default: str) -> str:
            return query.get(key, [default])[0]

        cids = set(one("cid", "").split(",")) - {""}
        statuses = set(one("status", "pinned").split(","))  # the spec's default is pinned only
        if statuses - {"queued", "pinning", "pinned", "failed"}:
            raise _BadRequest(f"unknown status in {sorted(statuses)}")
        try:
            limit = int(one("limit", "10"))
        except ValueError:
            raise _BadRequest("`limit` must be an integer") from None
        if not 1 <= limit <= 1000:
            raise _BadRequest("`limit` must be between 1 and 1000")
        name, match = one("name", ""), one("match", "exact")
        with self.lock:
            pins = sorted(self.pins.values(), key=lambda p: p.seq, reverse=True)
        chosen = [
            p
            for p in pins
            if (not cids or p.cid in cids)
            and self.status_of(p) in statuses
            and (not name or _name_matches(p.name or "", name, match))
        ]
        return {"count": len(chosen), "results": [self.pin_status(p) for p in chosen[:limit]]}


_REASONS = {400: "BAD_REQUEST", 409: "INSUFFICIENT_FUNDS", 429: "RATE_LIMITED"}


class _BadRequest(Exception):
    pass


def _name_matches(have: str, want: str, match: str) -> bool:
    if match == "iexact":
        return have.lower() == want.lower()
    if match == "partial":
        return want in have
    if match == "ipartial":
        return want.lower() in have.lower()
    return have == want


# -- trustless HTTP gateway ----------------------------------------------------------------------------------
RAW_TYPE = "application/vnd.ipld.raw"
CAR_TYPE = "application/vnd.ipld.car"


@dataclass
class GatewayKnobs:
    tamper: set[str] = field(default_factory=set)  # these blocks are served with one byte flipped
    substitute: dict[str, bytes] = field(default_factory=dict)  # these blocks are served as other bytes (another CID's)
    missing: set[str] = field(default_factory=set)  # these blocks are absent: 404 raw, left out of CARs
    slow_s: float = 0.0  # wait this long before answering
    drip_s: float = 0.0  # after the headers, send the body one small piece per `drip_s`
    truncate_car: int | None = None  # CARs end after this many bytes (a consistent but short response)
    car_padding: int = 0  # CARs carry this many more bytes in valid blocks no DAG links to (a padded response)
    short_body: bool = False  # the Content-Length promises the whole body; half arrives, then the connection closes
    oversize: bool = False  # answer raw requests with far more bytes than any block holds
    status: int | None = None  # answer everything with this status


class FakeGateway(_FakeServer):
    """GET /ipfs/{cid} with `?format=raw` (one block) or `?format=car` (the DAG, depth first), as the trustless
    gateway spec describes; the Accept header is honoured as well, and a conflict between the two is a 400."""

    def __init__(self, blocks: dict[str, bytes]) -> None:
        super().__init__()
        self.blocks = dict(blocks)
        self.knobs = GatewayKnobs()

    def __enter__(self) -> FakeGateway:
        super().__enter__()
        return self

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def served(self, cid: str) -> bytes:
        if cid in self.knobs.substitute:
            return self.knobs.substitute[cid]
        block = self.blocks[cid]
        if cid in self.knobs.tamper:
            return bytes([block[0] ^ 0x01]) + block[1:]
        return block

    def handle(self, h: _Handler) -> None:
        if self.knobs.slow_s and self.stopping.wait(self.knobs.slow_s):
            return
        if self.knobs.status is not None:
            h.reply(self.knobs.status, b"gateway says no", "text/plain")
            return
        url = urlsplit(h.path)
        fmt = parse_qs(url.query).get("format", [""])[0]
        accept = h.headers.get("Accept", "")
        wanted = {f for f, kind in (("raw", RAW_TYPE), ("car", CAR_TYPE)) if kind in accept}
        if fmt:
            wanted.add(fmt)
        if h.command not in ("GET", "HEAD") or not url.path.startswith("/ipfs/"):
            h.reply(400, b"only GET /ipfs/{cid}", "text/plain")
            return
        if len(wanted) != 1 or not wanted <= {"raw", "car"}:
            h.reply(406, b"ask for exactly one of format=raw or format=car", "text/plain")
            return
        cid = url.path.removeprefix("/ipfs/").strip("/")
        if cid not in self.blocks or cid in self.knobs.missing:
            h.reply(404, f"{cid} not found".encode(), "text/plain")
            return
        if "raw" in wanted:
            body = b"\0" * (8 * 1024 * 1024) if self.knobs.oversize else self.served(cid)
            self._send(h, body, RAW_TYPE)
        else:
            self._send(h, self._car(cid), f"{CAR_TYPE}; version=1; order=dfs; dups=n")

    def _car(self, root: str) -> bytes:
        out: list[tuple[CID, bytes]] = []
        for cid in self._dfs(CID.parse(root)):
            if str(cid) not in self.knobs.missing:
                out.append((cid, self.served(str(cid))))
        for offset in range(0, self.knobs.car_padding, 262144):
            block = offset.to_bytes(8, "big") * (262144 // 8)
            out.append((CID.for_block(block, codec=RAW, version=1), block))
        buf = io.BytesIO()
        write_car(buf, [CID.parse(root)], out)
        return buf.getvalue()

    def _dfs(self, root: CID) -> Iterator[CID]:
        seen: set[CID] = set()
        stack = [root]
        while stack:
            cid = stack.pop()
            if cid in seen:
                continue
            seen.add(cid)
            yield cid
            if str(cid) in self.blocks and str(cid) not in self.knobs.missing:
                stack.extend(reversed(links(self.blocks[str(cid)], cid.codec)))

    def _send(self, h: _Handler, body: bytes, content_type: str) -> None:
        if self.knobs.truncate_car is not None and content_type.startswith(CAR_TYPE):
            body = body[: self.knobs.truncate_car]
        sent = body[: len(body) // 2] if self.knobs.short_body else body
        h.send_response(200)
        h.send_header("Content-Type", content_type)
        h.send_header("Content-Length", str(len(body)))
        h.send_header("X-Content-Type-Options", "nosniff")
        h.end_headers()
        if h.command == "HEAD":
            return
        if not self.knobs.drip_s:
            h.wfile.write(sent)
            h.close_connection = len(sent) < len(body)  # the promised rest never comes
            return
        for i in range(0, len(sent), 16):
            if self.stopping.wait(self.knobs.drip_s):
                return
            try:
                h.wfile.write(sent[i : i + 16])
                h.wfile.flush()
            except OSError:
                return  # the client gave up, as it should
        h.close_connection = True
