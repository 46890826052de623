"""KuboStore against a real js-ipfs daemon (npm `ipfs`) started offline on 127.0.0.1 for this session.

Tampering and a node that chunks differently are shown through a small proxy in front of the daemon's API that
rewrites its answers: the daemon itself cannot be made to serve a block under the wrong CID.
"""

from __future__ import annotations

import contextlib
import http.client
import io
import json
import os
import random
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import ipfshttpclient  # type: ignore[import-untyped]
import pytest

from attest.errors import NotFound, StoreError, TamperedContent
from attest.ipfs.cid import CID
from attest.ipfs.kubo import HAS_TIMEOUT_S, SOCKET_GRACE_S, KuboStore, parse_api
from attest.ipfs.store import ContentStore
from attest.ipfs.unixfs import cid_of, import_bytes
from tests.support.jsipfs import JsIpfsDaemon
from tests.support.ports import free_port

pytestmark = pytest.mark.filterwarnings("ignore:The 'strict' parameter is no longer needed:FutureWarning")

MB = 1_000_000
MARGIN_S = 1.0  # scheduling slack on top of a timeout
HELLO = b"hello world\n"


@pytest.fixture
def store(daemon: JsIpfsDaemon) -> KuboStore:
    return KuboStore(daemon.api, timeout_s=10)


@pytest.fixture
def raw_node(daemon: JsIpfsDaemon) -> Any:
    """The daemon through ipfshttpclient directly: for setting up and checking the node, not through our code."""
    return ipfshttpclient.Client(daemon.api, timeout=10)


def block_put(raw_node: Any, block: bytes, codec: str) -> CID:
    answer = raw_node.block.put(io.BytesIO(block), opts={"format": codec, "mhtype": "sha2-256", "version": "1"})
    return CID.parse(str(answer["Key"]))


def pinned(raw_node: Any, cid: CID) -> bool:
    try:
        keys = raw_node.pin.ls(str(cid), type="recursive")["Keys"]
    except ipfshttpclient.exceptions.ErrorResponse:
        return False
    return any(CID.parse(k) == cid for k in keys)


class RewritingProxy:
    """An HTTP proxy on 127.0.0.1 in front of the daemon's API; `rewrite(path, arg, body)` may change answers."""

    def __init__(self, upstream_port: int, rewrite: Callable[[str, str, bytes], bytes]) -> None:
        self.upstream_port = upstream_port
        self.rewrite = rewrite
        self._server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> RewritingProxy:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = self._read_body()
                upstream = http.client.HTTPConnection("127.0.0.1", proxy.upstream_port, timeout=60)
                headers = {k: v for k, v in self.headers.items() if k.lower() == "content-type"}
                upstream.request("POST", self.path, body=body, headers=headers)
                answer = upstream.getresponse()
                payload = answer.read()
                upstream.close()
                url = urlsplit(self.path)
                arg = parse_qs(url.query).get("arg", [""])[0]
                if answer.status == 200:
                    payload = proxy.rewrite(url.path, arg, payload)
                self.send_response(answer.status)
                self.send_header("Content-Type", answer.getheader("Content-Type") or "application/octet-stream")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def _read_body(self) -> bytes:
                if self.headers.get("Transfer-Encoding", "").lower() != "chunked":
                    return self.rfile.read(int(self.headers.get("Content-Length") or 0))
                body = bytearray()
                while size := int(self.rfile.readline().split(b";")[0], 16):
                    body += self.rfile.read(size)
                    self.rfile.readline()
                while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                    pass
                return bytes(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.shutdown()
        self._server.server_close()


def flip_first_byte(targets: set[str]) -> Callable[[str, str, bytes], bytes]:
    def rewrite(path: str, arg: str, body: bytes) -> bytes:
        if path.endswith("/block/get") and arg in targets and body:
            return bytes([body[0] ^ 0xFF]) + body[1:]
        return body

    return rewrite


# -- round trips ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("version", [0, 1], ids=["cidv0", "cidv1"])
@pytest.mark.parametrize("size", [10_000, MB], ids=["10KB", "1MB"])
def test_put_then_get_round_trips_with_the_cid_we_compute(store: KuboStore, version: int, size: int) -> None:
    data = random.Random(size + version).randbytes(size)
    cid = store.put(data, cid_version=version)

    assert cid == cid_of(data, cid_version=version)
    assert cid.version == version
    assert store.get(cid) == data
    if size == MB:
        assert len(import_bytes(data, cid_version=version)[1]) == 5  # four 256 KiB chunks under one root


def test_known_vectors_match_ipfs_add(store: KuboStore) -> None:
    assert str(store.put(HELLO, cid_version=0)) == "QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ff5o"
    assert str(store.put(HELLO, cid_version=1)) == "bafkreifjjcie6lypi6ny7amxnfftagclbuxndqonfipmb64f2km2devei4"


def test_the_store_satisfies_the_protocol_and_names_its_node(store: KuboStore, daemon: JsIpfsDaemon) -> None:
    as_protocol: ContentStore = store  # checked statically by mypy
    assert as_protocol.name == f"kubo http://127.0.0.1:{daemon.api_port}"


def test_an_http_url_reaches_the_same_node(daemon: JsIpfsDaemon) -> None:
    by_url = KuboStore(f"{daemon.api_url}/api/v0/", timeout_s=10)
    by_multiaddr = KuboStore(daemon.api, timeout_s=10)
    cid = by_multiaddr.put(b"written through the multiaddr")

    assert by_url.name == by_multiaddr.name
    assert by_url.get(cid) == b"written through the multiaddr"


@pytest.mark.parametrize(
    ("api", "multiaddr", "url"),
    [
        ("/ip4/127.0.0.1/tcp/5001/http", "/ip4/127.0.0.1/tcp/5001/http", "http://127.0.0.1:5001"),
        ("/ip4/127.0.0.1/tcp/5001", "/ip4/127.0.0.1/tcp/5001/http", "http://127.0.0.1:5001"),
        ("/dns/ipfs.example/tcp/443/https", "/dns/ipfs.example/tcp/443/https", "https://ipfs.example:443"),
        ("http://127.0.0.1:5001", "/ip4/127.0.0.1/tcp/5001/http", "http://127.0.0.1:5001"),
        ("http://[::1]:5001/api/v0", "/ip6/::1/tcp/5001/http", "http://[::1]:5001"),
        ("https://ipfs.example", "/dns/ipfs.example/tcp/443/https", "https://ipfs.example:443"),
    ],
)
def test_both_address_forms_are_accepted(api: str, multiaddr: str, url: str) -> None:
    assert parse_api(api) == (multiaddr, url)


@pytest.mark.parametrize(
    "api", ["ftp://127.0.0.1:5001", "/ip4/127.0.0.1/udp/5001", "127.0.0.1:5001", "http://h:5001/other", "http://h:x"]
)
def test_other_addresses_are_refused_with_an_example(api: str) -> None:
    with pytest.raises(StoreError, match=r"use e\.g\. /ip4/127\.0\.0\.1/tcp/5001/http"):
        KuboStore(api)


def test_credentials_in_the_address_are_refused_without_being_repeated() -> None:
    with pytest.raises(StoreError) as caught:
        KuboStore("http://user:s3cret@127.0.0.1:5001")
    assert "s3cret" not in str(caught.value)


# -- pin and has ------------------------------------------------------------------------------------------
def test_pin_pins_what_the_node_holds_and_has_sees_it(store: KuboStore, raw_node: Any) -> None:
    data = random.Random(7).randbytes(1000)
    cid = block_put(raw_node, data, "raw")  # stored but not pinned, unlike `put`
    assert cid == cid_of(data)
    assert not pinned(raw_node, cid)

    result = store.pin(cid)

    assert (result.ok, result.status, result.cid, result.store) == (True, "pinned", str(cid), store.name)
    assert pinned(raw_node, cid)
    assert store.has(cid)


def test_put_pins_too(store: KuboStore, raw_node: Any) -> None:
    cid = store.put(b"pinned by put")
    assert pinned(raw_node, cid)


def test_has_answers_false_quickly_for_a_cid_the_node_lacks(store: KuboStore) -> None:
    started = time.monotonic()
    assert not store.has(cid_of(os.urandom(64)))
    assert time.monotonic() - started < HAS_TIMEOUT_S + SOCKET_GRACE_S + MARGIN_S


# -- bounded waits ----------------------------------------------------------------------------------------
def test_a_cid_the_node_lacks_is_not_found_within_the_timeout(store: KuboStore) -> None:
    cid = cid_of(os.urandom(64))
    started = time.monotonic()
    with pytest.raises(NotFound) as caught:
        store.get(cid, timeout_s=2)
    elapsed = time.monotonic() - started

    assert elapsed < 2 + SOCKET_GRACE_S + MARGIN_S
    assert (caught.value.cid, caught.value.where) == (str(cid), store.name)
    assert "within 2s" in str(caught.value)


def test_a_pin_the_node_cannot_complete_fails_within_the_timeout(daemon: JsIpfsDaemon) -> None:
    store = KuboStore(daemon.api, timeout_s=2)
    cid = cid_of(os.urandom(64))
    started = time.monotonic()
    result = store.pin(cid)

    assert time.monotonic() - started < 2 + SOCKET_GRACE_S + MARGIN_S
    assert (result.ok, result.status) == (False, "failed")
    assert "put the content there first" in result.detail


def test_a_missing_block_under_a_present_root_is_not_found_in_bounded_time(store: KuboStore, raw_node: Any) -> None:
    data = random.Random(11).randbytes(600_000)
    root, blocks = import_bytes(data, cid_version=1)
    assert block_put(raw_node, blocks[-1][1], "dag-pb") == root  # the root alone, none of its three leaves
    started = time.monotonic()
    with pytest.raises(NotFound) as caught:
        store.get(root, timeout_s=2)

    assert time.monotonic() - started < 2 + SOCKET_GRACE_S + MARGIN_S
    assert caught.value.cid == str(root)
    assert f"block {blocks[0][0]} of the file is missing" in caught.value.where


# -- nothing unverified gets through ----------------------------------------------------------------------
def test_a_corrupted_block_raises_tampered_content_naming_the_cid_and_the_source(
    store: KuboStore, daemon: JsIpfsDaemon
) -> None:
    cid = store.put(HELLO)
    with RewritingProxy(daemon.api_port, flip_first_byte({str(cid)})) as proxy:
        proxied = KuboStore(proxy.url, timeout_s=10)
        with pytest.raises(TamperedContent) as caught:
            proxied.get(cid)

    assert (caught.value.cid, caught.value.source) == (str(cid), proxied.name)
    assert proxy.url.removeprefix("http://") in caught.value.source
    assert store.get(cid) == HELLO  # the node itself still has the right bytes


@pytest.mark.parametrize("version", [0, 1], ids=["cidv0", "cidv1"])
def test_one_corrupted_leaf_of_a_large_file_is_caught(store: KuboStore, daemon: JsIpfsDaemon, version: int) -> None:
    data = random.Random(23).randbytes(MB)
    root = store.put(data, cid_version=version)
    leaf = import_bytes(data, cid_version=version)[1][2][0]
    with RewritingProxy(daemon.api_port, flip_first_byte({str(leaf)})) as proxy:
        proxied = KuboStore(proxy.url, timeout_s=10)
        with pytest.raises(TamperedContent) as caught:
            proxied.get(root)

    assert caught.value.cid == str(leaf)
    assert str(root) in str(caught.value)


def test_a_node_that_chunks_differently_is_refused_on_put(daemon: JsIpfsDaemon) -> None:
    other = str(cid_of(b"something else"))

    def claim_another_cid(path: str, arg: str, body: bytes) -> bytes:
        if not path.endswith("/add"):
            return body
        answer = json.loads(body)
        return json.dumps({**answer, "Hash": other}).encode()

    with (
        RewritingProxy(daemon.api_port, claim_another_cid) as proxy,
        pytest.raises(StoreError, match="the node chunks differently") as caught,
    ):
        KuboStore(proxy.url, timeout_s=10).put(HELLO)

    assert other in str(caught.value)
    assert str(cid_of(HELLO)) in str(caught.value)


class DrippingNode:
    """A fake API at the network edge whose block/get sends one byte every 0.2s and never finishes."""

    def __enter__(self) -> DrippingNode:
        stop = self.stop = threading.Event()

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                with contextlib.suppress(OSError):
                    while not stop.wait(0.2):
                        self.wfile.write(b"1\r\nx\r\n")
                        self.wfile.flush()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self._server.shutdown()
        self._server.server_close()


def test_a_node_that_drips_bytes_cannot_stretch_the_deadline() -> None:
    cid = cid_of(HELLO)
    with DrippingNode() as node:
        store = KuboStore(node.url, timeout_s=10)
        started = time.monotonic()
        with pytest.raises(NotFound) as caught:
            store.get(cid, timeout_s=1.5)

    assert time.monotonic() - started < 1.5 + SOCKET_GRACE_S + MARGIN_S
    assert caught.value.cid == str(cid)


# -- no daemon --------------------------------------------------------------------------------------------
def test_a_daemon_that_is_down_is_a_store_error_saying_what_to_do() -> None:
    store = KuboStore(f"http://127.0.0.1:{free_port()}", timeout_s=5)
    cid = cid_of(HELLO)
    calls: list[Callable[[], object]] = [
        lambda: store.put(HELLO),
        lambda: store.get(cid),
        lambda: store.pin(cid),
        lambda: store.has(cid),
    ]
    for call in calls:
        started = time.monotonic()
        with pytest.raises(StoreError, match="start the IPFS daemon or check --ipfs-api") as caught:
            call()
        assert not isinstance(caught.value, NotFound)  # the CID is not known to be missing; the node is
        assert time.monotonic() - started < 2


@pytest.mark.parametrize("taken", ["api", "gateway"])
def test_a_second_daemon_on_a_taken_port_fails_at_once(daemon: JsIpfsDaemon, tmp_path: Path, taken: str) -> None:
    cid = KuboStore(daemon.api, timeout_s=10).put(HELLO)
    taken_port = daemon.api_port if taken == "api" else daemon.gateway_port
    ports = (taken_port, free_port()) if taken == "api" else (free_port(), taken_port)
    other = JsIpfsDaemon(tmp_path / "repo", *ports)
    started = time.monotonic()
    with pytest.raises(StoreError, match=f"port {taken_port} on 127.0.0.1 is in use"):
        other.start(timeout_s=60)

    assert time.monotonic() - started < 1  # js-ipfs would log EADDRINUSE and linger; this fails before
    assert other.pid is None
    assert KuboStore(daemon.api, timeout_s=10).get(cid) == HELLO  # the first node is untouched


def test_a_repo_in_use_is_refused_before_anything_in_it_changes(daemon: JsIpfsDaemon) -> None:
    config = (daemon.repo / "config").read_bytes()
    other = JsIpfsDaemon(daemon.repo, free_port(), free_port())
    started = time.monotonic()
    with pytest.raises(StoreError, match="is locked by another js-ipfs daemon"):
        other.start(timeout_s=60)

    assert time.monotonic() - started < 1
    assert other.pid is None
    assert (daemon.repo / "config").read_bytes() == config
