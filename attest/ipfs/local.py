"""The embedded block store: content addressed files on disk, no daemon, CIDs identical to `ipfs add`.

Layout under the root (default `attest_home()/ipfs`), like Kubo's flatfs: `blocks/<XY>/<KEY>.data`, where KEY is
the upper-case base32 of the block's multihash and XY its next-to-last two characters; `pins/<cid>` marks a
pinned DAG; `tmp/` stages writes. Every block is written to a temporary file, flushed to disk and renamed
into place, so a crash leaves either the whole block or none of it. A DAG's root is always written after
its children, so a root that is present means its DAG was completely written.
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

from attest.errors import CarError, NotFound, StoreError, TamperedContent
from attest.ipfs import dagpb
from attest.ipfs.car import read_car, write_car
from attest.ipfs.cid import CID, b32encode
from attest.ipfs.store import DEFAULT_TIMEOUT_S, PinResult
from attest.ipfs.unixfs import export, import_stream
from attest.paths import attest_home

WHERE = "local store"


def block_key(cid: CID) -> str:
    return b32encode(cid.multihash).upper()


class LocalStore:
    name = "local"

    def __init__(self, root: Path | None = None) -> None:
        self.root = root if root is not None else attest_home() / "ipfs"
        self.blocks_dir = self.root / "blocks"
        self.pins_dir = self.root / "pins"
        self.tmp_dir = self.root / "tmp"

    # -- ContentStore ------------------------------------------------------------------------------------
    def put(self, data: bytes, *, cid_version: int = 1) -> CID:
        return self.put_stream(io.BytesIO(data), cid_version=cid_version)

    def put_stream(self, stream: BinaryIO, cid_version: int = 1) -> CID:
        """Import a file of any size one chunk at a time; blocks already present are not rewritten."""
        return import_stream(stream, cid_version=cid_version, on_block=self._write_block)

    def get(self, cid: CID, *, timeout_s: float = DEFAULT_TIMEOUT_S) -> bytes:
        del timeout_s  # local reads never wait
        try:
            return b"".join(export(cid, self._read_block, source=WHERE))
        except TamperedContent as err:
            self._discard(err.cid)
            raise

    def pin(self, cid: CID) -> PinResult:
        """Pin after checking that every block of the DAG is here and intact; a missing block fails the pin."""
        try:
            for _ in self._walk(cid):
                pass
        except NotFound as err:
            detail = f"block {err.cid} is missing; put the content or import a CAR holding it first"
            return PinResult(self.name, str(cid), ok=False, status="failed", detail=detail)
        if not self.is_pinned(cid):  # a pin is a marker: the same DAG pinned again has nothing more to write
            self._write_atomic(self.pins_dir / str(cid), str(cid).encode())
        return PinResult(self.name, str(cid), ok=True, status="pinned")

    def has(self, cid: CID) -> bool:
        return self._path(cid).is_file() or self.is_pinned(cid)

    # -- beyond the protocol -----------------------------------------------------------------------------
    def is_pinned(self, cid: CID) -> bool:
        return (self.pins_dir / str(cid)).is_file()

    def export_car(self, cid: CID, out: BinaryIO) -> None:
        """Write the whole DAG under `cid` as a CAR v1, root first (the order `ipfs dag export` uses).

        Blocks are verified as they are read; on NotFound or TamperedContent `out` holds an incomplete CAR.
        """
        write_car(out, [cid], self._walk(cid))

    def import_car(self, inp: BinaryIO) -> list[CID]:
        """Import every block of a CAR v1 and return its roots; all or nothing.

        Blocks are staged under `tmp/` while the whole CAR is read and verified and each root's DAG is checked
        to be complete; only then are they moved into the store (roots last). A bad CAR leaves nothing behind.
        """
        try:
            self.tmp_dir.mkdir(parents=True, exist_ok=True)
            staging = Path(tempfile.mkdtemp(prefix="car-", dir=self.tmp_dir))
        except OSError as err:
            raise StoreError(f"cannot stage the CAR in {self.tmp_dir}: {err.strerror}; check the disk") from None
        try:
            roots, blocks = read_car(inp)
            staged: dict[str, Path] = {}
            for cid, block in blocks:
                key = block_key(cid)
                if key not in staged and not self._path(cid).is_file():
                    staged[key] = staging / key
                    _write_file(staged[key], block)

            def staged_or_stored(cid: CID) -> bytes:
                path = staged.get(block_key(cid))
                return path.read_bytes() if path is not None else self._read_block(cid)

            for root in roots:
                self._check_complete(root, staged_or_stored)
            root_keys = {block_key(r) for r in roots}
            for key in sorted(staged, key=lambda k: k in root_keys):
                final = self._path_for_key(key)
                final.parent.mkdir(parents=True, exist_ok=True)
                os.replace(staged[key], final)
            return roots
        except OSError as err:
            raise StoreError(f"cannot import the CAR into {self.root}: {err}; check the disk") from None
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    # -- internals ---------------------------------------------------------------------------------------
    def _path_for_key(self, key: str) -> Path:
        return self.blocks_dir / key[-3:-1] / f"{key}.data"

    def _path(self, cid: CID) -> Path:
        return self._path_for_key(block_key(cid))

    def _read_block(self, cid: CID) -> bytes:
        try:
            return self._path(cid).read_bytes()
        except FileNotFoundError:
            raise NotFound(str(cid), WHERE) from None
        except OSError as err:
            raise StoreError(f"cannot read block {cid} in {self.blocks_dir}: {err.strerror}") from None

    def _write_block(self, cid: CID, data: bytes) -> None:
        path = self._path(cid)
        if not path.is_file():
            self._write_atomic(path, data)

    def _write_atomic(self, path: Path, data: bytes) -> None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=path.parent)
            try:
                with os.fdopen(fd, "wb") as f:
                    f.write(data)
                    f.flush()
                    os.fsync(f.fileno())
                os.replace(tmp, path)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        except OSError as err:
            raise StoreError(f"cannot write {path}: {err.strerror}; check the disk and {self.root}") from None

    def _discard(self, cid_text: str) -> None:
        """Drop a block that no longer matches its name, so putting the content again repairs the store."""
        with contextlib.suppress(OSError, ValueError):
            self._path(CID.parse(cid_text)).unlink(missing_ok=True)

    def _walk(self, root: CID) -> Iterator[tuple[CID, bytes]]:
        """Every distinct block of the DAG, verified, depth first and root first."""
        for cid, block in walk_dag(root, self._read_block):
            if not cid.verify(block):
                self._discard(str(cid))
                raise TamperedContent(str(cid), WHERE, "" if cid == root else f"a block of {root}")
            yield cid, block

    @staticmethod
    def _check_complete(root: CID, read: Callable[[CID], bytes]) -> None:
        try:
            for _ in walk_dag(root, read):
                pass
        except NotFound as missing:
            raise CarError(f"the CAR lacks block {missing.cid} of root {root}; nothing was imported") from None
        except StoreError as err:
            raise CarError(f"root {root} cannot be imported: {err}; nothing was imported") from None


def walk_dag(root: CID, read: Callable[[CID], bytes]) -> Iterator[tuple[CID, bytes]]:
    """Each distinct block of the DAG once, depth first, root first and leaves in file order.

    A block's links are decoded only after the caller has taken (and so had the chance to check) the block.
    """
    stack = [root]
    seen: set[CID] = set()
    while stack:
        cid = stack.pop()
        if cid in seen:
            continue
        seen.add(cid)
        block = read(cid)
        yield cid, block
        stack.extend(reversed(dagpb.links(block, cid.codec)))


def _write_file(path: Path, data: bytes) -> None:
    with path.open("wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
