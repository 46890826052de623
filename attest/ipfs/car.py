"""CAR v1 archives: a dag-cbor header {"roots": [CID…], "version": 1}, then varint-framed (CID, block) sections.

Reading trusts nothing: every block is hashed against its CID before it is yielded, and any truncation, bad
framing or mismatch raises `CarError` naming what is wrong. Only the small dag-cbor subset a header needs is
implemented (maps, text and byte strings, arrays, unsigned ints, CIDs as tag 42).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import BinaryIO

from attest.errors import CarBlockMismatch, CarError
from attest.ipfs.cid import CID, decode_cid_prefix, encode_varint

CAR_VERSION = 1
MAX_HEADER = 1 << 20
MAX_SECTION = 32 << 20  # go-car's default limit; our own blocks are at most a 256 KiB chunk plus framing
_CID_TAG = 42
_MAX_VARINT_BYTES = 9


# -- dag-cbor subset -------------------------------------------------------------------------------------
def _head(major: int, n: int) -> bytes:
    if n < 24:
        return bytes((major << 5 | n,))
    for extra, size in ((24, 1), (25, 2), (26, 4), (27, 8)):
        if n < 1 << (8 * size):
            return bytes((major << 5 | extra,)) + n.to_bytes(size, "big")
    raise ValueError("integer too large for CBOR")


def _text(s: str) -> bytes:
    raw = s.encode()
    return _head(3, len(raw)) + raw


def _cid(cid: CID) -> bytes:
    raw = b"\x00" + cid.to_bytes()
    return _head(6, _CID_TAG) + _head(2, len(raw)) + raw


def encode_header(roots: list[CID]) -> bytes:
    """Canonical dag-cbor: map keys sorted by length, so "roots" before "version"."""
    return (
        _head(5, 2)
        + _text("roots")
        + _head(4, len(roots))
        + b"".join(_cid(r) for r in roots)
        + _text("version")
        + _head(0, CAR_VERSION)
    )


CborValue = int | bytes | str | list["CborValue"] | dict[str, "CborValue"] | CID


class _Cbor:
    def __init__(self, buf: bytes) -> None:
        self.buf = buf
        self.pos = 0

    def _take(self, n: int) -> bytes:
        if self.pos + n > len(self.buf):
            raise ValueError("truncated")
        out = self.buf[self.pos : self.pos + n]
        self.pos += n
        return out

    def value(self, depth: int = 0) -> CborValue:
        if depth > 16:
            raise ValueError("nested too deeply")
        initial = self._take(1)[0]
        major, info = initial >> 5, initial & 31
        if info < 24:
            n = info
        elif info <= 27:
            n = int.from_bytes(self._take(1 << (info - 24)), "big")
        else:
            raise ValueError("indefinite lengths and reserved values are not dag-cbor")
        if major == 0:
            return n
        if major == 2:
            return self._take(n)
        if major == 3:
            return self._take(n).decode("utf-8")
        if major == 4:
            return [self.value(depth + 1) for _ in range(n)]
        if major == 5:
            out: dict[str, CborValue] = {}
            for _ in range(n):
                key = self.value(depth + 1)
                if not isinstance(key, str) or key in out:
                    raise ValueError("map keys must be distinct strings")
                out[key] = self.value(depth + 1)
            return out
        if major == 6 and n == _CID_TAG:
            raw = self.value(depth + 1)
            if not isinstance(raw, bytes) or raw[:1] != b"\x00":
                raise ValueError("a CID (tag 42) must be a byte string starting with 0x00")
            return CID.from_bytes(raw[1:])
        raise ValueError(f"CBOR major type {major} is not expected in a CAR header")


def decode_header(raw: bytes) -> list[CID]:
    try:
        reader = _Cbor(raw)
        header = reader.value()
        if reader.pos != len(raw):
            raise ValueError("trailing bytes")
    except (ValueError, UnicodeDecodeError) as err:
        raise CarError(f"the CAR header is not valid dag-cbor ({err}); is this a CAR file?") from None
    if not isinstance(header, dict):
        raise CarError("the CAR header is not a map; is this a CAR file?")
    version = header.get("version")
    if version != CAR_VERSION:
        raise CarError(f"CAR version {version!r} is not supported; export a CAR v1 (e.g. `ipfs dag export`)")
    roots = header.get("roots")
    if not isinstance(roots, list) or not all(isinstance(r, CID) for r in roots):
        raise CarError('the CAR header "roots" must be a list of CIDs')
    return [r for r in roots if isinstance(r, CID)]


# -- framing ---------------------------------------------------------------------------------------------
def _read_exact(inp: BinaryIO, n: int, what: str) -> bytes:
    data = inp.read(n)
    while len(data) < n:
        more = inp.read(n - len(data))
        if not more:
            raise CarError(f"the CAR file is truncated in {what} ({len(data)} of {n} bytes)")
        data += more
    return data


def _read_varint(inp: BinaryIO, what: str) -> int | None:
    """A varint read byte by byte (sections are framed by them); None at a clean end of file."""
    value = 0
    for i in range(_MAX_VARINT_BYTES):
        byte = inp.read(1)
        if not byte:
            if i == 0:
                return None
            raise CarError(f"the CAR file is truncated in the length of {what}")
        value |= (byte[0] & 0x7F) << (7 * i)
        if byte[0] < 0x80:
            return value
    raise CarError(f"the length of {what} is not a valid varint; the CAR file is corrupt")


def write_car(out: BinaryIO, roots: list[CID], blocks: Iterable[tuple[CID, bytes]]) -> None:
    """Write a CAR v1. Blocks are written as given: callers pass blocks they have already verified."""
    header = encode_header(roots)
    out.write(encode_varint(len(header)) + header)
    for cid, block in blocks:
        raw = cid.to_bytes()
        out.write(encode_varint(len(raw) + len(block)) + raw)
        out.write(block)


def read_car(inp: BinaryIO) -> tuple[list[CID], Iterator[tuple[CID, bytes]]]:
    """(roots, blocks): the header is read now, blocks lazily, each verified against its CID before it is yielded."""
    size = _read_varint(inp, "the header")
    if size is None:
        raise CarError("the CAR file is empty")
    if not 0 < size <= MAX_HEADER:
        raise CarError(f"the CAR header claims {size} bytes; the file is corrupt or not a CAR")
    roots = decode_header(_read_exact(inp, size, "the header"))
    return roots, _sections(inp)


def _sections(inp: BinaryIO) -> Iterator[tuple[CID, bytes]]:
    index = 0
    while (size := _read_varint(inp, f"section {index}")) is not None:
        if not 0 < size <= MAX_SECTION:
            raise CarError(f"section {index} claims {size} bytes; the CAR file is corrupt")
        section = _read_exact(inp, size, f"section {index}")
        try:
            cid, start = decode_cid_prefix(section)
        except ValueError as err:
            raise CarError(f"section {index} does not start with a valid CID ({err})") from None
        block = section[start:]
        if not cid.verify(block):
            raise CarBlockMismatch(
                f"block {cid} (section {index}) does not match its CID; the CAR file is corrupt or tampered", str(cid)
            )
        yield cid, block
        index += 1
