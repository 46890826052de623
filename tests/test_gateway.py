"""Gateway against a local trustless gateway (tests/support/ipfs_services.py): every block verified, every wait
bounded."""

from __future__ import annotations

import io
import random
import socket
import time
from collections.abc import Iterator
from typing import Literal

import pytest

from attest.errors import CarError, NotFound, StoreError, TamperedContent
from attest.ipfs.car import write_car
from attest.ipfs.cid import CID
from attest.ipfs.gateway import MAX_BLOCK_BYTES, Gateway
from attest.ipfs.store import ContentStore
from attest.ipfs.unixfs import import_bytes
from tests.support.ipfs_services import CAR_TYPE, RAW_TYPE, FakeGateway

Mode = Literal["raw", "car"]
MODES: tuple[Mode, ...] = ("raw", "car")
MB = 1_000_000
MARGIN_S = 0.5  # scheduling slack on top of a timeout


def file_dag(data: bytes, version: int) -> tuple[CID, dict[str, bytes], list[CID]]:
    """(root, blocks by CID string, leaves in file order) of `data` as `ipfs add` would build it."""
    root, blocks = import_bytes(data, cid_version=version)
    return root, {str(c): b for c, b in blocks}, [c for c, _ in blocks if c != root]


@pytest.fixture(scope="module")
def megabyte() -> bytes:
    return random.Random(20240601).randbytes(MB)


@pytest.fixture(params=[0, 1], ids=["cidv0", "cidv1"])
def dag(request: pytest.FixtureRequest, megabyte: bytes) -> tuple[CID, dict[str, bytes], list[CID]]:
    return file_dag(megabyte, request.param)


@pytest.fixture
def gateway(dag: tuple[CID, dict[str, bytes], list[CID]]) -> Iterator[FakeGateway]:
    with FakeGateway(dag[1]) as server:
        yield server


# -- round trips ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("mode", MODES)
def test_a_multi_block_file_round_trips(
    mode: Mode, dag: tuple[CID, dict[str, bytes], list[CID]], gateway: FakeGateway, megabyte: bytes
) -> None:
    root, blocks, leaves = dag
    assert len(leaves) == 4  # 1 MB is four 256 KiB chunks under one root
    store: ContentStore = Gateway(gateway.url, timeout_s=10, mode=mode)  # also checks the protocol statically

    assert store.get(root) == megabyte

    paths = [path for _, path, _ in gateway.requests]
    accepts = {headers["Accept"].split(";")[0] for _, _, headers in gateway.requests}
    if mode == "raw":
        assert sorted(paths) == sorted(f"/ipfs/{cid}?format=raw" for cid in blocks)  # each block once
        assert accepts == {RAW_TYPE}
    else:
        assert paths == [f"/ipfs/{root}?format=car&dag-scope=all"]
        assert accepts == {CAR_TYPE}


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(
    ("version", "expected"),
    [
        (0, "QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ff5o"),
        (1, "bafkreifjjcie6lypi6ny7amxnfftagclbuxndqonfipmb64f2km2devei4"),
    ],
)
def test_the_known_hello_world_cids(mode: Mode, version: int, expected: str) -> None:
    root, blocks, _ = file_dag(b"hello world\n", version)
    assert str(root) == expected
    with FakeGateway(blocks) as server:
        assert Gateway(server.url, timeout_s=5, mode=mode).get(CID.parse(expected)) == b"hello world\n"


def test_repeated_chunks_are_fetched_once() -> None:
    root, blocks, leaves = file_dag(bytes(MB), 1)  # three identical zero chunks and a shorter tail
    assert len(set(leaves)) == 2
    with FakeGateway(blocks) as server:
        assert Gateway(server.url, timeout_s=10).get(root) == bytes(MB)
        assert server.count("GET") == 3


# -- tampering ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("which", ["root", "leaf"])
def test_a_tampered_block_names_the_block_and_the_gateway(
    mode: Mode, which: str, dag: tuple[CID, dict[str, bytes], list[CID]], gateway: FakeGateway
) -> None:
    root, _, leaves = dag
    bad = root if which == "root" else leaves[2]
    gateway.knobs.tamper = {str(bad)}

    with pytest.raises(TamperedContent) as caught:
        Gateway(gateway.url, timeout_s=10, mode=mode).get(root)

    assert (caught.value.cid, caught.value.source) == (str(bad), gateway.url)
    assert f"{gateway.url} returned bytes that do not match {bad}" in str(caught.value)
    if mode == "raw" and which == "root":
        assert gateway.count("GET") == 1  # nothing was decoded from the bad root, so no link was followed


def test_an_oversized_block_is_cut_off_and_refused(
    dag: tuple[CID, dict[str, bytes], list[CID]], gateway: FakeGateway
) -> None:
    gateway.knobs.oversize = True
    with pytest.raises(TamperedContent, match=f"more than {MAX_BLOCK_BYTES} bytes"):
        Gateway(gateway.url, timeout_s=10).get(dag[0])


def test_has_verifies_the_root(dag: tuple[CID, dict[str, bytes], list[CID]], gateway: FakeGateway) -> None:
    root, _, leaves = dag
    store = Gateway(gateway.url, timeout_s=10)
    assert store.has(root)
    assert store.has(leaves[0])
    assert not store.has(CID.for_block(b"absent", codec=0x55, version=1))
    gateway.knobs.tamper = {str(root)}
    with pytest.raises(TamperedContent):
        store.has(root)  # a lying gateway is reported, not answered with "no"


# -- missing blocks ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("mode", MODES)
def test_a_missing_block_is_not_found(
    mode: Mode, dag: tuple[CID, dict[str, bytes], list[CID]], gateway: FakeGateway
) -> None:
    root, _, leaves = dag
    gateway.knobs.missing = {str(leaves[1])}  # raw: a 404; CAR: the stream simply lacks it

    with pytest.raises(NotFound) as caught:
        Gateway(gateway.url, timeout_s=10, mode=mode).get(root)

    assert (caught.value.cid, caught.value.where) == (str(leaves[1]), gateway.url)


@pytest.mark.parametrize("mode", MODES)
def test_a_missing_root_is_not_found_at_once(mode: Mode, gateway: FakeGateway) -> None:
    absent = CID.for_block(b"never added", codec=0x55, version=1)
    store = Gateway(gateway.url, timeout_s=10, mode=mode)

    started = time.monotonic()
    with pytest.raises(NotFound, match=f"{absent} was not found at {gateway.url}; check the CID"):
        store.get(absent)
    assert time.monotonic() - started < 1  # a 404 is an answer: no waiting out the timeout
    assert not store.has(absent)


@pytest.mark.parametrize("status", [410, 504])
def test_gone_and_gateway_timeout_are_not_found(status: int, gateway: FakeGateway) -> None:
    gateway.knobs.status = status
    with pytest.raises(NotFound):
        Gateway(gateway.url, timeout_s=5).get(CID.for_block(b"x", codec=0x55, version=1))


# -- time bounds ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("mode", MODES)
def test_a_server_that_does_not_answer_is_abandoned_at_the_timeout(
    mode: Mode, dag: tuple[CID, dict[str, bytes], list[CID]], gateway: FakeGateway
) -> None:
    root = dag[0]
    gateway.knobs.slow_s = 30
    store = Gateway(gateway.url, timeout_s=1, mode=mode)

    started = time.monotonic()
    with pytest.raises(NotFound, match=rf"{root} was not found at {gateway.url} within 1s") as caught:
        store.get(root)
    assert 1 <= time.monotonic() - started < 1 + MARGIN_S
    assert caught.value.where == gateway.url

    started = time.monotonic()
    assert not store.has(root)
    assert time.monotonic() - started < 1 + MARGIN_S


def test_the_per_call_timeout_overrides_the_default(
    dag: tuple[CID, dict[str, bytes], list[CID]], gateway: FakeGateway
) -> None:
    gateway.knobs.slow_s = 30
    started = time.monotonic()
    with pytest.raises(NotFound, match=r"within 0\.3s"):
        Gateway(gateway.url, timeout_s=60).get(dag[0], timeout_s=0.3)
    assert time.monotonic() - started < 0.3 + MARGIN_S


@pytest.mark.parametrize("mode", MODES)
def test_a_dripping_body_cannot_stretch_the_deadline(
    mode: Mode, dag: tuple[CID, dict[str, bytes], list[CID]], gateway: FakeGateway
) -> None:
    gateway.knobs.drip_s = 0.02  # every read returns within its socket timeout; only a total deadline stops this
    started = time.monotonic()
    with pytest.raises(NotFound, match=r"within 1\.5s"):
        Gateway(gateway.url, timeout_s=1.5, mode=mode).get(dag[0])
    assert 1.5 <= time.monotonic() - started < 1.5 + MARGIN_S


def test_busy_answers_are_retried_only_while_time_remains(gateway: FakeGateway) -> None:
    gateway.knobs.status = 503
    started = time.monotonic()
    with pytest.raises(StoreError, match="answered HTTP 503"):
        Gateway(gateway.url, timeout_s=1).get(CID.for_block(b"x", codec=0x55, version=1))
    assert time.monotonic() - started < 1 + MARGIN_S
    assert gateway.count("GET") >= 2


def test_an_unreachable_gateway_is_a_store_error() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(StoreError, match=r"cannot reach http://127\.0\.0\.1"):
        Gateway(f"http://127.0.0.1:{port}", timeout_s=5).get(CID.for_block(b"x", codec=0x55, version=1))


# -- broken CARs and bodies --------------------------------------------------------------------------------
def car_size(root: CID, blocks: dict[str, bytes]) -> int:
    buf = io.BytesIO()
    write_car(buf, [root], [(CID.parse(c), b) for c, b in blocks.items()])
    return len(buf.getvalue())


def test_a_truncated_car_is_a_car_error(dag: tuple[CID, dict[str, bytes], list[CID]], gateway: FakeGateway) -> None:
    root, blocks, _ = dag
    gateway.knobs.truncate_car = car_size(root, blocks) - 1000  # inside the last section, Content-Length agrees
    with pytest.raises(CarError, match=rf"the CAR of {root} from {gateway.url}: .*truncated"):
        Gateway(gateway.url, timeout_s=10, mode="car").get(root)


def test_a_body_shorter_than_promised_is_caught(
    dag: tuple[CID, dict[str, bytes], list[CID]], gateway: FakeGateway
) -> None:
    gateway.knobs.short_body = True  # the Content-Length promises more than arrives before the close
    with pytest.raises(CarError, match="cut short in transit"):
        Gateway(gateway.url, timeout_s=10, mode="car").get(dag[0])
    with pytest.raises(StoreError, match="closed the connection in the middle of block"):
        Gateway(gateway.url, timeout_s=10, mode="raw").get(dag[0])


# -- read-only --------------------------------------------------------------------------------------------
def test_gateways_are_read_only(gateway: FakeGateway) -> None:
    store = Gateway(gateway.url)
    with pytest.raises(StoreError, match="gateways are read-only"):
        store.put(b"data")
    with pytest.raises(StoreError, match="gateways are read-only"):
        store.pin(CID.for_block(b"x", codec=0x55, version=1))
    assert gateway.requests == []
