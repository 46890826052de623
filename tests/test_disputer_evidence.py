"""A batch dispute's evidence on the devnet: the disputer pins a document naming the failing record and
announces it once with the registry's Evidence event, however many steps and restarts follow."""

from __future__ import annotations

import json

import pytest

from attest.chain.artifacts import shipped
from attest.connect import connect
from attest.ipfs.cid import CID
from attest.ipfs.local import LocalStore
from disputer.evidence import EVIDENCE_SCHEMA
from tests.conftest import LocalChain
from tests.support.llm_fakes import FakeModelServer
from tests.test_disputer_daemon import kb_home  # noqa: F401  (a fixture)


def grades_wrong_low(prompt: str) -> tuple[str, float]:
    """The fake judge: 0.05 for the wrong answer, 0.95 for any other (no wait)."""
    from tests.test_disputer_daemon import WRONG

    score = 0.05 if WRONG in prompt else 0.95
    return json.dumps({"score": score, "rationale": f"graded {score}"}), 0.0


def test_a_batch_with_one_wrong_record_is_disputed_and_its_evidence_names_that_record_once(
    kb_home: LocalChain,  # noqa: F811  (the fixture imported above)
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from attest.flow.ask import AskRequest, ask
    from attest.flow.batch import flush
    from disputer.config import load_attest_config
    from tests.test_disputer_daemon import HONEST, QUERY, WRONG, Env, step

    config = load_attest_config()
    asked = [ask(AskRequest(QUERY, answer=a, batch=True), config=config) for a in (HONEST, WRONG, HONEST)]
    (outcome,) = flush(config=config)
    assertion_id = bytes.fromhex(str(outcome.batch.assertion_id)[2:])
    wrong_cid = asked[1].attestation.cid
    with FakeModelServer("openai", reply=grades_wrong_low) as fake:
        env = Env(kb_home, connect("local"), fake, monkeypatch)
        with env.store() as store:
            report = step(env.daemon(store))
            assert report.decisions == {assertion_id: "dispute"}
            assert [r.row.status for r in report.sent[assertion_id]] == ["mined", "mined"]  # dispute, evidence
            step(env.daemon(store))  # a restarted daemon: the evidence row is mined, nothing sent again
            kinds = [row.kind for row in store.txs_for(assertion_id)]
        assert kinds.count("evidence") == 1
    registry = env.ctx.w3.eth.contract(address=env.ctx.registry, abi=shipped("AttestationRegistry").abi)
    (event,) = registry.events.Evidence().get_logs(from_block=0)
    assert event["args"]["assertionId"] == assertion_id
    uri = event["args"]["uri"]
    assert uri.startswith("ipfs://")
    document = json.loads(LocalStore().get(CID.parse(uri.removeprefix("ipfs://"))))
    assert document["schema"] == EVIDENCE_SCHEMA and document["assertion_id"] == "0x" + assertion_id.hex()
    assert document["batch"] == {
        "manifest": f"ipfs://{outcome.batch.manifest_cid}", "root": outcome.batch.root, "count": 3,
    }  # fmt: skip
    (failing,) = document["failing"]
    assert failing["leaf_index"] == 1 and failing["record"] == wrong_cid and failing["score"] == 0.05
    assert "below the threshold" in failing["reason"] and WRONG not in failing["reason"]


def test_a_batch_that_cannot_be_judged_before_its_margin_is_skipped_unjudged(
    kb_home: LocalChain,  # noqa: F811  (the fixture imported above)
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from attest.flow.ask import AskRequest, ask
    from attest.flow.batch import flush
    from disputer.config import load_attest_config
    from tests.test_disputer_daemon import QUERY, WRONG, Env, step

    config = load_attest_config()
    for _ in range(2):
        ask(AskRequest(QUERY, answer=WRONG, batch=True), config=config)
    (outcome,) = flush(config=config)
    assertion_id = bytes.fromhex(str(outcome.batch.assertion_id)[2:])
    with FakeModelServer("openai", reply=grades_wrong_low) as fake:
        env = Env(kb_home, connect("local"), fake, monkeypatch)
        with env.store() as store:
            # Two records, one at a time, an hour each: 7,200 s of judging in a 7,200 s liveness. Not judged.
            report = step(env.daemon(store, record_judge_s=3600.0, concurrency=1))
            assert report.decisions == {assertion_id: "skip"} and not report.sent
            decision = store.decision(assertion_id)
            assert decision is not None and "not judged: judging its 2 records" in decision.reason
        assert fake.requests == []
