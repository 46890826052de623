"""`attest verify` of a record inside a batch, off chain: a record signed by someone other than the batch
asserter, a record not listed, and a manifest that does not resolve each fail with the reason."""

from __future__ import annotations

from pathlib import Path

from eth_account.signers.local import LocalAccount

from attest.batch.manifest import build_manifest, manifest_bytes
from attest.ipfs.local import LocalStore
from attest.record.canonical import digest
from attest.record.codec import encode_record
from attest.record.model import validate_record
from attest.record.signing import sign_record
from attest.verify_batch import verify_record_in_batch
from tests.test_batch_manifest import cid_of
from tests.test_record import full_fields


def pinned_record(store: LocalStore, account: LocalAccount, query: str) -> tuple[str, bytes]:
    record = sign_record(validate_record({**full_fields(account.address), "query": query}), account)
    return str(store.put(encode_record(record))), digest(record)


def test_a_record_in_a_batch_is_checked_with_its_proof_and_foreign_records_fail(
    tmp_path: Path, dev_keys: list[LocalAccount]
) -> None:
    store = LocalStore(tmp_path / "blocks")
    asserter, stranger = dev_keys[1], dev_keys[2]
    honest = [pinned_record(store, asserter, f"question {i}") for i in range(3)]
    foreign = pinned_record(store, stranger, "signed by a stranger")
    manifest_cid = str(store.put(manifest_bytes(build_manifest([*honest, foreign], asserter))))

    good = verify_record_in_batch(honest[1][0], manifest_cid, None, [store], timeout_s=5)
    assert good.ok, good.checks
    assert {c.name: c.status for c in good.checks} == {
        "manifest": "pass", "record": "pass", "proof": "pass", "claim": "skip"
    }  # fmt: skip

    bad = verify_record_in_batch(foreign[0], manifest_cid, None, [store], timeout_s=5)
    assert not bad.ok
    [record] = [c for c in bad.checks if c.name == "record"]
    assert record.ok is False and f"not the batch asserter {asserter.address}" in record.detail

    outsider = pinned_record(store, asserter, "never batched")[0]
    missing = verify_record_in_batch(outsider, manifest_cid, None, [store], timeout_s=5)
    assert not missing.ok and "is not listed in the manifest" in missing.checks[-1].detail

    unresolved = verify_record_in_batch(honest[0][0], cid_of("no such manifest"), None, [store], timeout_s=0.5)
    assert not unresolved.ok and unresolved.checks[0].name == "manifest" and unresolved.checks[0].ok is False
