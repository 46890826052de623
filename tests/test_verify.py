"""`attest verify` on the devnet's real UMA stack: real signed records pinned to the local store, asserted on
OptimisticOracleV3 with a real bond, then verified by assertion id and by CID, and broken one rule at a time."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any

import pytest
from click.testing import CliRunner
from eth_account.signers.local import LocalAccount
from web3 import Web3
from web3.contract import Contract

from attest.chain.artifacts import uma
from attest.chain.oov3 import AssertionMade
from attest.chain.tx import Sender
from attest.claim import build_claim, rules_cid
from attest.cli.verify import verify as verify_command
from attest.connect import ChainContext, connect
from attest.errors import VerifyError
from attest.ipfs.local import LocalStore
from attest.networks import ASSERT_TRUTH2
from attest.record.canonical import digest, digest_hex
from attest.record.codec import encode_record
from attest.record.model import validate_record
from attest.record.signing import sign_record, signable
from attest.verify import Check, check_record, verify
from tests.conftest import LocalChain
from tests.support.oov3 import assert_truth

LIVENESS = 3600
DOC_A = "# EIP-1559\n\nEIP-1559 adds a base fee per gas. The base fee is burned rather than paid to the miner.\n"
DOC_B = "Blocks target 50% fullness.\r\nThe base fee rises when blocks are fuller than the target.\r\n"
CHUNK_A = "EIP-1559 adds a base fee per gas. The base fee is burned rather than paid to the miner."
CHUNK_B = "The base fee rises when blocks are fuller than the target."  # DOC_B's CRLF ends do not matter


@dataclass
class World:
    chain: LocalChain
    ctx: ChainContext
    store: LocalStore
    key: LocalAccount
    stranger: LocalAccount
    sender: Sender
    currency: Contract

    def pin(self, data: bytes) -> str:
        cid = self.store.put(data)
        self.store.pin(cid)
        return str(cid)

    def record(
        self,
        *,
        key: LocalAccount | None = None,
        chunks: list[tuple[str, str]] | None = None,
        answer: str = "The base fee is burned [1], and it rises when blocks are fuller than the target [2].",
        corpus: bool = True,
        asserter: str | None = None,
    ) -> tuple[bytes, str, dict[str, Any]]:
        """A signed record citing `chunks` (text, document), its documents pinned; returns bytes, CID, data."""
        key = key or self.key
        chunks = chunks if chunks is not None else [(CHUNK_A, DOC_A), (CHUNK_B, DOC_B)]
        docs = {doc: self.pin(doc.encode()) for _, doc in chunks}
        context = [
            {
                "source": f"doc-{i}.md",
                "doc_cid": docs[doc],
                "chunk_index": 0,
                "text": text,
                "sha256": hashlib.sha256(text.encode()).hexdigest(),
            }
            for i, (text, doc) in enumerate(chunks)
        ]
        manifest = {
            "schema": "llm-attest/kb-manifest/v1",
            "chunking": {"chunker": "test", "max_chars": 1000, "overlap_chars": 0},
            "documents": [
                {"source": f"d{i}", "doc_cid": c, "media_type": "text/markdown", "chunks": 1}
                for i, c in enumerate(docs.values())
            ],
        }
        data = {
            "schema": "llm-attest/record/v1",
            "query": "What happens to the EIP-1559 base fee?",
            "answer": answer,
            "context": context,
            "corpus": self.pin(json.dumps(manifest).encode()) if corpus else None,
            "model": {
                "provider": "extractive",
                "requested_model": "extractive-v1",
                "returned_model": None,
                "system_fingerprint": None,
                "response_id": None,
                "params": {"temperature": None, "top_p": None, "max_tokens": None, "seed": None},
                "usage": None,
                "license": None,
                "sdk": None,
            },
            "prompt": None,
            "created_at": "2025-01-01T00:00:00Z",
            "asserter": asserter or key.address,
        }
        record = validate_record(data)
        if record.asserter == key.address:
            record = sign_record(record, key)
        else:  # a signature by another key than the record's asserter
            record = record.model_copy(
                update={"signature": "0x" + bytes(key.sign_message(signable(record)).signature).hex()}
            )
        raw = encode_record(record) if record.asserter == key.address else _canonical(record)
        return raw, self.pin(raw), data

    def claim(self, raw: bytes, cid: str) -> bytes:
        record = validate_record(json.loads(raw))
        return build_claim(cid, digest_hex(record), record.asserter, rules_cid(), record.query)

    def assert_claim(self, claim: bytes, domain_id: bytes, *, callback: str | None = None) -> AssertionMade:
        bond = self.ctx.oov3.minimum_bond(self.chain.deployment.currency)
        self.sender.transact(self.currency.functions.approve(self.ctx.oov3.address, bond), "approve")
        made, _ = assert_truth(
            self.ctx.oov3,
            self.sender,
            claim=claim,
            asserter=self.sender.address,
            callback_recipient=callback or self.chain.deployment.registry,
            liveness=LIVENESS,
            currency=self.chain.deployment.currency,
            bond=bond,
            identifier=ASSERT_TRUTH2,
            domain_id=domain_id,
        )
        return made

    def asserted(self, **kwargs: Any) -> tuple[bytes, str, AssertionMade]:
        raw, cid, _ = self.record(**kwargs)
        record = validate_record(json.loads(raw))
        return raw, cid, self.assert_claim(self.claim(raw, cid), digest(record))

    def fetch(self, cid: str) -> bytes:
        from attest.ipfs.cid import CID

        return self.store.get(CID.parse(cid))

    def checks(self, raw: bytes, cid: str, made: AssertionMade | None) -> dict[str, Check]:
        found = check_record(
            raw, cid, made=made, registry=self.ctx.registry, rules_cid=rules_cid(), fetch_document=self.fetch
        )
        return {c.name: c for c in found}


def _canonical(record: Any) -> bytes:
    from attest.record.canonical import record_bytes

    return record_bytes(record)


@pytest.fixture
def world(local_chain: LocalChain, dev_keys: list[LocalAccount]) -> Iterator[World]:
    ctx = connect("local", start_devnet=False)
    currency = ctx.w3.eth.contract(
        address=Web3.to_checksum_address(local_chain.deployment.currency), abi=uma("TestnetERC20").abi
    )
    yield World(local_chain, ctx, LocalStore(), dev_keys[1], dev_keys[3], Sender(ctx.w3, dev_keys[1]), currency)


def statuses(checks: Any) -> dict[str, str]:
    return {c.name: c.status for c in checks}


def test_an_honest_attestation_passes_every_check_by_id_and_by_cid(world: World) -> None:
    _, cid, made = world.asserted()
    assertion_id = "0x" + made.assertion_id.hex()
    by_id = verify(assertion_id, world.ctx, [world.store])
    assert by_id.ok and by_id.record_cid == cid and by_id.assertion_id == assertion_id
    assert set(statuses(by_id.checks).values()) == {"pass"}, by_id.checks
    assert [c.name for c in by_id.checks] == [
        "assertion",
        "cid",
        "schema",
        "signature",
        "digest",
        "asserter",
        "callback",
        "escalation_manager",
        "claim",
        "context",
        "corpus",
    ]
    # By CID the assertion is found from the record alone (its asserter topic and its digest as domainId).
    by_cid = verify(cid, world.ctx, [world.store])
    assert by_cid.ok and by_cid.assertion_id == assertion_id
    assert set(statuses(by_cid.checks).values()) == {"pass"}
    # Off-chain (no connection) the record checks still pass and the chain checks say why they were skipped.
    offline = verify(cid, None, [world.store])
    assert offline.ok
    assert statuses(offline.checks)["assertion"] == "skip" and statuses(offline.checks)["claim"] == "skip"
    assert statuses(offline.checks)["context"] == "pass"


def test_cli_prints_a_line_per_check_and_exits_by_the_verdict(world: World) -> None:
    _, cid, made = world.asserted()
    runner = CliRunner()
    ok = runner.invoke(verify_command, ["0x" + made.assertion_id.hex(), "--network", "local"])
    assert ok.exit_code == 0, ok.output
    assert "PASS  signature" in ok.output and "all checks passed" in ok.output
    as_json = runner.invoke(verify_command, [cid, "--json"])
    assert as_json.exit_code == 0
    report = json.loads(as_json.output)
    assert report["ok"] is True and report["record"] == cid and report["assertion"] == "0x" + made.assertion_id.hex()
    unasserted = world.record(answer="Another answer, never asserted [1].")[1]
    loose = runner.invoke(verify_command, [unasserted])
    assert loose.exit_code == 0 and "SKIP  assertion" in loose.output
    strict = runner.invoke(verify_command, [unasserted, "--require-assertion"])
    assert strict.exit_code == 1 and "FAIL  assertion" in strict.output


def test_changed_bytes_fail_the_cid_and_a_repinned_copy_fails_digest_and_claim(world: World) -> None:
    raw, cid, made = world.asserted()
    tampered = raw.replace(b"is burned [1]", b"is minted [1]")
    assert tampered != raw
    checks = world.checks(tampered, cid, made)
    assert checks["cid"].ok is False and "not " + cid in checks["cid"].detail
    assert checks["signature"].ok is False
    # Pinned under its own CID, the copy hashes fine, but it is not what the assertion's claim and domainId name.
    new_cid = world.pin(tampered)
    again = world.checks(tampered, new_cid, made)
    assert again["cid"].ok is True
    assert again["digest"].ok is False and again["claim"].ok is False
    assert cid in again["claim"].detail
    # Verifying the copy by CID finds no assertion of it, and its signature fails.
    report = verify(new_cid, world.ctx, [world.store])
    assert not report.ok and statuses(report.checks)["signature"] == "fail"
    assert statuses(report.checks)["assertion"] == "skip"


def test_a_record_signed_by_another_key_fails_the_signature(world: World) -> None:
    raw, cid, _ = world.record(key=world.stranger, asserter=world.key.address)
    record = validate_record(json.loads(raw))
    made = world.assert_claim(world.claim(raw, cid), digest(record))
    report = verify("0x" + made.assertion_id.hex(), world.ctx, [world.store])
    checks = statuses(report.checks)
    assert not report.ok and checks["signature"] == "fail" and checks["digest"] == "pass"
    assert world.stranger.address in next(c.detail for c in report.checks if c.name == "signature")


def test_a_record_of_another_asserter_fails_the_asserter(world: World) -> None:
    raw, cid, _ = world.record(key=world.stranger)
    record = validate_record(json.loads(raw))
    made = world.assert_claim(world.claim(raw, cid), digest(record))
    checks = world.checks(raw, cid, made)
    assert checks["signature"].ok is True
    assert checks["asserter"].ok is False and checks["claim"].ok is False


def test_a_domain_id_that_is_not_the_digest_fails(world: World) -> None:
    raw, cid, _ = world.record()
    made = world.assert_claim(world.claim(raw, cid), hashlib.sha256(b"another record").digest())
    report = verify("0x" + made.assertion_id.hex(), world.ctx, [world.store])
    checks = statuses(report.checks)
    assert not report.ok and checks["digest"] == "fail" and checks["claim"] == "fail" and checks["signature"] == "pass"


def test_a_chunk_that_is_not_in_its_document_fails_the_context(world: World) -> None:
    invented = "The base fee is paid to the miner in full."
    raw, cid, made = world.asserted(chunks=[(CHUNK_A, DOC_A), (invented, DOC_B)])
    report = verify("0x" + made.assertion_id.hex(), world.ctx, [world.store])
    context = next(c for c in report.checks if c.name == "context")
    assert not report.ok and context.ok is False and "chunk 1" in context.detail and "chunk 0" not in context.detail

    # A cited document nobody can provide fails too: the rules ask voters to vote 0 then.
    def unavailable(doc_cid: str) -> bytes:
        raise VerifyError(f"{doc_cid} was not found anywhere")

    gone = check_record(raw, cid, made=made, registry=None, rules_cid=rules_cid(), fetch_document=unavailable)
    context = next(c for c in gone if c.name == "context")
    assert context.ok is False and "not found anywhere" in context.detail


def test_chain_settings_and_foreign_claims_fail(world: World) -> None:
    raw, cid, _ = world.record()
    record = validate_record(json.loads(raw))
    other = world.assert_claim(world.claim(raw, cid), digest(record), callback=world.stranger.address)
    assert statuses(world.checks(raw, cid, other).values())["callback"] == "fail"
    foreign = world.assert_claim(b"Bitcoin closes above $1M today", digest(record))
    report = verify("0x" + foreign.assertion_id.hex(), world.ctx, [world.store])
    assert not report.ok and statuses(report.checks) == {"assertion": "pass", "claim": "fail"}
    # The same facts with our description reworded are refused: voters would read another claim.
    tampered_claim = world.claim(raw, cid).replace(b"is TRUE only if", b"is TRUE even if")
    reworded = world.assert_claim(tampered_claim, digest(record))
    assert statuses(world.checks(raw, cid, reworded).values())["claim"] == "fail"
    made = replace(other, callback_recipient=world.chain.deployment.registry)
    assert statuses(world.checks(raw, cid, made).values())["callback"] == "pass"


def test_unknown_targets_are_refused_with_what_to_do(world: World) -> None:
    with pytest.raises(VerifyError, match="no assertion"):
        verify("0x" + "ab" * 32, world.ctx, [world.store])
    with pytest.raises(VerifyError, match="neither an assertion id"):
        verify("not-a-target", world.ctx, [world.store])
    with pytest.raises(VerifyError, match="needs a network"):
        verify("0x" + "ab" * 32, None, [world.store])
    missing = str(LocalStore(world.chain.home / "elsewhere").put(b"never pinned here"))
    report = verify(missing, None, [world.store])
    assert not report.ok and statuses(report.checks) == {"cid": "fail", "record": "skip"}


def test_a_governed_claim_about_a_corpus_that_names_no_governance_fails(world: World) -> None:
    """Rules v3 promise every cited document was approved: a v1 manifest (no registry) cannot keep that promise."""
    raw, cid, _ = world.record()
    record = validate_record(json.loads(raw))
    claim = build_claim(cid, digest_hex(record), record.asserter, rules_cid(governed=True), record.query)
    checks = world.checks(raw, cid, world.assert_claim(claim, digest(record)))
    assert checks["claim"].ok is True and checks["corpus"].ok is True
    assert checks["governed_context"].ok is False and "names none" in checks["governed_context"].detail
    # The same record under the v1 rules: nothing about governance is claimed or checked.
    assert "governed_context" not in world.checks(raw, cid, world.assert_claim(world.claim(raw, cid), digest(record)))
