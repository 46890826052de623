"""The batch manifest: the one document a voter needs to check a batch, pinned next to its records.

It lists the batch's records in order (record CID + digest; a record's leaf index is its position), names the
tree format, the root, the count and the asserter, and carries the asserter's EIP-191 signature of the root.
Every record's inclusion proof is derivable from it alone: rebuild the tree from the digests (ours, or
OpenZeppelin's `StandardMerkleTree.of(digests, ["bytes32"])`) and take the proof of the leaf index.

Canonical JSON (RFC 8785) like records, so one manifest has one CID. Reading refuses, before trusting anything:
an oversize document, more than MAX_RECORDS leaves, a count that disagrees, a record or digest listed twice, a
root that is not the root of the leaves, and a signature that does not recover to the asserter. Pure: no I/O.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal

from eth_account.signers.local import LocalAccount
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from attest.batch import merkle
from attest.errors import BadSignature, BatchError
from attest.jsonsafe import NonJsonConstant, RepeatedKey, nested_deeper_than, strict_loads
from attest.record.model import Address, Cid
from attest.record.signing import recover_digest_signer, sign_digest

SCHEMA_V1 = "llm-attest/batch-manifest/v1"
TREE_FORMAT = "openzeppelin-standard-v1"
SCHEMA_FILE = Path(__file__).resolve().parent / "manifest.schema.json"
# A voter must be able to fetch and check every record of a batch within the liveness.
MAX_RECORDS = 10_000
# Room for MAX_RECORDS leaves of the longest CIDs we write (~150 bytes each) and the rest.
MAX_BYTES = 2 * 1024 * 1024
BYTES32_PATTERN = r"^0x[0-9a-f]{64}$"
SIGNATURE_PATTERN = r"^0x[0-9a-f]{130}$"
_MAX_JSON_DEPTH = 8
_MAX_REPORTED_ERRORS = 5

Bytes32 = Annotated[str, StringConstraints(pattern=BYTES32_PATTERN)]


class _Strict(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)


class Tree(_Strict):
    format: Literal["openzeppelin-standard-v1"] = Field(
        description="OpenZeppelin StandardMerkleTree: leaf = keccak256(keccak256(abi.encode(digest))), sorted "
        "pairs, leaves sorted by hash; the same tree `StandardMerkleTree.of(digests, ['bytes32'])` builds."
    )
    leaf_encoding: list[Literal["bytes32"]] = Field(alias="leafEncoding", min_length=1, max_length=1)


class Leaf(_Strict):
    cid: Cid = Field(description="CID of the signed record (its canonical bytes, as pinned).")
    digest: Bytes32 = Field(description="The record's digest: sha256 of its signing bytes, 0x + 64 hex.")


class Manifest(_Strict):
    """A signed batch; `leaves[i]` is leaf index i."""

    schema_: Literal["llm-attest/batch-manifest/v1"] = Field(alias="schema")
    tree: Tree
    leaves: list[Leaf] = Field(min_length=1, max_length=MAX_RECORDS)
    root: Bytes32 = Field(description="The Merkle root of the leaves' digests: what the batch claim asserts.")
    count: int = Field(ge=1, le=MAX_RECORDS, description="The number of leaves.")
    asserter: Address
    signature: Annotated[str, StringConstraints(pattern=SIGNATURE_PATTERN)] = Field(
        description="0x + 65-byte EIP-191 personal_sign of the 32 root bytes by the asserter (r, s, v)."
    )

    def digests(self) -> list[bytes]:
        return [bytes.fromhex(leaf.digest[2:]) for leaf in self.leaves]

    def tree_of(self) -> merkle.MerkleTree:
        return merkle.build(self.digests())

    def index_of(self, digest: bytes) -> int:
        """The leaf index of a record digest, or BatchError when the batch does not hold it."""
        wanted = "0x" + digest.hex()
        for index, leaf in enumerate(self.leaves):
            if leaf.digest == wanted:
                return index
        raise BatchError(f"record digest {wanted} is not in the batch with root {self.root}")


def build_manifest(records: Sequence[tuple[str, bytes]], account: LocalAccount) -> Manifest:
    """The signed manifest of (record CID, digest) pairs, in the order given."""
    if len(records) > MAX_RECORDS:
        raise BatchError(f"a batch holds at most {MAX_RECORDS:,} records, not {len(records):,}; flush more often")
    tree = merkle.build([digest for _, digest in records])
    root = tree.root
    data = {
        "schema": SCHEMA_V1,
        "tree": {"format": TREE_FORMAT, "leafEncoding": ["bytes32"]},
        "leaves": [{"cid": cid, "digest": "0x" + digest.hex()} for cid, digest in records],
        "root": "0x" + root.hex(),
        "count": len(records),
        "asserter": account.address,
        "signature": sign_digest(root, account),
    }
    return _validate(data)


def manifest_bytes(manifest: Manifest) -> bytes:
    """The canonical (RFC 8785) bytes to pin.

    Every string in a valid manifest is printable ASCII (CIDs, hex, an address, fixed names) and the one number
    a small integer, and for such data sorted compact `json.dumps` is byte for byte RFC 8785 (a test holds it
    to `rfc8785`) at a fraction of the cost for 10,000 leaves."""
    return json.dumps(
        manifest.model_dump(mode="json", by_alias=True), sort_keys=True, separators=(",", ":"), ensure_ascii=True
    ).encode("ascii")


def decode_manifest(data: bytes) -> Manifest:
    """A manifest from untrusted bytes, checked whole (see the module doc) or refused with BatchError."""
    if len(data) > MAX_BYTES:
        raise BatchError(
            f"batch manifest is {len(data):,} bytes, over the {MAX_BYTES:,}-byte limit; a voter could not check "
            "it. Do not trust the batch."
        )
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise BatchError("batch manifest is not UTF-8 JSON; do not trust the batch") from None
    if nested_deeper_than(text, _MAX_JSON_DEPTH):
        raise BatchError(f"batch manifest JSON nests more than {_MAX_JSON_DEPTH} levels; a manifest does not")
    try:
        parsed = strict_loads(text)
    except (RepeatedKey, NonJsonConstant, ValueError) as err:
        raise BatchError(f"batch manifest is not valid JSON ({err}); do not trust the batch") from None
    return check_manifest(_validate(parsed))


def check_manifest(manifest: Manifest) -> Manifest:
    """Refuse a manifest whose count, leaves, root or signature do not hold together."""
    if manifest.count != len(manifest.leaves):
        raise BatchError(f"batch manifest says count {manifest.count} but lists {len(manifest.leaves)} records")
    seen: set[str] = set()
    for leaf in manifest.leaves:
        if leaf.cid in seen:
            raise BatchError(f"batch manifest lists record {leaf.cid} twice; a record belongs to one leaf")
        seen.add(leaf.cid)
    root = manifest.tree_of().root  # refuses a digest listed twice
    if "0x" + root.hex() != manifest.root:
        raise BatchError(
            f"batch manifest root {manifest.root} is not the root of its leaves (0x{root.hex()}); "
            "the manifest was changed or built wrong. Do not trust the batch."
        )
    try:
        signer = recover_digest_signer(root, manifest.signature)
    except BadSignature:
        signer = None
    if signer != manifest.asserter:
        raise BatchError(
            f"batch manifest signature does not recover to its asserter {manifest.asserter}; "
            "the root was not signed by the asserter. Do not trust the batch."
        )
    return manifest


def _validate(data: object) -> Manifest:
    if not isinstance(data, Mapping):
        raise BatchError(f"a batch manifest is a JSON object, not {type(data).__name__}")
    if data.get("schema") != SCHEMA_V1:
        raise BatchError(
            f"batch manifest schema {json.dumps(data.get('schema'))[:80]} is not supported; this release reads "
            f"{SCHEMA_V1}"
        )
    leaves = data.get("leaves")
    if isinstance(leaves, list) and len(leaves) > MAX_RECORDS:
        raise BatchError(f"batch manifest lists {len(leaves):,} records, over the {MAX_RECORDS:,}-record limit")
    try:
        return Manifest.model_validate(data)
    except ValidationError as err:
        parts = [
            f"{'.'.join(str(p) for p in e['loc']) or '(manifest)'}: {e['msg']}"
            for e in err.errors(include_url=False, include_input=False)
        ]
        raise BatchError(
            f"batch manifest does not match {SCHEMA_V1}: {'; '.join(parts[:_MAX_REPORTED_ERRORS])}. "
            "See attest/batch/manifest.schema.json."
        ) from None


def manifest_json_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) shipped in attest/batch/manifest.schema.json."""
    schema = Manifest.model_json_schema(by_alias=True, mode="validation")
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", **schema}


def render_json_schema() -> str:
    return json.dumps(manifest_json_schema(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"
