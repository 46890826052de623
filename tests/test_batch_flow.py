"""Merkle batches end to end on the devnet (real UMA contracts, real ledger, real local IPFS store): `attest ask
--batch` queues, `attest batch flush` asserts one root, `attest settle` settles it, every record proves
membership on chain; a crash at any batch step resumes to exactly one assertion."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from click.testing import CliRunner, Result

from attest.batch.claim import parse_batch_claim, rules_v2_bytes
from attest.batch.manifest import decode_manifest
from attest.batch.store import BatchBook
from attest.chain.artifacts import shipped
from attest.chain.oov3 import AssertionMade
from attest.chain.outbox import CRASH_ENV
from attest.cli import cli
from attest.connect import connect
from attest.ipfs.cid import CID
from attest.ipfs.local import LocalStore
from attest.ledger import Ledger
from tests.conftest import LocalChain
from tests.test_ask import KB_DOCS, QUESTION, ask_split, ok, oov3
from tests.test_disputer_daemon import kb_home  # noqa: F401  (a fixture)


@pytest.fixture
def chain(local_chain: LocalChain) -> LocalChain:
    ok("kb", "add", str(KB_DOCS))
    return local_chain


def ask_json_no_batch() -> str:
    return str(json.loads(ok("ask", QUESTION, "--no-assert", "--json"))["record_cid"])


def run(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def ask_batch() -> dict[str, object]:
    out: dict[str, object] = json.loads(ok("ask", QUESTION, "--batch", "--json"))
    return out


def assertions_of(chain: LocalChain, root: bytes) -> list[AssertionMade]:
    events = oov3(chain).events_between(chain.deployment.block_number, chain.w3.eth.block_number)
    return [e for e in events if isinstance(e, AssertionMade) and e.domain_id == root]


def test_batched_asks_are_asserted_once_settled_and_proven_on_chain(chain: LocalChain) -> None:
    block = chain.w3.eth.block_number
    asked = [ask_batch() for _ in range(3)]
    assert all(a["status"] == "queued" and a["assertion_id"] is None for a in asked)
    assert chain.w3.eth.block_number == block  # queued: nothing on chain yet
    assert json.loads(ok("batch", "status", "--json"))["queued"] == 3

    assert "batch #1: 3 records" in ok("batch", "flush")
    assert json.loads(ok("batch", "status", "--json"))["queued"] == 0
    with Ledger() as ledger:
        book = BatchBook(ledger.database)
        (batch,) = book.select()
        records = [ledger.get(int(str(a["id"]))) for a in asked]
    assert batch.status == "asserted" and batch.count == 3 and batch.root is not None
    assert [(r.status, r.batch_id, r.leaf_index) for r in records] == [("asserted", batch.id, i) for i in range(3)]

    # The manifest is pinned, lists the records in order, and its root is the assertion's domainId.
    store = LocalStore()
    manifest = decode_manifest(store.get(CID.parse(batch.manifest_cid or "")))
    assert [leaf.cid for leaf in manifest.leaves] == [r.cid for r in records]
    assert manifest.root == batch.root and manifest.asserter == records[0].asserter
    assert store.get(CID.parse(batch.rules_cid or "")) == rules_v2_bytes()
    (made,) = assertions_of(chain, bytes.fromhex(batch.root[2:]))
    assert "0x" + made.assertion_id.hex() == batch.assertion_id
    claim = parse_batch_claim(made.claim)
    assert (claim.manifest_cid, claim.root, claim.count) == (batch.manifest_cid, batch.root, 3)
    assert len(made.claim) <= 2048

    status = json.loads(ok("status", str(asked[1]["id"]), "--json"))
    assert status["batch"]["id"] == batch.id and status["batch"]["leaf_index"] == 1
    assert status["batch"]["root"] == batch.root
    assert f"leaf 1 of 3, root {batch.root}" in ok("status", str(asked[1]["id"]))

    verified = run("verify", str(batch.assertion_id))
    assert verified.exit_code == 0, verified.output
    assert "3/3 records passed, all checks passed" in verified.output
    in_batch = ok("verify", str(records[1].cid))  # the ledger knows its batch
    assert "PASS  proof" in in_batch and "leaf 1 of 3" in in_batch and "not attested yet" in in_batch
    outsider = ask_json_no_batch()
    refused = run("verify", str(outsider), "--batch", str(batch.manifest_cid))
    assert refused.exit_code == 1 and "is not listed in the manifest" in refused.output

    assert "waiting" in ok("settle", "--all")
    chain.advance(7300)
    assert "settled - attested (3 records)" in ok("settle", "--all")
    with Ledger() as ledger:
        assert BatchBook(ledger.database).get(batch.id).outcome == "attested"
        assert [(ledger.get(r.id).status, ledger.get(r.id).outcome) for r in records] == [("settled", "attested")] * 3
    registry = chain.w3.eth.contract(address=chain.deployment.registry, abi=shipped("AttestationRegistry").abi)
    tree, root = manifest.tree_of(), bytes.fromhex(batch.root[2:])
    for index, digest in enumerate(manifest.digests()):
        assert registry.functions.isAttestedInBatch(digest, root, tree.proof(index)).call() is True
    assert registry.functions.isAttestedInBatch(manifest.digests()[0], root, tree.proof(1)).call() is False
    assert f"batch #{batch.id}: already settled" in ok("settle", str(asked[2]["id"]))
    proven = ok("verify", str(records[2].cid), "--batch", str(batch.assertion_id))
    assert "isAttestedInBatch is true" in proven and "PASS  claim" in proven
    exported = [json.loads(line) for line in ok("export", "--format", "jsonl").splitlines()]
    assert exported[3]["batch_root"] is None and exported[3]["leaf_index"] is None  # the record outside
    assert [(e["batch_root"], e["leaf_index"], e["assertion_id"]) for e in exported[:3]] == [
        (batch.root, i, batch.assertion_id) for i in range(3)
    ]


def test_a_declined_answer_is_never_queued(chain: LocalChain) -> None:
    out, warned = ask_split("xyzzy qwerty plugh", "--batch")
    assert out["status"] == "pinned" and out["not_asserted"] == "retrieval found no passage for the question"
    assert "not asserted" in warned
    assert json.loads(ok("batch", "status", "--json"))["queued"] == 0


def test_batch_run_flushes_at_max_records(chain: LocalChain) -> None:
    ask_batch()
    assert "0 batches asserted" in ok("batch", "run", "--max-records", "2", "--rounds", "1", "--poll", "0.01")
    ask_batch()
    assert "1 batch asserted" in ok("batch", "run", "--max-records", "2", "--rounds", "1", "--poll", "0.01")


CRASH_POINTS = (
    "batched", "batch-pinned", "approve-signed", "approve-sent", "assert-signed", "assert-sent", "assert-mined",
    "batch-asserted",
)  # fmt: skip


@pytest.mark.parametrize("crash_at", CRASH_POINTS)
def test_a_crash_at_any_batch_step_resumes_to_exactly_one_assertion(chain: LocalChain, crash_at: str) -> None:
    asked = [ask_batch() for _ in range(2)]
    crashed = subprocess.run(
        [sys.executable, "-m", "attest", "batch", "flush"],
        env={**os.environ, CRASH_ENV: crash_at},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert crashed.returncode == 137, crashed.stderr
    ok("resume")
    assert "Nothing to resume" in ok("resume")  # a second resume finds nothing left to do
    with Ledger() as ledger:
        book = BatchBook(ledger.database)
        (batch,) = book.select()
        assert batch.status == "asserted" and batch.root is not None
        assert [ledger.get(int(str(a["id"]))).status for a in asked] == ["asserted", "asserted"]
    assert len(assertions_of(chain, bytes.fromhex(batch.root[2:]))) == 1
    assert "Nothing queued" in ok("batch", "flush")  # a record is in exactly one batch


def test_a_batch_with_a_wrong_answer_is_disputed_naming_the_record_and_rejected(
    kb_home: LocalChain,  # noqa: F811  (the fixture imported above)
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The disputer on the devnet: the batch claim is recognised, every record judged (the fake model grades
    each 0.05), the batch disputed with the weakest record named, the mock oracle says 0, the batch Rejected."""
    from attest.flow.ask import AskRequest, ask
    from attest.flow.batch import flush, settle_batches
    from disputer.config import load_attest_config
    from tests.test_disputer_daemon import QUERY, WRONG, Env, step, verdict

    config = load_attest_config()
    asked = [ask(AskRequest(QUERY, answer=WRONG, batch=True), config=config) for _ in range(2)]
    assert [a.attestation.status for a in asked] == ["queued", "queued"]
    (outcome,) = flush(config=config)
    assertion_id = bytes.fromhex(str(outcome.batch.assertion_id)[2:])
    with verdict(0.05) as fake:
        env = Env(kb_home, connect("local"), fake, monkeypatch)
        with env.store() as store:
            daemon = env.daemon(store)
            report = step(daemon)
            assert report.decisions == {assertion_id: "dispute"}
            decision = store.decision(assertion_id)
            assert decision is not None and decision.checks["batch"]["root"] == outcome.batch.root
            first = asked[0].attestation.cid
            assert decision.checks["weakest"] == {"leaf_index": 0, "record": first}
            step(daemon)  # pushes 0 to the mock oracle, then settles
        assert len(fake.requests) == 2  # each record judged once
    settled = env.ctx.oov3.get_assertion(assertion_id)
    assert settled.settled and settled.settlement_resolution is False
    (closed,) = settle_batches(config=config)
    assert closed.batch.outcome == "rejected"
    with Ledger() as ledger:
        assert {ledger.get(a.attestation.id).outcome for a in asked} == {"rejected"}
