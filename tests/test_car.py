"""CAR v1 files we write are what npm @ipld/car reads and the reverse; bad CARs raise CarError saying why."""

from __future__ import annotations

import io
import json
import random
import shutil
import subprocess
from pathlib import Path

import pytest

from attest.errors import CarError
from attest.ipfs.car import encode_header, read_car, write_car
from attest.ipfs.cid import CID, RAW, encode_varint
from attest.ipfs.unixfs import CHUNK_SIZE, import_bytes

ROOT = Path(__file__).resolve().parent.parent
HELLO_V1 = CID.parse("bafkreifjjcie6lypi6ny7amxnfftagclbuxndqonfipmb64f2km2devei4")

JS_READ = """
import { readFileSync } from 'node:fs'
import { CarReader } from '@ipld/car'
const reader = await CarReader.fromBytes(readFileSync(process.argv[1]))
const blocks = []
for await (const { cid, bytes } of reader.blocks()) blocks.push([cid.toString(), Buffer.from(bytes).toString('hex')])
console.log(JSON.stringify({ roots: (await reader.getRoots()).map(String), blocks }))
"""

JS_WRITE = """
import { writeFileSync, readFileSync } from 'node:fs'
import { CarWriter } from '@ipld/car'
import { CID } from 'multiformats/cid'
const { roots, blocks } = JSON.parse(readFileSync(0, 'utf8'))
const { writer, out } = CarWriter.create(roots.map((r) => CID.parse(r)))
const chunks = []
const collected = (async () => { for await (const c of out) chunks.push(c) })()
for (const [cid, hex] of blocks) await writer.put({ cid: CID.parse(cid), bytes: Buffer.from(hex, 'hex') })
await writer.close()
await collected
writeFileSync(process.argv[1], Buffer.concat(chunks))
"""


def node_js(script: str, *args: str, stdin: str = "") -> str:
    node = shutil.which("node")
    assert node is not None, "node (Node 20) must be on PATH for the cross-check"
    out = subprocess.run(
        [node, "--input-type=module", "-e", script, *args],
        input=stdin,
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
        timeout=120,
    )
    return out.stdout


def sample(version: int = 1) -> tuple[CID, list[tuple[CID, bytes]]]:
    """A three-chunk file: two leaves, a short leaf, and a root (last)."""
    return import_bytes(random.Random(version).randbytes(2 * CHUNK_SIZE + 100), cid_version=version)


def car_bytes(roots: list[CID], blocks: list[tuple[CID, bytes]]) -> bytes:
    out = io.BytesIO()
    write_car(out, roots, blocks)
    return out.getvalue()


def read_all(raw: bytes) -> tuple[list[CID], list[tuple[CID, bytes]]]:
    roots, blocks = read_car(io.BytesIO(raw))
    return roots, list(blocks)


def test_header_is_canonical_dag_cbor() -> None:
    cid = HELLO_V1.to_bytes()
    expected = (
        bytes.fromhex("a2") + b"\x65roots" + bytes.fromhex("81d82a5825") + b"\x00" + cid + b"\x67version" + b"\x01"
    )
    assert encode_header([HELLO_V1]) == expected
    raw = car_bytes([HELLO_V1], [(HELLO_V1, b"hello world\n")])
    assert raw == encode_varint(len(expected)) + expected + encode_varint(len(cid) + 12) + cid + b"hello world\n"


@pytest.mark.parametrize("version", [0, 1])
def test_round_trip(version: int) -> None:
    root, blocks = sample(version)
    roots, read = read_all(car_bytes([root], [blocks[-1], *blocks[:-1]]))
    assert roots == [root]
    assert read == [blocks[-1], *blocks[:-1]]


def test_empty_roots_and_no_blocks_are_a_valid_car() -> None:
    assert read_all(car_bytes([], [])) == ([], [])


@pytest.mark.parametrize("version", [0, 1])
def test_ipld_car_reads_what_we_write(version: int, tmp_path: Path) -> None:
    root, blocks = sample(version)
    path = tmp_path / "ours.car"
    path.write_bytes(car_bytes([root], blocks))
    theirs = json.loads(node_js(JS_READ, str(path)))
    assert theirs["roots"] == [str(root)]
    assert theirs["blocks"] == [[str(cid), block.hex()] for cid, block in blocks]


@pytest.mark.parametrize("version", [0, 1])
def test_we_read_what_ipld_car_writes(version: int, tmp_path: Path) -> None:
    root, blocks = sample(version)
    path = tmp_path / "theirs.car"
    node_js(
        JS_WRITE,
        str(path),
        stdin=json.dumps({"roots": [str(root)], "blocks": [[str(c), b.hex()] for c, b in blocks]}),
    )
    assert path.read_bytes() == car_bytes([root], blocks)  # byte for byte the same file
    assert read_all(path.read_bytes()) == ([root], blocks)


def corrupt(raw: bytes, at: int) -> bytes:
    out = bytearray(raw)
    out[at] ^= 0x01
    return bytes(out)


def test_a_tampered_block_is_named() -> None:
    root, blocks = sample()
    raw = car_bytes([root], blocks)
    with pytest.raises(CarError, match=f"block {blocks[-1][0]} .*does not match"):
        read_all(corrupt(raw, len(raw) - 1))  # the last byte of the root block


def test_blocks_before_the_bad_one_are_verified_and_yielded() -> None:
    root, blocks = sample()
    raw = car_bytes([root], blocks)
    _, lazily = read_car(io.BytesIO(corrupt(raw, len(raw) - 1)))
    assert [next(lazily) for _ in range(len(blocks) - 1)] == blocks[:-1]
    with pytest.raises(CarError, match="section 3"):
        next(lazily)


@pytest.mark.parametrize("cut", [0, 1, 5, 40, 60, 61, 80, -1000, -1])
def test_truncated_cars_are_refused(cut: int) -> None:
    root, blocks = sample()
    raw = car_bytes([root], blocks)
    with pytest.raises(CarError, match=r"truncated|empty"):
        read_all(raw[:cut])


def header(fields: bytes, count: int = 2) -> bytes:
    body = bytes((0xA0 | count,)) + fields
    return encode_varint(len(body)) + body


ROOTS_FIELD = b"\x65roots\x81\xd8\x2a\x58\x25\x00" + HELLO_V1.to_bytes()


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"\x05hello", "not valid dag-cbor"),
        (header(ROOTS_FIELD + b"\x67version\x02"), "version 2 is not supported"),
        (header(ROOTS_FIELD, count=1), "version None"),
        (header(b"\x65roots\x01\x67version\x01"), '"roots" must be a list'),
        (header(b"\x65roots\x81\x01\x67version\x01"), '"roots" must be a list'),
        (header(b"\x65roots\x81\xd8\x2a\x42\x01\x02\x67version\x01"), "not valid dag-cbor"),  # CID without 0x00
        (header(b"\x65roots\x9f\xff\x67version\x01"), "indefinite"),
        (encode_varint(4) + b"\x83\x01\x02\x03", "not a map"),
        (encode_varint(1 << 30) + b"\xa2", "claims"),
        (b"\x80\x80\x80\x80\x80\x80\x80\x80\x80\x01", "not a valid varint"),
    ],
)
def test_bad_headers_are_refused(raw: bytes, reason: str) -> None:
    with pytest.raises(CarError, match=reason):
        read_all(raw)


@pytest.mark.parametrize(
    ("section", "reason"),
    [
        (b"\x00", "section 0 claims 0 bytes"),
        (encode_varint(1 << 30) + b"\x01", "section 0 claims"),
        (encode_varint(5) + b"\x01\x55\x12\x20\x00", "does not start with a valid CID"),
        (encode_varint(5) + b"\x02\x55\x12\x20\x00", "does not start with a valid CID"),
    ],
)
def test_bad_sections_are_refused(section: bytes, reason: str) -> None:
    with pytest.raises(CarError, match=reason):
        read_all(car_bytes([HELLO_V1], []) + section)


def test_a_block_under_a_different_cid_is_refused() -> None:
    wrong = CID.for_block(b"something else", codec=RAW, version=1)
    with pytest.raises(CarError, match=str(wrong)):
        read_all(car_bytes([wrong], [(wrong, b"hello world\n")]))
