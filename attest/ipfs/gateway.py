"""Reading from a trustless HTTP gateway: blocks or a CAR, never a gateway's word for what a file holds.

Two ways to ask (the trustless gateway spec supports both): `mode="raw"` fetches each block by CID
(`?format=raw`, `Accept: application/vnd.ipld.raw`) and walks the DAG, one request per block; `mode="car"` asks
for the whole DAG as one CAR (`?format=car`), which is one round trip but buffers the CAR. Either way every
block is checked against its CID before anything is decoded from it, so a gateway can fail to answer but cannot
make us accept other bytes: a mismatch raises `TamperedContent` naming the block and the gateway.

One deadline bounds a whole `get`, including every byte of every response: a server that answers slowly or
drips its body cannot stretch the wait beyond `timeout_s` (DNS resolution is the one part no socket timeout
covers). A CID the gateway does not have, or cannot produce in time, raises `NotFound`. With `max_bytes`, a
file larger than that stops the download as soon as the excess has arrived (`ContentTooLarge`), so a huge file
costs a reader at most its limit plus one block.
"""

from __future__ import annotations

import http.client
import io
import time
from collections.abc import Iterable
from typing import Literal
from urllib.parse import urlsplit

from attest.errors import CarBlockMismatch, CarError, ContentTooLarge, NotFound, StoreError, TamperedContent
from attest.ipfs._http import BodyTooLarge, ShortBody, read_body, time_left
from attest.ipfs.car import read_car
from attest.ipfs.cid import CID
from attest.ipfs.store import DEFAULT_TIMEOUT_S, PinResult
from attest.ipfs.unixfs import export

RAW_TYPE = "application/vnd.ipld.raw"
CAR_TYPE = "application/vnd.ipld.car"
HAS_TIMEOUT_S = 5.0  # `has` is a quick probe; `get` is where waiting is allowed
MAX_BLOCK_BYTES = 2 * 1024 * 1024  # the largest block IPFS moves around (bitswap's limit); Kubo writes ≤ 1 MiB
MAX_CAR_BYTES = 1024 * 1024 * 1024
_RETRY_STATUSES = (429, 502, 503)  # busy or a flaky upstream: worth another try while the deadline allows
_GONE_STATUSES = (404, 410, 504)  # 504: the gateway could not retrieve it in its own time


class Gateway:
    def __init__(
        self,
        base_url: str,
        *,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        mode: Literal["raw", "car"] = "raw",
        max_car_bytes: int = MAX_CAR_BYTES,
    ) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise StoreError(f"gateway {base_url!r} is not an http(s) URL; use e.g. https://trustless-gateway.link")
        if parts.username or parts.password or parts.query or parts.fragment:
            raise StoreError(f"gateway {parts.hostname} must be a plain base URL (no user, query or fragment)")
        if mode not in ("raw", "car"):
            raise ValueError(f"mode must be 'raw' or 'car', not {mode!r}")
        if timeout_s <= 0:
            raise ValueError("timeout_s must be positive")
        self.url = f"{parts.scheme}://{parts.netloc}{parts.path.rstrip('/')}"
        self.name = f"gateway {self.url}"
        self.timeout_s = timeout_s
        self.mode = mode
        self.max_car_bytes = max_car_bytes
        self._https = parts.scheme == "https"
        self._host = parts.hostname
        self._port = parts.port
        self._path = parts.path.rstrip("/")

    def __repr__(self) -> str:
        return f"Gateway({self.url!r}, mode={self.mode!r}, timeout_s={self.timeout_s:g})"

    # -- ContentStore --------------------------------------------------------------------------------------
    def put(self, data: bytes, *, cid_version: int = 1) -> CID:
        raise StoreError("gateways are read-only; put content on a local store or a Kubo node")

    def pin(self, cid: CID) -> PinResult:
        raise StoreError("gateways are read-only; pin on a Kubo node or a pinning service")

    def get(self, cid: CID, *, timeout_s: float | None = None, max_bytes: int | None = None) -> bytes:
        """The file's bytes; every block verified against its CID, the whole read bounded by `timeout_s`, and
        by `max_bytes` of file content when given."""
        budget = self.timeout_s if timeout_s is None else timeout_s
        deadline = time.monotonic() + budget
        if max_bytes is not None and max_bytes < 0:
            raise ValueError("max_bytes must not be negative")
        if self.mode == "car":
            # A CAR of a file within the limit holds its bytes, a few link blocks and framing: twice the limit
            # and one block more is generous. A bigger CAR may be padding, so it proves nothing about the file:
            # then the blocks are fetched one by one instead, which does stop at the limit.
            car_limit = (
                self.max_car_bytes if max_bytes is None else min(self.max_car_bytes, 2 * max_bytes + MAX_BLOCK_BYTES)
            )
            try:
                blocks = self._car_blocks(cid, deadline, budget, car_limit)
            except _CarTooLarge:
                if max_bytes is None:
                    raise
                return self._raw_file(cid, deadline, budget, max_bytes)

            def from_car(block_cid: CID) -> bytes:
                block = blocks.get(block_cid)
                if block is None:
                    # A trustless gateway streams the CAR after a 200; a block it could not find ends it early.
                    raise NotFound(str(block_cid), self.url, budget)
                return block

            return self._joined(cid, export(cid, from_car, source=self.url), max_bytes)
        return self._raw_file(cid, deadline, budget, max_bytes)

    def _raw_file(self, cid: CID, deadline: float, budget: float, max_bytes: int | None) -> bytes:
        fetched: dict[CID, bytes] = {}  # files repeat chunks (zeros, padding); fetch each block once

        def from_gateway(block_cid: CID) -> bytes:
            if block_cid not in fetched:
                fetched[block_cid] = self._raw_block(block_cid, deadline, budget)
            return fetched[block_cid]

        # `export` fetches lazily, so stopping the join stops the download.
        return self._joined(cid, export(cid, from_gateway, source=self.url), max_bytes)

    def _joined(self, cid: CID, parts: Iterable[bytes], max_bytes: int | None) -> bytes:
        out: list[bytes] = []
        size = 0
        for part in parts:
            size += len(part)
            if max_bytes is not None and size > max_bytes:
                raise ContentTooLarge(
                    f"{cid} is larger than {max_bytes:,} bytes (more verified bytes arrived from {self.url}); "
                    "the download was stopped there"
                )
            out.append(part)
        return b"".join(out)

    def has(self, cid: CID) -> bool:
        """True when the gateway serves the root block and it matches `cid`, answered within a few seconds.

        Tampered bytes still raise `TamperedContent`: a lying gateway is news, not a "no".
        """
        budget = min(self.timeout_s, HAS_TIMEOUT_S)
        try:
            self._raw_block(cid, time.monotonic() + budget, budget)
        except TamperedContent:
            raise
        except StoreError:
            return False
        return True

    # -- fetching ------------------------------------------------------------------------------------------
    def _raw_block(self, cid: CID, deadline: float, budget: float) -> bytes:
        try:
            block = self._fetch(cid, "raw", deadline, budget, MAX_BLOCK_BYTES)
        except BodyTooLarge:
            raise TamperedContent(str(cid), self.url, f"a block of more than {MAX_BLOCK_BYTES} bytes") from None
        except ShortBody:
            raise StoreError(f"{self.url} closed the connection in the middle of block {cid}; try again") from None
        # Checked here as well as in `export`: nothing from a block is decoded before it is known to be good.
        if not cid.verify(block):
            raise TamperedContent(str(cid), self.url)
        return block

    def _car_blocks(self, root: CID, deadline: float, budget: float, limit: int) -> dict[CID, bytes]:
        try:
            body = self._fetch(root, "car", deadline, budget, limit)
        except BodyTooLarge:
            raise _CarTooLarge(
                f"the CAR of {root} from {self.url} is over {limit} bytes; "
                "raise max_car_bytes or read it with mode='raw'"
            ) from None
        except ShortBody:
            raise CarError(f"the CAR of {root} from {self.url} was cut short in transit; try again") from None
        try:
            _roots, sections = read_car(io.BytesIO(body))
            return dict(sections)
        except CarBlockMismatch as err:
            # From a gateway a block that fails its hash is tampering, reported like every other source does.
            raise TamperedContent(err.cid, self.url, f"in the CAR of {root}") from None
        except CarError as err:
            raise CarError(f"the CAR of {root} from {self.url}: {err}") from None

    def _fetch(self, cid: CID, fmt: Literal["raw", "car"], deadline: float, budget: float, max_bytes: int) -> bytes:
        """One block or CAR: retried while the gateway is busy and time remains, then the body or an error."""
        target = f"{self._path}/ipfs/{cid}?format={fmt}" + ("&dag-scope=all" if fmt == "car" else "")
        accept = RAW_TYPE if fmt == "raw" else f"{CAR_TYPE}; version=1; order=dfs; dups=n"
        pause = 0.25
        while True:
            status, body = self._exchange(target, accept, deadline, budget, max_bytes, cid)
            if status == 200:
                return body
            if status in _GONE_STATUSES:
                raise NotFound(str(cid), self.url, budget if status == 504 else None)
            if status in _RETRY_STATUSES and time.monotonic() + pause < deadline:
                time.sleep(pause)
                pause *= 2
                continue
            raise StoreError(f"{self.url} answered HTTP {status} for {cid}; try again later or use another gateway")

    def _exchange(
        self, target: str, accept: str, deadline: float, budget: float, max_bytes: int, cid: CID
    ) -> tuple[int, bytes]:
        """(status, body) of one GET, every socket wait cut to what is left of `deadline`."""

        left = time_left(deadline)

        conn_type = http.client.HTTPSConnection if self._https else http.client.HTTPConnection
        try:
            conn = conn_type(self._host, self._port, timeout=left())
        except TimeoutError:
            raise NotFound(str(cid), self.url, budget) from None
        try:
            conn.connect()
            sock = conn.sock  # kept: http.client drops its reference once the response owns the socket
            conn.request("GET", target, headers={"Accept": accept, "User-Agent": "llm-attest"})
            sock.settimeout(left())
            response = conn.getresponse()
            if response.status != 200:
                return response.status, b""
            return 200, read_body(response, sock, left, max_bytes)
        except TimeoutError:
            raise NotFound(str(cid), self.url, budget) from None
        except (OSError, http.client.HTTPException) as err:
            raise StoreError(f"cannot reach {self.url} ({type(err).__name__}: {err}); check the gateway URL") from None
        finally:
            conn.close()


class _CarTooLarge(StoreError):
    """A CAR past the size allowed; with a content limit `get` reads block by block instead."""
