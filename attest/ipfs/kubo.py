"""A Kubo RPC node (or js-ipfs, which speaks the same API) as a content store, through `ipfshttpclient`.

`put` adds with options spelled out (chunker, raw leaves, hash) so a node's own import settings cannot change
the CID, and checks the node's CID against ours. `get` never asks the node what a file holds (`cat`): it
fetches each block with `block/get` and checks it against its CID, so a node, or anything between us and it,
can fail to answer but cannot make us accept other bytes.

Every call carries two limits: the node's own `timeout` option (a node that cannot find a block answers
"timed out" instead of searching forever; js-ipfs offline would hang) and a socket timeout a little longer,
for a node that stops answering at all. A whole `get` shares one deadline across its blocks.
`ipfshttpclient.connect()` refuses nodes newer than 0.8 by their version number, so the client is built
directly; the calls used here have not changed since.
"""

from __future__ import annotations

import io
import ipaddress
import time
import warnings
from typing import Any
from urllib.parse import urlsplit

import ipfshttpclient  # type: ignore[import-untyped]
import requests
from ipfshttpclient import exceptions as rpc

from attest.errors import InvalidCid, NotFound, StoreError
from attest.ipfs.cid import CID
from attest.ipfs.store import PinResult
from attest.ipfs.unixfs import CHUNK_SIZE, cid_of, export

DEFAULT_API = "/ip4/127.0.0.1/tcp/5001/http"
HAS_TIMEOUT_S = 3.0  # `has` is a quick probe; `get` and `pin` are where waiting is allowed
CONNECT_TIMEOUT_S = 5.0
SOCKET_GRACE_S = 1.0  # the node's own timeout should answer first; the socket timeout is the backstop
MAX_BLOCK_BYTES = 2 * 1024 * 1024  # bitswap's limit; Kubo writes blocks of at most 1 MiB
_FIX = "start the IPFS daemon or check --ipfs-api"
_MISSING = ("timed out", "deadline exceeded", "not found", "could not find")
_FAILURES = (rpc.Error, requests.RequestException)  # what a call through ipfshttpclient raises when it fails

# ipfshttpclient 0.7 passes urllib3 an argument urllib3 2 deprecates, once per connection.
warnings.filterwarnings("ignore", message="The 'strict' parameter is no longer needed", category=FutureWarning)


def parse_api(api: str) -> tuple[str, str]:
    """(multiaddr for the client, http URL for messages) from either form: `/ip4/h/tcp/p[/http]` or `http://h:p`."""
    text = api.strip()
    if text.startswith("/"):
        parts = text.strip("/").split("/")
        proto_ok = parts[0] in ("ip4", "ip6", "dns", "dns4", "dns6") and len(parts) in (4, 5)
        if proto_ok and parts[2] == "tcp" and parts[3].isdigit() and parts[4:] in ([], ["http"], ["https"]):
            scheme = parts[4] if len(parts) == 5 else "http"
            host = f"[{parts[1]}]" if parts[0] == "ip6" else parts[1]
            return f"/{parts[0]}/{parts[1]}/tcp/{parts[3]}/{scheme}", f"{scheme}://{host}:{parts[3]}"
    else:
        url = urlsplit(text)
        if url.username or url.password:
            # The address is not repeated: it holds a credential.
            raise StoreError("the IPFS API address carries credentials, which KuboStore does not send; remove them")
        try:
            port = url.port
        except ValueError:
            port = -1
        if url.scheme in ("http", "https") and url.hostname and port != -1 and url.path.rstrip("/") in ("", "/api/v0"):
            port = port or (443 if url.scheme == "https" else 80)
            try:
                proto = f"ip{ipaddress.ip_address(url.hostname).version}"
            except ValueError:
                proto = "dns"
            host = f"[{url.hostname}]" if proto == "ip6" else url.hostname
            return f"/{proto}/{url.hostname}/tcp/{port}/{url.scheme}", f"{url.scheme}://{host}:{port}"
    raise StoreError(f"{api!r} is not an IPFS API address; use e.g. {DEFAULT_API} or http://127.0.0.1:5001")


class KuboStore:
    def __init__(self, api: str = DEFAULT_API, *, timeout_s: float = 30.0) -> None:
        if timeout_s <= 0:
            raise ValueError("timeout_s must be positive")
        self.multiaddr, self.url = parse_api(api)
        self.name = f"kubo {self.url}"
        self.timeout_s = timeout_s
        try:
            self._client: Any = ipfshttpclient.Client(self.multiaddr, timeout=timeout_s)
        except rpc.AddressError:
            raise StoreError(f"{api!r} is not an IPFS API address ipfshttpclient can use; {_FIX}") from None

    # -- ContentStore ------------------------------------------------------------------------------------
    def put(self, data: bytes, *, cid_version: int = 1) -> CID:
        """Add and pin `data` (`ipfs add` pins too, so the node's GC cannot drop it before `pin`)."""
        expected = cid_of(data, cid_version=cid_version)
        try:
            answer = self._client.add(
                io.BytesIO(data),
                cid_version=cid_version,
                raw_leaves=cid_version == 1,
                chunker=f"size-{CHUNK_SIZE}",
                pin=True,
                **self._limits(self.timeout_s, hash="sha2-256", inline="false"),
            )
            got = CID.parse(str(answer["Hash"]))
        except (KeyError, TypeError, InvalidCid):
            raise self._garbled("add") from None
        except _FAILURES as err:
            raise self._failed("add", err, self.timeout_s) from None
        if got != expected:
            raise StoreError(
                f"{self.name} stored the bytes as {got}, but they are {expected} as `ipfs add` builds them; "
                "the node chunks differently (check its Import settings) and the record cannot be read by its CID"
            )
        return got

    def get(self, cid: CID, *, timeout_s: float | None = None) -> bytes:
        budget = self.timeout_s if timeout_s is None else timeout_s
        deadline = time.monotonic() + budget
        return b"".join(export(cid, lambda block: self._block(block, cid, deadline, budget), source=self.name))

    def pin(self, cid: CID) -> PinResult:
        """Pin the whole DAG; a node that cannot find every block in time reports a failed pin."""
        try:
            answer = self._client.pin.add(str(cid), **self._limits(self.timeout_s))
            pinned = [CID.parse(str(p)) for p in answer["Pins"]]
        except (KeyError, TypeError, InvalidCid):
            raise self._garbled("pin/add") from None
        except _FAILURES as err:
            failure = self._failed("pin/add", err, self.timeout_s, cid=str(cid))
            if not isinstance(failure, NotFound):
                raise failure from None
            detail = f"the node could not find every block within {self.timeout_s:g}s; put the content there first"
            return PinResult(self.name, str(cid), ok=False, status="failed", detail=detail)
        if cid not in pinned:
            detail = f"the node answered with other pins: {', '.join(map(str, pinned)) or 'none'}"
            return PinResult(self.name, str(cid), ok=False, status="failed", detail=detail)
        return PinResult(self.name, str(cid), ok=True, status="pinned")

    def has(self, cid: CID) -> bool:
        budget = min(self.timeout_s, HAS_TIMEOUT_S)
        try:
            # `offline`: Kubo must not search the network to answer; js-ipfs ignores it, hence the timeout.
            self._client.block.stat(str(cid), offline=True, **self._limits(budget))
        except _FAILURES as err:
            failure = self._failed("block/stat", err, budget, cid=str(cid))
            if isinstance(failure, NotFound):
                return False
            raise failure from None
        return True

    # -- internals ---------------------------------------------------------------------------------------
    def _block(self, cid: CID, root: CID, deadline: float, budget: float) -> bytes:
        where = self.name if cid == root else f"{self.name} (block {cid} of the file is missing)"
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise NotFound(str(root), where, budget)
        data = bytearray()
        try:
            chunks = self._client.block.get(str(cid), stream=True, **self._limits(remaining))
            with chunks:
                for chunk in chunks:
                    data += chunk
                    if len(data) > MAX_BLOCK_BYTES:
                        raise StoreError(f"{self.name} sent over {MAX_BLOCK_BYTES} bytes for block {cid}")
                    # Each read has its own socket timeout; a node dripping bytes must not stretch the deadline.
                    if time.monotonic() > deadline + SOCKET_GRACE_S:
                        raise NotFound(str(root), where, budget)
        except _FAILURES as err:
            raise self._failed("block/get", err, budget, cid=str(root), where=where) from None
        return bytes(data)

    @staticmethod
    def _limits(budget: float, **opts: str) -> dict[str, Any]:
        # The node's timeout in whole milliseconds: Kubo (Go durations) and js-ipfs both read "1500ms".
        node_timeout = f"{max(int(budget * 1000), 1)}ms"
        socket_timeout = (min(CONNECT_TIMEOUT_S, budget), budget + SOCKET_GRACE_S)
        return {"timeout": socket_timeout, "opts": {**opts, "timeout": node_timeout}}

    def _failed(
        self, action: str, err: Exception, budget: float, *, cid: str | None = None, where: str | None = None
    ) -> StoreError:
        """The error to raise for a failed call: NotFound when it concerns a CID the node could not produce."""
        cause = err.__cause__
        if isinstance(err, rpc.ConnectionError) or type(cause).__name__ == "ConnectTimeout":
            return StoreError(f"cannot reach the IPFS API at {self.url} ({action}); {_FIX}")
        timed_out = isinstance(err, rpc.TimeoutError) or (
            isinstance(err, requests.RequestException) and "timed out" in str(err).lower()
        )
        if timed_out:
            if cid is not None:
                return NotFound(cid, where or self.name, budget)
            return StoreError(f"{self.name} did not answer {action} within {budget:g}s; {_FIX}")
        if isinstance(err, rpc.ErrorResponse):
            said = str(err)[:200]
            if cid is not None and any(m in said.lower() for m in _MISSING):
                return NotFound(cid, where or self.name, budget)
            return StoreError(f"{self.name} refused {action}: {said}")
        if isinstance(err, requests.RequestException):
            return StoreError(f"the connection to {self.url} broke during {action}; {_FIX}")
        return self._garbled(action)

    def _garbled(self, action: str) -> StoreError:
        return StoreError(f"{self.url} did not answer {action} as a Kubo RPC API does; {_FIX}")
