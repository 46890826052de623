"""The disputer's evaluation of a batch assertion (rules v2): every record checked and judged; one wrong or
foreign record fails the batch and is named, with the weakest verdict as the batch's score."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from eth_account.signers.local import LocalAccount

from attest.batch.claim import build_batch_claim, rules_v2_cid
from attest.batch.manifest import build_manifest, manifest_bytes
from attest.chain.oov3 import AssertionMade
from attest.context import RetrievedChunk
from attest.ipfs.cid import CID
from attest.ipfs.local import LocalStore
from disputer.evaluate import Evaluator
from disputer.judge import Verdict
from tests.test_verify_batch import pinned_record

REGISTRY = "0x5FbDB2315678afecb367f032d93F642f64180aa3"
ZERO = "0x0000000000000000000000000000000000000000"


class WordJudge:
    """Scores 0 an answer to a query containing WRONG, 1 any other: a deterministic stand-in for the LLM."""

    label = "word-judge"

    def judge(self, query: str, chunks: Sequence[RetrievedChunk], answer: str) -> Verdict:
        score = 0.0 if "WRONG" in query else 1.0
        return Verdict(score, "word", (score,), self.label, None, None, None, 1.0, score)


def batch_assertion(store: LocalStore, asserter: LocalAccount, records: list[tuple[str, bytes]]) -> AssertionMade:
    manifest = build_manifest(records, asserter)
    cid = str(store.put(manifest_bytes(manifest)))
    claim = build_batch_claim(cid, manifest.root, manifest.count, asserter.address, rules_v2_cid())
    return AssertionMade(
        b"\x01" * 32, bytes.fromhex(manifest.root[2:]), claim, asserter.address, REGISTRY, ZERO,
        asserter.address, 0, ZERO, 0, b"\0" * 32, b"\0" * 32, 0, 1,
    )  # fmt: skip


def test_an_honest_batch_scores_its_weakest_record_and_a_wrong_one_is_named(
    tmp_path: Path, dev_keys: list[LocalAccount]
) -> None:
    store = LocalStore(tmp_path / "blocks")
    asserter = dev_keys[1]
    evaluator = Evaluator(WordJudge(), [store], registry=REGISTRY, timeout_s=5)
    honest = [pinned_record(store, asserter, f"question {i}") for i in range(5)]

    good = evaluator.evaluate(batch_assertion(store, asserter, honest))
    assert not good.failed and good.score == 1.0 and good.judge_calls == 5
    assert good.extra["failing"] == [] and good.extra["batch"]["count"] == 5

    wrong = pinned_record(store, asserter, "a WRONG answer")
    bad = evaluator.evaluate(batch_assertion(store, asserter, [*honest[:2], wrong, *honest[2:]]))
    assert bad.score == 0.0 and bad.extra["weakest"] == {"leaf_index": 2, "record": wrong[0]}


def test_a_record_signed_by_another_key_fails_the_batch_before_any_judging_of_it(
    tmp_path: Path, dev_keys: list[LocalAccount]
) -> None:
    store = LocalStore(tmp_path / "blocks")
    asserter = dev_keys[1]
    records = [pinned_record(store, asserter, f"question {i}") for i in range(3)]
    foreign = pinned_record(store, dev_keys[2], "signed elsewhere")
    evaluation = Evaluator(WordJudge(), [store], registry=REGISTRY, timeout_s=5).evaluate(
        batch_assertion(store, asserter, [*records, foreign])
    )
    assert evaluation.verdict is None and [c.name for c in evaluation.failed] == ["record 3"]
    assert foreign[0] in evaluation.failed[0].detail and "not the batch asserter" in evaluation.failed[0].detail
    assert evaluation.extra["failing"][0]["leaf_index"] == 3


def test_a_manifest_that_does_not_resolve_is_undecided_not_disputed(
    tmp_path: Path, dev_keys: list[LocalAccount]
) -> None:
    store = LocalStore(tmp_path / "blocks")
    asserter = dev_keys[1]
    made = batch_assertion(store, asserter, [pinned_record(store, asserter, "question")])
    evaluation = Evaluator(WordJudge(), [LocalStore(tmp_path / "empty")], registry=REGISTRY, timeout_s=0.5).evaluate(
        made
    )
    assert evaluation.unavailable is not None and not evaluation.failed and evaluation.verdict is None


def test_a_batch_that_cannot_be_judged_before_its_margin_is_not_judged_at_all(
    tmp_path: Path, dev_keys: list[LocalAccount]
) -> None:
    store = LocalStore(tmp_path / "blocks")
    asserter = dev_keys[1]
    made = batch_assertion(store, asserter, [pinned_record(store, asserter, f"question {i}") for i in range(20)])
    evaluator = Evaluator(WordJudge(), [store], registry=REGISTRY, timeout_s=5, batch_concurrency=4, record_judge_s=10)
    # 20 records, 4 at a time, 10 s each: 50 s of judging. 640 s left with a 600 s margin is too little.
    late = evaluator.evaluate(made, left_s=640, safety_margin_s=600)
    assert late.judge_calls == 0 and late.verdict is None and late.out_of_time is not None
    assert "20 records takes about 50s" in late.out_of_time and late.undecided_reason == late.out_of_time
    on_time = evaluator.evaluate(made, left_s=660, safety_margin_s=600)
    assert on_time.out_of_time is None and on_time.judge_calls == 20 and on_time.score == 1.0


def test_the_evidence_names_a_foreign_record_and_a_low_scored_one_and_is_the_same_bytes_each_time(
    tmp_path: Path, dev_keys: list[LocalAccount]
) -> None:
    import json

    from attest.batch.manifest import decode_manifest
    from disputer.evidence import EVIDENCE_SCHEMA, evidence_document

    store = LocalStore(tmp_path / "blocks")
    asserter = dev_keys[1]
    records = [pinned_record(store, asserter, f"question {i}") for i in range(2)]
    wrong = pinned_record(store, asserter, "a WRONG answer")
    foreign = pinned_record(store, dev_keys[2], "signed elsewhere")
    made = batch_assertion(store, asserter, [*records, wrong, foreign])
    checks = Evaluator(WordJudge(), [store], registry=REGISTRY, timeout_s=5).evaluate(made).as_dict()
    manifest = decode_manifest(store.get(CID.parse(checks["batch"]["manifest"])))
    cids = [leaf.cid for leaf in manifest.leaves]
    data = evidence_document(made.assertion_id, checks, cids, 0.5, "failed check record 3")
    assert data == evidence_document(made.assertion_id, checks, cids, 0.5, "failed check record 3")
    document = json.loads(data)
    assert document["schema"] == EVIDENCE_SCHEMA and document["batch"]["count"] == 4
    assert [(f["leaf_index"], f["record"], f["score"]) for f in document["failing"]] == [
        (2, wrong[0], 0.0), (3, foreign[0], None)
    ]  # fmt: skip
    assert "not the batch asserter" in document["failing"][1]["reason"]
