"""UnixFS files exactly as `ipfs add` builds them, streamed, and read back with every block verified.

Kubo's defaults: a fixed-size chunker (256 KiB) and a balanced DAG of at most 174 links per node. CIDv0 wraps
each chunk in a dag-pb UnixFS leaf; CIDv1 (`--cid-version=1`) implies raw leaves. A file of one chunk is that
chunk's leaf, with no parent. The builder keeps one chunk and one pending link list per tree level, so memory
stays flat however big the input is.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import BinaryIO

from attest.errors import MalformedBlock, TamperedContent
from attest.ipfs.cid import CID, DAG_PB, RAW
from attest.ipfs.dagpb import (
    T_FILE,
    T_RAW,
    PBLink,
    UnixFSData,
    decode_node,
    decode_unixfs,
    encode_node,
    encode_unixfs,
    file_leaf_frame,
)

CHUNK_SIZE = 262144
MAX_LINKS = 174

OnBlock = Callable[[CID, bytes], None]


@dataclass(frozen=True)
class _Link:
    cid: CID
    tsize: int  # bytes of every block under this link (dag-pb Tsize)
    filesize: int  # file bytes under this link (the parent's UnixFS blocksizes entry)


class _Balanced:
    """Kubo's balanced layout, built bottom-up: a full level closes into a parent as soon as it fills."""

    def __init__(self, cid_version: int, on_block: OnBlock | None, max_links: int) -> None:
        self.cid_version = cid_version
        self.on_block = on_block
        self.max_links = max_links
        self.levels: list[list[_Link]] = []

    def push(self, level: int, link: _Link) -> None:
        if level == len(self.levels):
            self.levels.append([])
        pending = self.levels[level]
        pending.append(link)
        if len(pending) == self.max_links:
            self.levels[level] = []
            self.push(level + 1, self._parent(pending))

    def finish(self) -> _Link:
        """Close the partial right edge; the root is the one link left at the top with nothing below it."""
        level = 0
        while True:
            pending = self.levels[level]
            if len(pending) == 1 and not any(self.levels[level + 1 :]):
                return pending[0]
            if pending:
                self.levels[level] = []
                self.push(level + 1, self._parent(pending))
            level += 1

    def _parent(self, children: list[_Link]) -> _Link:
        filesize = sum(c.filesize for c in children)
        fs = UnixFSData(T_FILE, None, filesize, tuple(c.filesize for c in children))
        block = encode_node([PBLink(c.cid, c.tsize) for c in children], encode_unixfs(fs))
        cid = CID.for_block(block, codec=DAG_PB, version=self.cid_version)
        if self.on_block is not None:
            self.on_block(cid, block)
        return _Link(cid, len(block) + sum(c.tsize for c in children), filesize)


def _fill(stream: BinaryIO, view: memoryview) -> int:
    """Read until `view` is full or the stream ends: a short read from a pipe must not cut a short chunk."""
    readinto = getattr(stream, "readinto", None)
    filled = 0
    while filled < len(view):
        if readinto is not None:
            got = readinto(view[filled:])
        else:
            data = stream.read(len(view) - filled)
            got = len(data)
            view[filled : filled + got] = data
        if not got:
            break
        filled += got
    return filled


def import_stream(
    stream: BinaryIO,
    *,
    cid_version: int = 1,
    on_block: OnBlock | None = None,
    chunk_size: int = CHUNK_SIZE,
    max_links: int = MAX_LINKS,
) -> CID:
    """The CID `ipfs add [--cid-version=1]` gives for the stream's bytes; `on_block` sees every block, root last.

    `chunk_size` and `max_links` are Kubo's `--chunker=size-N` and the layout's fan-out; keep the defaults for
    CIDs anyone else can reproduce (tests shrink them to build deep trees from a few bytes).
    """
    if cid_version not in (0, 1):
        raise ValueError("cid_version must be 0 or 1")
    if chunk_size < 1 or max_links < 2:
        raise ValueError("chunk_size must be at least 1 and max_links at least 2")
    buf = bytearray(chunk_size)
    view = memoryview(buf)
    tree = _Balanced(cid_version, on_block, max_links)
    full_frame = file_leaf_frame(chunk_size)
    sha256 = hashlib.sha256
    count = 0
    while True:
        n = _fill(stream, view)
        if n == 0 and count > 0:
            break
        count += 1
        chunk = view[:n] if n < chunk_size else view
        if cid_version == 1:
            cid = CID(1, RAW, sha256(chunk).digest())
            tsize = n
            if on_block is not None:
                on_block(cid, bytes(chunk))
        else:
            prefix, suffix = full_frame if n == chunk_size else file_leaf_frame(n)
            h = sha256(prefix)
            h.update(chunk)
            h.update(suffix)
            cid = CID(0, DAG_PB, h.digest())
            tsize = len(prefix) + n + len(suffix)
            if on_block is not None:
                on_block(cid, prefix + chunk + suffix)
        tree.push(0, _Link(cid, tsize, n))
        if n < chunk_size:
            break
    return tree.finish().cid


def import_bytes(data: bytes, *, cid_version: int = 1) -> tuple[CID, list[tuple[CID, bytes]]]:
    """The CID and every block (root last) of `data` imported as a UnixFS file."""
    blocks: list[tuple[CID, bytes]] = []
    root = import_stream(io.BytesIO(data), cid_version=cid_version, on_block=lambda c, b: blocks.append((c, b)))
    return root, blocks


def cid_of(data: bytes, *, cid_version: int = 1) -> CID:
    return import_stream(io.BytesIO(data), cid_version=cid_version)


def export(root: CID, get_block: Callable[[CID], bytes], *, source: str) -> Iterator[bytes]:
    """The file's bytes in order, each block checked against its CID before anything from it is yielded.

    Also checks the UnixFS sizes each parent declares, so a well-hashed but inconsistent DAG fails loudly
    instead of yielding a different file. Walks with an explicit stack: a deep DAG cannot hit the recursion limit.
    """
    stack: list[Iterator[tuple[CID, int | None]]] = [iter([(root, None)])]
    while stack:
        item = next(stack[-1], None)
        if item is None:
            stack.pop()
            continue
        cid, expected = item
        block = get_block(cid)
        if not cid.verify(block):
            raise TamperedContent(str(cid), source, "" if cid == root else f"a block of {root}")
        if cid.codec == RAW:
            _check_size(cid, root, expected, len(block))
            if block:
                yield block
            continue
        if cid.codec != DAG_PB:
            raise MalformedBlock(f"{cid} has codec 0x{cid.codec:x}, not dag-pb or raw: it is not a UnixFS file")
        node = decode_node(block)
        if node.data is None:
            raise MalformedBlock(f"{cid} is a dag-pb node without UnixFS data, not a file")
        fs = decode_unixfs(node.data)
        if fs.type not in (T_FILE, T_RAW):
            raise MalformedBlock(f"{cid} is a UnixFS {fs.type_name}, not a file; pass the CID of a file")
        if len(fs.blocksizes) != len(node.links):
            raise MalformedBlock(f"{cid} lists {len(fs.blocksizes)} block sizes for {len(node.links)} links")
        own = fs.data or b""
        size = len(own) + sum(fs.blocksizes)
        if fs.filesize is not None and fs.filesize != size:
            raise MalformedBlock(f"{cid} declares {fs.filesize} bytes but its data and blocks hold {size}")
        _check_size(cid, root, expected, size)
        if own:
            yield own
        if node.links:
            stack.append(zip((link.cid for link in node.links), fs.blocksizes, strict=True))


def _check_size(cid: CID, root: CID, expected: int | None, actual: int) -> None:
    if expected is not None and expected != actual:
        raise MalformedBlock(f"{cid} in {root} holds {actual} bytes where its parent says {expected}")
