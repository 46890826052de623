"""The batch claim voters read and the frozen rules v2 it names."""

from __future__ import annotations

import hashlib
import json

import pytest

from attest.batch.claim import (
    BATCH_CLAIM_SCHEMA_V1,
    RULES_V2_FILE,
    build_batch_claim,
    parse_batch_claim,
    rules_v2_cid,
)
from attest.claim import RULES_FILE, rules_cid, ui_view
from attest.errors import ClaimError
from tests.test_batch_manifest import cid_of

# sha256 of claim-rules-v2.md as shipped. v2 is frozen: batch claims on chain name its CID, so it must never change.
RULES_V2_SHA256 = "da9fde1a653eec85b872c6152f8d085e5f515b3a7edf4b7005655a983369d5b2"
ROOT = "0x" + "ab" * 32
ASSERTER = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
MANIFEST = cid_of("manifest")


def test_rules_v2_are_frozen_and_distinct_from_v1() -> None:
    assert hashlib.sha256(RULES_V2_FILE.read_bytes()).hexdigest() == RULES_V2_SHA256, "never edit claim-rules-v2.md"
    assert RULES_V2_FILE.read_bytes() != RULES_FILE.read_bytes() and rules_v2_cid() != rules_cid()


def test_a_batch_claim_names_manifest_root_count_asserter_and_rules_and_round_trips() -> None:
    data = build_batch_claim(MANIFEST, ROOT, 10_000, ASSERTER, rules_v2_cid())
    assert len(data) <= 2048
    fields = json.loads(data)
    assert fields["schema"] == BATCH_CLAIM_SCHEMA_V1 and fields["count"] == "10000"
    assert fields["manifest"] == f"ipfs://{MANIFEST}" and fields["root"] == ROOT
    title, description = ui_view(data) or ("", "")
    assert "10,000 attestation records" in title
    for fact in (f"ipfs://{MANIFEST}", ROOT, ASSERTER, f"ipfs://{rules_v2_cid()}", "ONE record"):
        assert fact in description  # where voters read it
    parsed = parse_batch_claim(data)
    assert (parsed.manifest_cid, parsed.root, parsed.count, parsed.asserter) == (MANIFEST, ROOT, 10_000, ASSERTER)


@pytest.mark.parametrize(
    ("args", "reason"),
    [
        ((MANIFEST, "0x" + "AB" * 32, 3, ASSERTER), "lowercase hex"),
        ((MANIFEST, ROOT, 0, ASSERTER), "1 to 10,000 records"),
        ((MANIFEST, ROOT, 10_001, ASSERTER), "1 to 10,000 records"),
        ((MANIFEST, ROOT, 3, ASSERTER.lower()), "checksummed"),
        (("not-a-cid", ROOT, 3, ASSERTER), "not a CID"),
    ],
)
def test_bad_fields_are_refused(args: tuple[str, str, int, str], reason: str) -> None:
    with pytest.raises(ClaimError, match=reason):
        build_batch_claim(*args, rules_v2_cid())


def test_a_claim_with_another_description_or_keys_is_not_a_batch_claim() -> None:
    fields = json.loads(build_batch_claim(MANIFEST, ROOT, 3, ASSERTER, rules_v2_cid()))
    with pytest.raises(ClaimError, match="description"):
        parse_batch_claim(json.dumps({**fields, "description": "trust me"}).encode())
    with pytest.raises(ClaimError, match="keys"):
        parse_batch_claim(json.dumps({**fields, "extra": "x"}).encode())
    with pytest.raises(ClaimError, match="description"):
        parse_batch_claim(json.dumps({**fields, "count": "4"}).encode())
    with pytest.raises(ClaimError):
        parse_batch_claim(b"\xff")
