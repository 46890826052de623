"""The embedded store keeps blocks under their multihash, verifies every read, pins only complete DAGs, and
imports CARs all or nothing."""

from __future__ import annotations

import io
import random
from pathlib import Path

import pytest

from attest.errors import CarError, NotFound, TamperedContent
from attest.ipfs import dagpb
from attest.ipfs.car import read_car, write_car
from attest.ipfs.cid import CID, b32encode
from attest.ipfs.local import LocalStore
from attest.ipfs.store import ContentStore
from attest.ipfs.unixfs import CHUNK_SIZE, cid_of, import_bytes

DATA = random.Random(5).randbytes(3 * CHUNK_SIZE + 1234)


def block_files(store: LocalStore) -> list[Path]:
    return sorted(p for p in store.blocks_dir.rglob("*") if p.is_file()) if store.blocks_dir.exists() else []


def leftovers(store: LocalStore) -> list[Path]:
    """Temporary files anywhere in the store."""
    temps = [p for p in store.root.rglob(".tmp-*")]
    if store.tmp_dir.exists():
        temps += list(store.tmp_dir.iterdir())
    return temps


@pytest.fixture
def store(tmp_path: Path) -> LocalStore:
    return LocalStore(tmp_path / "ipfs")


def test_is_a_content_store_rooted_in_attest_home(attest_home: str) -> None:
    store: ContentStore = LocalStore()
    assert store.name == "local"
    assert isinstance(store, LocalStore) and store.root == Path(attest_home) / "ipfs"
    cid = store.put(b"hello world\n")
    assert str(cid) == "bafkreifjjcie6lypi6ny7amxnfftagclbuxndqonfipmb64f2km2devei4"
    assert (Path(attest_home) / "ipfs" / "blocks").is_dir()


@pytest.mark.parametrize("version", [0, 1])
def test_put_get_round_trip_with_ipfs_add_cids(store: LocalStore, version: int) -> None:
    cid = store.put(DATA, cid_version=version)
    assert cid == cid_of(DATA, cid_version=version)
    assert store.has(cid)
    assert store.get(cid) == DATA
    assert leftovers(store) == []


def test_blocks_are_files_named_by_their_multihash(store: LocalStore) -> None:
    _, blocks = import_bytes(DATA, cid_version=1)
    store.put(DATA)
    files = block_files(store)
    assert len(files) == len(blocks) == 5
    for cid, block in blocks:
        key = b32encode(cid.multihash).upper()
        path = store.blocks_dir / key[-3:-1] / f"{key}.data"
        assert path.read_bytes() == block
    assert all(f.name.startswith("CIQ") for f in files)  # base32 of 0x12 0x20…, as Kubo's flatfs names them


def test_put_stream_matches_put_and_deduplicates(store: LocalStore) -> None:
    zeros = bytes(5 * CHUNK_SIZE)
    cid = store.put_stream(io.BytesIO(zeros))
    assert cid == store.put(zeros)
    assert len(block_files(store)) == 2  # one distinct leaf, one root
    assert store.get(cid) == zeros


def test_missing_content_is_not_found(store: LocalStore) -> None:
    absent = cid_of(b"never stored")
    assert not store.has(absent)
    with pytest.raises(NotFound) as err:
        store.get(absent)
    assert (err.value.cid, err.value.where) == (str(absent), "local store")


def test_a_missing_leaf_is_not_found(store: LocalStore) -> None:
    cid = store.put(DATA)
    leaf = dagpb.links(store._read_block(cid))[1]
    store._path(leaf).unlink()
    with pytest.raises(NotFound) as err:
        store.get(cid)
    assert err.value.cid == str(leaf)


def test_a_tampered_block_is_caught_and_dropped_and_put_repairs_it(store: LocalStore) -> None:
    cid = store.put(DATA)
    leaf = dagpb.links(store._read_block(cid))[2]
    path = store._path(leaf)
    path.write_bytes(b"X" + path.read_bytes()[1:])
    with pytest.raises(TamperedContent) as err:
        store.get(cid)
    assert (err.value.cid, err.value.source) == (str(leaf), "local store")
    assert not path.exists()
    store.put(DATA)
    assert store.get(cid) == DATA


def test_pin_needs_the_whole_dag(store: LocalStore) -> None:
    cid = store.put(DATA, cid_version=0)
    result = store.pin(cid)
    assert (result.ok, result.status, result.store, result.cid) == (True, "pinned", "local", str(cid))
    assert store.is_pinned(cid) and (store.pins_dir / str(cid)).is_file()

    other = store.put(DATA[::-1])
    leaf = dagpb.links(store._read_block(other))[0]
    store._path(leaf).unlink()
    failed = store.pin(other)
    assert (failed.ok, failed.status) == (False, "failed")
    assert str(leaf) in failed.detail
    assert not store.is_pinned(other)


def test_a_crash_mid_import_leaves_whole_blocks_and_no_root(store: LocalStore) -> None:
    class Dies(io.RawIOBase):
        def __init__(self) -> None:
            self.sent = 0

        def readable(self) -> bool:
            return True

        def readinto(self, buf: memoryview) -> int:  # type: ignore[override]
            if self.sent >= 2 * CHUNK_SIZE:
                raise OSError("disk unplugged")
            n = min(len(buf), 4096)
            buf[:n] = DATA[self.sent : self.sent + n]
            self.sent += n
            return n

    with pytest.raises(OSError, match="unplugged"):
        store.put_stream(Dies())  # type: ignore[arg-type]
    _, blocks = import_bytes(DATA)
    finished = blocks[:2]
    assert block_files(store) == sorted(store._path(cid) for cid, _ in finished)
    assert all(store._read_block(cid) == block for cid, block in finished)
    assert not store.has(cid_of(DATA))
    assert leftovers(store) == []


@pytest.mark.parametrize("version", [0, 1])
def test_export_car_is_the_whole_dag_root_first(store: LocalStore, version: int, tmp_path: Path) -> None:
    data = DATA + bytes(3 * CHUNK_SIZE)  # repeated zero chunks: one block in the CAR
    cid = store.put(data, cid_version=version)
    out = io.BytesIO()
    store.export_car(cid, out)
    roots, blocks = read_car(io.BytesIO(out.getvalue()))
    listed = list(blocks)
    assert roots == [cid]
    assert listed[0][0] == cid
    _, expected = import_bytes(data, cid_version=version)
    assert sorted(c.digest for c, _ in listed) == sorted({c.digest for c, _ in expected})

    fresh = LocalStore(tmp_path / "other")
    assert fresh.import_car(io.BytesIO(out.getvalue())) == [cid]
    assert fresh.get(cid) == data
    assert leftovers(fresh) == []


def _car(roots: list[CID], blocks: list[tuple[CID, bytes]]) -> bytes:
    out = io.BytesIO()
    write_car(out, roots, blocks)
    return out.getvalue()


def _bad_cars() -> dict[str, bytes]:
    root, blocks = import_bytes(DATA, cid_version=1)
    good = _car([root], [blocks[-1], *blocks[:-1]])
    tampered = bytearray(good)
    tampered[-1] ^= 1  # in the last leaf
    return {
        "tampered": bytes(tampered),
        "truncated": good[:-10],
        "missing block": _car([root], [blocks[-1], *blocks[:2]]),
        "bad header": b"\x04\xa1\x01\x02\x03" + good[60:],
    }


@pytest.mark.parametrize("case", list(_bad_cars()))
def test_a_bad_car_writes_nothing(store: LocalStore, case: str) -> None:
    with pytest.raises(CarError):
        store.import_car(io.BytesIO(_bad_cars()[case]))
    assert block_files(store) == []
    assert leftovers(store) == []


def test_import_car_completes_a_dag_from_blocks_already_stored(store: LocalStore) -> None:
    root, blocks = import_bytes(DATA, cid_version=1)
    store.put(DATA[: 2 * CHUNK_SIZE])  # the same first two leaves
    assert store.import_car(io.BytesIO(_car([root], [blocks[-1], *blocks[2:4]]))) == [root]
    assert store.get(root) == DATA
