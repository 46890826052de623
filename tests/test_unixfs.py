"""UnixFS import gives the CIDs `ipfs add` gives, streams in flat memory, and export verifies every block.

The reference is npm `ipfs-unixfs-importer` (an independent implementation) run with Kubo's defaults through
tests/js/unixfs_cid.mjs, plus the known `ipfs add` vectors.
"""

from __future__ import annotations

import io
import random
import shutil
import subprocess
import tracemalloc
from pathlib import Path
from typing import BinaryIO

import pytest

from attest.errors import StoreError, TamperedContent
from attest.ipfs import dagpb
from attest.ipfs.cid import CID, DAG_PB, RAW
from attest.ipfs.unixfs import CHUNK_SIZE, MAX_LINKS, cid_of, export, import_bytes, import_stream

ROOT = Path(__file__).resolve().parent.parent
JS_CID = ROOT / "tests" / "js" / "unixfs_cid.mjs"
RANDOM_SIZE = 50_000_000
KNOWN = {
    (b"hello world\n", 0): "QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ff5o",
    (b"hello world\n", 1): "bafkreifjjcie6lypi6ny7amxnfftagclbuxndqonfipmb64f2km2devei4",
    # The empty file, as `ipfs add` and `ipfs add --cid-version=1` give it.
    (b"", 0): "QmbFMke1KXqnYyBBWxB74N4c5SBnJMVAiMNRcGu6x1AwQH",
    (b"", 1): "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku",
}
SIZES = [
    0,
    1,
    CHUNK_SIZE - 1,
    CHUNK_SIZE,
    CHUNK_SIZE + 1,
    MAX_LINKS * CHUNK_SIZE - 1,
    MAX_LINKS * CHUNK_SIZE,
    MAX_LINKS * CHUNK_SIZE + 1,
    RANDOM_SIZE,
]


@pytest.fixture(scope="module")
def random_bytes() -> bytes:
    """50 MB from a seeded generator: every size under test is a prefix of it."""
    return random.Random(20240611).randbytes(RANDOM_SIZE)


def js_cid(path: Path, version: int, *sizes: int) -> str:
    node = shutil.which("node")
    assert node is not None, "node (Node 20) must be on PATH for the cross-check"
    out = subprocess.run(
        [node, str(JS_CID), str(path), str(version), *map(str, sizes)],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
        timeout=300,
    )
    return out.stdout.strip()


@pytest.mark.parametrize(("data", "version"), list(KNOWN))
def test_known_vectors(data: bytes, version: int) -> None:
    assert str(cid_of(data, cid_version=version)) == KNOWN[(data, version)]


def test_reference_script_reproduces_the_known_vectors(tmp_path: Path) -> None:
    for (data, version), expected in KNOWN.items():
        path = tmp_path / "f"
        path.write_bytes(data)
        assert js_cid(path, version) == expected


@pytest.mark.parametrize("size", SIZES)
def test_cids_match_ipfs_unixfs_importer(size: int, random_bytes: bytes, tmp_path: Path) -> None:
    data = random_bytes[:size]
    path = tmp_path / "f.bin"
    path.write_bytes(data)
    for version in (0, 1):
        with path.open("rb") as f:
            ours = import_stream(f, cid_version=version)
        assert ours.version == version
        assert str(ours) == js_cid(path, version), f"size {size}, CIDv{version}"


@pytest.mark.parametrize("leaves", [1, 2, 3, 4, 8, 9, 10, 26, 27, 28, 29, 80, 81, 82])
def test_deep_balanced_trees_match_ipfs_unixfs_importer(leaves: int, tmp_path: Path) -> None:
    """Shrunk chunks (4 bytes) and fan-out (3) give trees five levels deep, with partial right edges."""
    data = random.Random(leaves).randbytes(4 * leaves - (leaves % 2))
    path = tmp_path / "f.bin"
    path.write_bytes(data)
    for version in (0, 1):
        ours = import_stream(io.BytesIO(data), cid_version=version, chunk_size=4, max_links=3)
        assert str(ours) == js_cid(path, version, 4, 3), f"{leaves} leaves, CIDv{version}"


def test_single_chunk_files_are_their_own_leaf() -> None:
    data = b"x" * CHUNK_SIZE
    root, blocks = import_bytes(data, cid_version=1)
    assert (root.codec, blocks) == (RAW, [(root, data)])  # "bafkrei…": the raw chunk itself
    assert str(root).startswith("bafkrei")
    root, blocks = import_bytes(data, cid_version=0)
    assert len(blocks) == 1 and root.codec == DAG_PB and str(root).startswith("Qm")
    fs = dagpb.decode_unixfs(dagpb.decode_node(blocks[0][1]).data or b"")
    assert (fs.type, fs.data, fs.filesize) == (dagpb.T_FILE, data, CHUNK_SIZE)


def test_two_chunk_file_layout() -> None:
    data = bytes(CHUNK_SIZE) + b"tail"
    root, blocks = import_bytes(data, cid_version=1)
    assert [c for c, _ in blocks][-1] == root  # the root comes last
    node = dagpb.decode_node(blocks[-1][1])
    assert [link.tsize for link in node.links] == [CHUNK_SIZE, 4]
    assert [link.cid.codec for link in node.links] == [RAW, RAW]
    assert all(link.name == "" for link in node.links)
    fs = dagpb.decode_unixfs(node.data or b"")
    assert (fs.type, fs.data, fs.filesize, fs.blocksizes) == (dagpb.T_FILE, None, len(data), (CHUNK_SIZE, 4))
    # Links (field 2) are encoded before Data (field 1), as go-merkledag writes them.
    assert blocks[-1][1][0] == 0x12
    assert dagpb.encode_node(node.links, node.data) == blocks[-1][1]


def test_every_block_hashes_to_its_cid_and_export_round_trips(random_bytes: bytes) -> None:
    data = random_bytes[: MAX_LINKS * CHUNK_SIZE + 3]
    for version in (0, 1):
        root, blocks = import_bytes(data, cid_version=version)
        assert all(cid.verify(block) and cid.version == version for cid, block in blocks)
        assert len(blocks) == MAX_LINKS + 1 + 3  # leaves, two parents, the root
        store = dict(blocks)
        assert b"".join(export(root, store.__getitem__, source="test")) == data


class Trickle(io.RawIOBase):
    """A pipe-like stream that hands out a few bytes per read."""

    def __init__(self, data: bytes, step: int) -> None:
        self.data = memoryview(data)
        self.pos = 0
        self.step = step

    def readable(self) -> bool:
        return True

    def readinto(self, buf: memoryview) -> int:  # type: ignore[override]
        n = min(len(buf), self.step, len(self.data) - self.pos)
        buf[:n] = self.data[self.pos : self.pos + n]
        self.pos += n
        return n


class ReadOnly:
    """A file-like object with read() but no readinto()."""

    def __init__(self, data: bytes) -> None:
        self.inner = io.BytesIO(data)

    def read(self, n: int = -1) -> bytes:
        return self.inner.read(min(n, 1000))


def test_short_reads_do_not_change_the_cid(random_bytes: bytes) -> None:
    data = random_bytes[: 3 * CHUNK_SIZE + 17]
    expected = cid_of(data, cid_version=0)
    assert import_stream(Trickle(data, 4093), cid_version=0) == expected  # type: ignore[arg-type]
    assert import_stream(ReadOnly(data), cid_version=0) == expected  # type: ignore[arg-type]


class Zeros(io.RawIOBase):
    """`size` bytes produced on demand: a 1 GB input that never exists in memory."""

    def __init__(self, size: int) -> None:
        self.left = size

    def readable(self) -> bool:
        return True

    def readinto(self, buf: memoryview) -> int:  # type: ignore[override]
        n = min(len(buf), self.left)
        buf[:n] = bytes(n)
        self.left -= n
        return n


@pytest.mark.parametrize("version", [0, 1])
def test_memory_stays_flat_for_1gb(version: int) -> None:
    seen: list[int] = []
    tracemalloc.start()
    try:
        big: BinaryIO = Zeros(1 << 30)  # type: ignore[assignment]
        root = import_stream(big, cid_version=version, on_block=lambda c, b: seen.append(len(b)))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(seen) == 4096 + 24 + 1  # 4096 leaves, 24 parents, the root
    assert root.version == version
    # One chunk buffer, the chunk handed to on_block (and Zeros' scratch), and link lists: nowhere near 1 GB.
    assert peak < 4 * CHUNK_SIZE + 512 * 1024, f"peak {peak} bytes"


def _dag(data: bytes, version: int) -> tuple[CID, dict[CID, bytes]]:
    root, blocks = import_bytes(data, cid_version=version)
    return root, dict(blocks)


@pytest.mark.parametrize("version", [0, 1])
@pytest.mark.parametrize("which", ["root", "first leaf", "last leaf"])
def test_tampered_blocks_are_caught(version: int, which: str) -> None:
    root, store = _dag(random.Random(3).randbytes(3 * CHUNK_SIZE), version)
    leaves = [link.cid for link in dagpb.decode_node(store[root]).links]
    target = {"root": root, "first leaf": leaves[0], "last leaf": leaves[-1]}[which]
    block = bytearray(store[target])
    block[len(block) // 2] ^= 1
    store[target] = bytes(block)
    with pytest.raises(TamperedContent) as err:
        b"".join(export(root, store.__getitem__, source="gateway https://example"))
    assert err.value.cid == str(target)
    assert err.value.source == "gateway https://example"


def test_export_fetches_nothing_below_a_tampered_root() -> None:
    root, store = _dag(bytes(2 * CHUNK_SIZE), 1)
    store[root] = store[root] + b"\0"
    asked: list[CID] = []

    def get(cid: CID) -> bytes:
        asked.append(cid)
        return store[cid]

    with pytest.raises(TamperedContent):
        next(export(root, get, source="s"))
    assert asked == [root]


def _replace_root(node: dagpb.PBNode, fs: dagpb.UnixFSData, store: dict[CID, bytes]) -> CID:
    block = dagpb.encode_node(node.links, dagpb.encode_unixfs(fs))
    cid = CID.for_block(block, codec=DAG_PB, version=1)
    store[cid] = block
    return cid


def test_well_hashed_but_inconsistent_dags_are_refused() -> None:
    root, store = _dag(bytes(CHUNK_SIZE) + b"tail", 1)
    node = dagpb.decode_node(store[root])
    fs = dagpb.decode_unixfs(node.data or b"")
    lying = _replace_root(node, dagpb.UnixFSData(dagpb.T_FILE, None, CHUNK_SIZE + 5, (CHUNK_SIZE, 5)), store)
    with pytest.raises(StoreError, match="parent says 5"):
        b"".join(export(lying, store.__getitem__, source="s"))
    wrong_total = _replace_root(node, dagpb.UnixFSData(dagpb.T_FILE, None, 7, fs.blocksizes), store)
    with pytest.raises(StoreError, match="declares 7 bytes"):
        b"".join(export(wrong_total, store.__getitem__, source="s"))
    short = _replace_root(node, dagpb.UnixFSData(dagpb.T_FILE, None, fs.filesize, (CHUNK_SIZE,)), store)
    with pytest.raises(StoreError, match="block sizes"):
        b"".join(export(short, store.__getitem__, source="s"))
    directory = _replace_root(node, dagpb.UnixFSData(dagpb.T_DIRECTORY), store)
    with pytest.raises(StoreError, match="directory, not a file"):
        b"".join(export(directory, store.__getitem__, source="s"))


def test_non_unixfs_codecs_are_refused() -> None:
    block = b"\xa0"  # an empty dag-cbor map
    cid = CID.for_block(block, codec=0x71, version=1)
    with pytest.raises(StoreError, match="not a UnixFS file"):
        b"".join(export(cid, {cid: block}.__getitem__, source="s"))


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="cid_version"):
        cid_of(b"x", cid_version=2)
    with pytest.raises(ValueError, match="max_links"):
        import_stream(io.BytesIO(b"x"), max_links=1)
