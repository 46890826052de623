"""CIDs as Kubo writes them: v0 (base58btc "Qm…", dag-pb) and v1 (base32 lower "b…"), sha2-256 only.

The encodings (unsigned varint, base32, base58btc) are a few lines each, so they live here rather than in a
dependency; every CID in the project goes through this module.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass

from attest.errors import InvalidCid

DAG_PB = 0x70
RAW = 0x55
DAG_CBOR = 0x71
SHA2_256 = 0x12
_DIGEST_LEN = 32

_B32 = "abcdefghijklmnopqrstuvwxyz234567"
_B32_INDEX = {c: i for i, c in enumerate(_B32)}
_B58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
_B58_INDEX = {c: i for i, c in enumerate(_B58)}
_ACCEPTED = 'a CIDv0 ("Qm…", base58btc) or a CIDv1 in base32 ("b…") or base58btc ("z…")'


# -- unsigned varint (multiformats) ----------------------------------------------------------------------
def encode_varint(n: int) -> bytes:
    if n < 0:
        raise ValueError("varints are unsigned")
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def decode_varint(buf: bytes | memoryview, pos: int = 0) -> tuple[int, int]:
    """(value, position after it). Raises ValueError on a truncated or over-long (> 9 bytes) varint."""
    value = 0
    shift = 0
    for i in range(pos, min(len(buf), pos + 9)):
        byte = buf[i]
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            if byte == 0 and i > pos:
                raise ValueError("varint is not minimally encoded")
            return value, i + 1
        shift += 7
    raise ValueError("truncated or over-long varint")


# -- base32 (RFC 4648 alphabet, lower case, no padding) --------------------------------------------------
def b32encode(data: bytes) -> str:
    # The standard library's (in C) with its padding dropped: every CID and block path goes through here.
    return base64.b32encode(data).decode("ascii").rstrip("=").lower()


def b32decode(text: str) -> bytes:
    n = 0
    for c in text:
        i = _B32_INDEX.get(c)
        if i is None:
            raise ValueError(f"{c!r} is not a base32 (lower case) character")
        n = (n << 5) | i
    bits = len(text) * 5
    size, extra = divmod(bits, 8)
    if extra >= 5 or n & ((1 << extra) - 1):
        raise ValueError("base32 text has a bad length or non-zero padding bits")
    return (n >> extra).to_bytes(size, "big")


# -- base58btc -------------------------------------------------------------------------------------------
def b58encode(data: bytes) -> str:
    zeros = len(data) - len(data.lstrip(b"\0"))
    n = int.from_bytes(data, "big")
    out = []
    while n:
        n, r = divmod(n, 58)
        out.append(_B58[r])
    return "1" * zeros + "".join(reversed(out))


def b58decode(text: str) -> bytes:
    n = 0
    for c in text:
        i = _B58_INDEX.get(c)
        if i is None:
            raise ValueError(f"{c!r} is not a base58btc character")
        n = n * 58 + i
    zeros = len(text) - len(text.lstrip("1"))
    body = n.to_bytes((n.bit_length() + 7) // 8, "big") if n else b""
    return b"\0" * zeros + body


# -- CID -------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class CID:
    version: int
    codec: int
    digest: bytes  # the sha2-256 digest; the multihash is always sha2-256 here

    def __post_init__(self) -> None:
        if self.version not in (0, 1):
            raise InvalidCid(f"CID version {self.version} is not supported; use CIDv0 or CIDv1")
        if self.version == 0 and self.codec != DAG_PB:
            raise InvalidCid("a CIDv0 is always dag-pb; use CIDv1 for other codecs")
        if len(self.digest) != _DIGEST_LEN:
            raise InvalidCid(f"a sha2-256 digest is 32 bytes, not {len(self.digest)}")

    @property
    def multihash(self) -> bytes:
        return bytes((SHA2_256, _DIGEST_LEN)) + self.digest

    def to_bytes(self) -> bytes:
        if self.version == 0:
            return self.multihash
        return b"\x01" + encode_varint(self.codec) + self.multihash

    def __str__(self) -> str:
        if self.version == 0:
            return b58encode(self.multihash)
        return "b" + b32encode(self.to_bytes())

    def __repr__(self) -> str:
        return f"CID({self})"

    def verify(self, data: bytes | memoryview) -> bool:
        return hashlib.sha256(data).digest() == self.digest

    @classmethod
    def for_block(cls, data: bytes | memoryview, *, codec: int, version: int) -> CID:
        return cls(version, codec, hashlib.sha256(data).digest())

    @classmethod
    def parse(cls, text: str) -> CID:
        if not isinstance(text, str) or not text:
            raise InvalidCid(f"{text!r} is not a CID; expected {_ACCEPTED}")
        shown = text if len(text) <= 80 else text[:77] + "..."
        try:
            if text.startswith("Qm"):
                raw = b58decode(text)
                if len(raw) != 2 + _DIGEST_LEN:
                    raise ValueError("a CIDv0 is a 34-byte sha2-256 multihash")
            elif text[0] == "b":
                raw = b32decode(text[1:])
            elif text[0] == "z":
                raw = b58decode(text[1:])
            else:
                raise ValueError(f"expected {_ACCEPTED}")
            cid = cls.from_bytes(raw)
        except (ValueError, InvalidCid) as err:
            raise InvalidCid(f"{shown!r} is not a CID: {err}") from None
        if text[0] != "Q" and cid.version != 1:
            raise InvalidCid(f"{shown!r} is not a CID: a multibase-prefixed CID must be version 1")
        return cid

    @classmethod
    def from_bytes(cls, raw: bytes | memoryview) -> CID:
        cid, end = decode_cid_prefix(raw)
        if end != len(raw):
            raise InvalidCid(f"{len(raw) - end} unexpected bytes after the CID")
        return cid


def decode_cid_prefix(buf: bytes | memoryview, pos: int = 0) -> tuple[CID, int]:
    """The binary CID starting at `pos` and the position after it (CAR sections and dag-pb links need this)."""
    try:
        if buf[pos : pos + 2] == b"\x12\x20":
            end = pos + 2 + _DIGEST_LEN
            if len(buf) < end:
                raise InvalidCid("truncated CIDv0 multihash")
            return CID(0, DAG_PB, bytes(buf[pos + 2 : end])), end
        version, p = decode_varint(buf, pos)
        if version != 1:
            raise InvalidCid(f"CID version {version} is not supported; use CIDv0 or CIDv1")
        codec, p = decode_varint(buf, p)
        code, p = decode_varint(buf, p)
        length, p = decode_varint(buf, p)
    except ValueError as err:
        raise InvalidCid(f"malformed binary CID: {err}") from None
    if code != SHA2_256:
        raise InvalidCid(f"multihash 0x{code:x} is not supported; only sha2-256 (0x12) CIDs are")
    if length != _DIGEST_LEN:
        raise InvalidCid(f"a sha2-256 digest is 32 bytes, not {length}")
    end = p + length
    if len(buf) < end:
        raise InvalidCid("truncated CID digest")
    return CID(1, codec, bytes(buf[p:end])), end
