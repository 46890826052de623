"""CIDs parse, print and hash exactly as Kubo's do; anything else is an InvalidCid saying what is accepted."""

from __future__ import annotations

import base64
import hashlib

import pytest

from attest.errors import InvalidCid
from attest.ipfs.cid import (
    CID,
    DAG_PB,
    RAW,
    SHA2_256,
    b32decode,
    b32encode,
    b58decode,
    b58encode,
    decode_cid_prefix,
    decode_varint,
    encode_varint,
)

HELLO = b"hello world\n"
HELLO_V0 = "QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ff5o"
HELLO_V1_RAW = "bafkreifjjcie6lypi6ny7amxnfftagclbuxndqonfipmb64f2km2devei4"
# The CIDv1 (dag-pb) of the same leaf block as HELLO_V0, as Debian's `ipfs_cid` prints it.
HELLO_V1_PB = "bafybeicg2rebjoofv4kbyovkw7af3rpiitvnl6i7ckcywaq6xjcxnc2mby"
# The dag-pb UnixFS leaf `ipfs add` writes for HELLO: PBNode{Data: UnixFS{Type: File, Data, filesize: 12}}.
HELLO_LEAF = bytes.fromhex("0a120802120c") + HELLO + b"\x18\x0c"


def test_known_vectors_round_trip_through_text_and_bytes() -> None:
    for text, version, codec in ((HELLO_V0, 0, DAG_PB), (HELLO_V1_RAW, 1, RAW), (HELLO_V1_PB, 1, DAG_PB)):
        cid = CID.parse(text)
        assert (cid.version, cid.codec) == (version, codec)
        assert str(cid) == text
        assert CID.from_bytes(cid.to_bytes()) == cid


def test_hashes_and_codecs_match_kubo() -> None:
    assert CID.for_block(HELLO, codec=RAW, version=1) == CID.parse(HELLO_V1_RAW)
    assert CID.for_block(HELLO_LEAF, codec=DAG_PB, version=0) == CID.parse(HELLO_V0)
    assert CID.for_block(HELLO_LEAF, codec=DAG_PB, version=1) == CID.parse(HELLO_V1_PB)
    assert CID.parse(HELLO_V1_RAW).digest == hashlib.sha256(HELLO).digest()


def test_binary_forms() -> None:
    v0 = CID.parse(HELLO_V0)
    assert v0.to_bytes() == bytes((SHA2_256, 32)) + v0.digest  # a CIDv0 is the bare multihash
    v1 = CID.parse(HELLO_V1_RAW)
    assert v1.to_bytes() == b"\x01\x55\x12\x20" + v1.digest
    cid, end = decode_cid_prefix(v1.to_bytes() + b"block bytes")
    assert (cid, end) == (v1, 36)


def test_base58btc_v1_is_accepted_and_printed_in_base32() -> None:
    v1 = CID.parse(HELLO_V1_RAW)
    z = "z" + b58encode(v1.to_bytes())
    assert CID.parse(z) == v1
    assert str(CID.parse(z)) == HELLO_V1_RAW


def test_verify() -> None:
    cid = CID.parse(HELLO_V1_RAW)
    assert cid.verify(HELLO)
    assert not cid.verify(HELLO + b"!")


@pytest.mark.parametrize(
    "text",
    [
        "",
        "hello",
        "Qm",
        HELLO_V0[:-1],  # too short
        HELLO_V0 + "a",  # too long
        HELLO_V0[:-1] + "0",  # "0" is not base58
        HELLO_V1_RAW.upper(),  # base32 upper ("B…") is not accepted
        HELLO_V1_RAW[:-1],  # truncated digest
        HELLO_V1_RAW + "a",  # trailing bytes
        HELLO_V1_RAW[:-1] + "1",  # "1" is not base32
        HELLO_V1_RAW[:-1] + "5",  # non-zero padding bits
        "f01551220" + "00" * 32,  # base16 multibase
        "z" + HELLO_V0,  # a multibase prefix on a CIDv0
        "b" + b32encode(bytes.fromhex("0255") + bytes((0x12, 32)) + b"\0" * 32),  # CID version 2
        "b" + b32encode(bytes.fromhex("0155") + bytes((0x13, 64)) + b"\0" * 64),  # sha2-512
        "b" + b32encode(bytes.fromhex("0155") + bytes((0x00, 4)) + b"abcd"),  # identity hash
        "b" + b32encode(bytes.fromhex("0155") + bytes((0x12, 20)) + b"\0" * 20),  # wrong digest length
        "b" + b32encode(bytes.fromhex("01d500") + bytes((0x12, 32)) + b"\0" * 32),  # non-minimal varint
    ],
)
def test_malformed_cids_are_rejected(text: str) -> None:
    with pytest.raises(InvalidCid) as err:
        CID.parse(text)
    assert "not a CID" in str(err.value)


def test_error_says_what_is_accepted() -> None:
    with pytest.raises(InvalidCid, match=r"CIDv0 \("):
        CID.parse("kubo://nope")


def test_inconsistent_cids_cannot_be_built() -> None:
    with pytest.raises(InvalidCid, match="dag-pb"):
        CID(0, RAW, b"\0" * 32)
    with pytest.raises(InvalidCid, match="32 bytes"):
        CID(1, RAW, b"\0" * 31)
    with pytest.raises(InvalidCid, match="version"):
        CID(2, RAW, b"\0" * 32)


@pytest.mark.parametrize("n", [0, 1, 127, 128, 255, 300, 16383, 16384, 2**32, 2**63 - 1])
def test_varint_round_trip(n: int) -> None:
    raw = encode_varint(n)
    assert decode_varint(raw + b"\xff") == (n, len(raw))
    assert len(raw) == max(1, (n.bit_length() + 6) // 7)


def test_varint_rejects_truncated_and_non_minimal() -> None:
    for raw in (b"", b"\x80", b"\x80\x00", b"\xff" * 10):
        with pytest.raises(ValueError):
            decode_varint(raw)


@pytest.mark.parametrize("data", [b"", b"\0", b"f", b"fo", b"foo", b"foob", b"fooba", b"foobar", bytes(range(256))])
def test_base32_matches_rfc4648(data: bytes) -> None:
    expected = base64.b32encode(data).decode().lower().rstrip("=")
    assert b32encode(data) == expected
    assert b32decode(expected) == data


def test_base58_known_values() -> None:
    assert b58encode(b"hello world") == "StV1DL6CwTryKyV"
    assert b58encode(b"\0\0\x01") == "112"
    assert b58decode("112") == b"\0\0\x01"
    assert b58decode("") == b""
