"""The batch manifest: canonical bytes, its schema file, proofs from the manifest alone, and every way a manifest
that does not hold together is refused."""

from __future__ import annotations

import base64
import hashlib
import json

import pytest
import rfc8785
from eth_account import Account
from eth_account.signers.local import LocalAccount

from attest.batch import merkle
from attest.batch.manifest import (
    MAX_BYTES,
    MAX_RECORDS,
    SCHEMA_FILE,
    build_manifest,
    decode_manifest,
    manifest_bytes,
    render_json_schema,
)
from attest.errors import BatchError


def cid_of(label: str) -> str:
    """A CIDv1 (raw, sha256) in base32, the form `ipfs add --cid-version=1` prints."""
    raw = b"\x01\x55\x12\x20" + hashlib.sha256(label.encode()).digest()
    return "b" + base64.b32encode(raw).decode().lower().rstrip("=")


def records(n: int, label: str = "record") -> list[tuple[str, bytes]]:
    return [(cid_of(f"{label} {i}"), hashlib.sha256(f"{label} {i}".encode()).digest()) for i in range(n)]


@pytest.fixture
def asserter(dev_keys: list[LocalAccount]) -> LocalAccount:
    return dev_keys[1]


def tampered(data: bytes, change: dict[str, object]) -> bytes:
    doc = json.loads(data)
    doc.update(change)
    return json.dumps(doc).encode()


def test_round_trip_is_canonical_and_every_proof_derives_from_the_manifest(asserter: LocalAccount) -> None:
    batch = records(25)
    manifest = build_manifest(batch, asserter)
    data = manifest_bytes(manifest)
    assert data == rfc8785.dumps(json.loads(data))
    read = decode_manifest(data)
    assert read == manifest
    assert read.count == 25 and read.asserter == asserter.address
    assert [leaf.cid for leaf in read.leaves] == [cid for cid, _ in batch]
    tree = read.tree_of()
    root = bytes.fromhex(read.root[2:])
    for index, (_, digest) in enumerate(batch):
        assert read.index_of(digest) == index
        assert merkle.verify(digest, tree.proof(index), root)
    with pytest.raises(BatchError, match="not in the batch"):
        read.index_of(hashlib.sha256(b"outsider").digest())


def test_the_schema_file_is_the_model() -> None:
    assert SCHEMA_FILE.read_text(encoding="utf-8") == render_json_schema(), "run scripts/export_record_schema.py"
    schema = json.loads(render_json_schema())
    assert set(schema["required"]) == {"schema", "tree", "leaves", "root", "count", "asserter", "signature"}
    assert schema["properties"]["leaves"]["maxItems"] == MAX_RECORDS


def test_a_root_that_is_not_the_root_of_the_leaves_is_refused(asserter: LocalAccount) -> None:
    data = manifest_bytes(build_manifest(records(4), asserter))
    other = build_manifest(records(4, "other"), asserter)
    # The signature is valid for the other root, so only the leaves can give it away.
    forged = tampered(data, {"root": other.root, "signature": other.signature})
    with pytest.raises(BatchError, match="not the root of its leaves"):
        decode_manifest(forged)


def test_a_record_listed_twice_is_refused(asserter: LocalAccount) -> None:
    batch = records(3)
    with pytest.raises(BatchError, match="twice"):
        build_manifest([*batch, batch[0]], asserter)
    doc = json.loads(manifest_bytes(build_manifest(batch, asserter)))
    doc["leaves"][2]["cid"] = doc["leaves"][0]["cid"]
    with pytest.raises(BatchError, match=f"record {doc['leaves'][0]['cid']} twice"):
        decode_manifest(json.dumps(doc).encode())


def test_a_root_signed_by_anyone_but_the_asserter_is_refused(dev_keys: list[LocalAccount]) -> None:
    data = manifest_bytes(build_manifest(records(3), dev_keys[1]))
    stranger = build_manifest(records(3), dev_keys[2])
    with pytest.raises(BatchError, match="does not recover to its asserter"):
        decode_manifest(tampered(data, {"signature": stranger.signature}))
    with pytest.raises(BatchError, match="does not recover to its asserter"):
        decode_manifest(tampered(data, {"asserter": dev_keys[2].address}))


def test_oversize_manifests_are_refused_before_parsing(asserter: LocalAccount) -> None:
    with pytest.raises(BatchError, match="at most 10,000 records"):
        build_manifest(records(MAX_RECORDS + 1), asserter)
    with pytest.raises(BatchError, match="over the 2,097,152-byte limit"):
        decode_manifest(b" " * (MAX_BYTES + 1))
    doc = json.loads(manifest_bytes(build_manifest(records(2), asserter)))
    doc["leaves"] = doc["leaves"] * (MAX_RECORDS // 2 + 1)
    with pytest.raises(BatchError, match="over the 10,000-record limit"):
        decode_manifest(json.dumps(doc, separators=(",", ":")).encode())


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"count": 5}, "says count 5 but lists 3"),
        ({"schema": "llm-attest/batch-manifest/v9"}, "is not supported"),
        ({"extra": 1}, "extra: Extra inputs are not permitted"),
        ({"root": "0x" + "AB" * 32}, "root: String should match pattern"),
        ({"tree": {"format": "sorted-pairs", "leafEncoding": ["bytes32"]}}, "tree.format"),
    ],
)
def test_malformed_manifests_say_what_is_wrong(asserter: LocalAccount, change: dict[str, object], reason: str) -> None:
    data = manifest_bytes(build_manifest(records(3), asserter))
    with pytest.raises(BatchError, match=reason):
        decode_manifest(tampered(data, change))


@pytest.mark.parametrize("data", [b"\xff", b"[]", b'{"schema": 1, "schema": 2}', b"{" * 100, b"NaN"])
def test_bytes_that_are_not_a_manifest_are_refused(data: bytes) -> None:
    with pytest.raises(BatchError):
        decode_manifest(data)


def test_a_fresh_account_can_build_one() -> None:
    manifest = build_manifest(records(1), Account.create())
    assert decode_manifest(manifest_bytes(manifest)) == manifest
