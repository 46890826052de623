"""The batch claim voters read: the manifest's ipfs:// URI, the Merkle root (where voters read it; it is also the
assertion's domainId), the count, the asserter and the v2 rules. Same shape as the single-record claim
(attest/claim.py): UTF-8 JSON whose `title` and `description` the UMA Oracle UI shows, then the same facts as
machine-readable keys, at most 2 KB. Pure."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from eth_utils.address import is_checksum_address

from attest.batch.manifest import MAX_RECORDS
from attest.claim import MAX_CLAIM_BYTES, ui_view
from attest.errors import ClaimError, InvalidCid
from attest.ipfs.cid import CID
from attest.ipfs.unixfs import cid_of
from attest.jsonsafe import nested_deeper_than, strict_loads

BATCH_CLAIM_SCHEMA_V1 = "llm-attest/batch-claim/v1"
RULES_V2_FILE = Path(__file__).resolve().parent.parent / "rules" / "claim-rules-v2.md"
TITLE_STEM = "llm-attest: a batch of correct and faithful answers"
_KEYS = ("title", "description", "schema", "manifest", "root", "count", "asserter", "rules")
_ROOT = re.compile(r"0x[0-9a-f]{64}")


@dataclass(frozen=True)
class BatchClaim:
    manifest_cid: str
    root: str  # 0x + 64 lowercase hex: the Merkle root and the assertion's domainId
    count: int
    asserter: str
    rules_cid: str


@lru_cache(maxsize=1)
def rules_v2_bytes() -> bytes:
    """The exact bytes of the frozen v2 rules (batches): pin these; batch claims name their CID."""
    return RULES_V2_FILE.read_bytes()


def rules_v2_cid(cid_version: int = 1) -> str:
    return str(cid_of(rules_v2_bytes(), cid_version=cid_version))


def build_batch_claim(manifest_cid: str, root: str, count: int, asserter: str, rules_cid: str) -> bytes:
    claim = BatchClaim(_cid(manifest_cid, "manifest CID"), root, count, asserter, _cid(rules_cid, "rules CID"))
    _check(claim)
    title = f"{TITLE_STEM}: {count:,} attestation record{'s' if count != 1 else ''}"
    data = json.dumps(
        {
            "title": title,
            "description": render_description(claim),
            "schema": BATCH_CLAIM_SCHEMA_V1,
            "manifest": f"ipfs://{claim.manifest_cid}",
            "root": root,
            "count": str(count),
            "asserter": asserter,
            "rules": f"ipfs://{claim.rules_cid}",
        },
        ensure_ascii=False,
        separators=(",", ":"),
    ).encode("utf-8")
    if len(data) > MAX_CLAIM_BYTES:
        raise ClaimError(f"the batch claim is {len(data):,} bytes, over the {MAX_CLAIM_BYTES:,}-byte limit")
    if ui_view(data) is None:
        raise ClaimError("the Oracle UI would not show this batch claim's title; report this as a bug")
    return data


def render_description(c: BatchClaim) -> str:
    return (
        f"This assertion is TRUE only if every statement below holds, checked as the rules at "
        f"ipfs://{c.rules_cid} describe; otherwise it is FALSE.\n\n"
        f"1. The file at ipfs://{c.manifest_cid} is an llm-attest/batch-manifest/v1 manifest listing exactly "
        f"{c.count} attestation records, each once.\n"
        f"2. Its Merkle root (OpenZeppelin StandardMerkleTree over the listed record digests) is {c.root}, this "
        "assertion's domainId.\n"
        f"3. The manifest's signature is an EIP-191 signature of that root by {c.asserter}, this assertion's "
        "asserter.\n"
        "4. Every listed record is well formed, has its listed digest, is signed by the asserter, and its answer "
        "is a correct and faithful response to its query given its cited context (rules v1).\n\n"
        "ONE record that fails makes the whole assertion FALSE. A disputer names the failing records in its "
        "published evidence: check those first."
    )


def parse_batch_claim(claim: bytes) -> BatchClaim:
    """A strictly checked batch claim from untrusted bytes, or ClaimError."""
    data = bytes(claim)
    if len(data) > MAX_CLAIM_BYTES:
        raise ClaimError(f"the claim is {len(data):,} bytes, over the {MAX_CLAIM_BYTES:,}-byte limit of a claim")
    try:
        text = data.decode("utf-8")
        if nested_deeper_than(text, 4):
            raise ValueError("nested too deeply")
        value = strict_loads(text)
    except (UnicodeDecodeError, ValueError, RecursionError) as err:
        raise ClaimError(f"the claim is not a batch claim ({str(err)[:80]})") from None
    if not isinstance(value, dict) or tuple(value) != _KEYS or not all(isinstance(v, str) for v in value.values()):
        raise ClaimError(f"a batch claim is a JSON object of strings with the keys {list(_KEYS)} in that order")
    if value["schema"] != BATCH_CLAIM_SCHEMA_V1:
        raise ClaimError(f"the claim's schema is not {BATCH_CLAIM_SCHEMA_V1}")
    if not value["count"].isdigit() or not value["manifest"].startswith("ipfs://"):
        raise ClaimError("the batch claim's count is not a decimal number or its manifest is not an ipfs:// URI")
    if not value["rules"].startswith("ipfs://"):
        raise ClaimError("the batch claim's rules are not an ipfs:// URI")
    parsed = BatchClaim(
        _cid(value["manifest"].removeprefix("ipfs://"), "manifest CID"),
        value["root"],
        int(value["count"]),
        value["asserter"],
        _cid(value["rules"].removeprefix("ipfs://"), "rules CID"),
    )
    _check(parsed)
    if value["description"] != render_description(parsed):
        raise ClaimError("the batch claim's description is not the v1 wording for its fields")
    return parsed


def _check(c: BatchClaim) -> None:
    if not _ROOT.fullmatch(c.root):
        raise ClaimError(f"the root {c.root[:80]!r} is not 0x followed by 64 lowercase hex digits")
    if not 1 <= c.count <= MAX_RECORDS:
        raise ClaimError(f"a batch holds 1 to {MAX_RECORDS:,} records, not {c.count:,}")
    if not is_checksum_address(c.asserter):
        raise ClaimError(f"the asserter {c.asserter[:80]!r} is not an EIP-55 checksummed address")


def _cid(text: str, what: str) -> str:
    try:
        canonical = str(CID.parse(text))
    except InvalidCid:
        raise ClaimError(f"the {what} {text[:80]!r} is not a CID") from None
    if canonical != text:
        raise ClaimError(f"the {what} {text[:80]!r} is not in canonical form; write it as {canonical}")
    return canonical
