"""`attest serve` asserting on the devnet (real UMA contracts): one assertion per answer (`assert = "each"`), or
Merkle batches flushed by the server (`assert = "batch"`); the record behind every answer verifies."""

from __future__ import annotations

import time

import requests
from openai import OpenAI

from attest.config import Config
from tests.conftest import LocalChain
from tests.support.serve import serving
from tests.test_ask import KB_DOCS, QUESTION, ok, run

USER = [{"role": "user", "content": QUESTION}]


def answer(url: str) -> dict[str, object]:
    client = OpenAI(base_url=url + "/v1", api_key="loopback", max_retries=0)
    reply = client.chat.completions.create(model="extractive", messages=USER)  # type: ignore[arg-type]
    attestation: dict[str, object] = (reply.model_extra or {})["attestation"]
    return attestation


def test_each_answer_is_asserted_before_it_is_returned(local_chain: LocalChain) -> None:
    ok("kb", "add", str(KB_DOCS))
    with serving(Config.model_validate({"serve": {"assert": "each"}})) as url:
        made = answer(url)
        status = requests.get(url + f"/v1/attestations/{made['id']}", timeout=30).json()
    assert made["status"] == "asserted" and str(made["assertion_id"]).startswith("0x")
    assert made["verify"] == f"attest verify {made['assertion_id']}"
    assert status["assertion_id"] == made["assertion_id"] and status["chain"]["settled"] is False
    verified = run("verify", str(made["assertion_id"]))
    assert verified.exit_code == 0, verified.output


def test_batch_answers_are_queued_then_asserted_in_one_batch_by_the_server(local_chain: LocalChain) -> None:
    ok("kb", "add", str(KB_DOCS))
    config = Config.model_validate({"serve": {"assert": "batch"}, "batch": {"max_records": 2}})
    with serving(config, flush_poll_s=0.1) as url:
        first, second = answer(url), answer(url)
        assert (first["status"], first["assertion_id"]) == ("queued", None)
        deadline = time.monotonic() + 60
        while (status := requests.get(url + f"/v1/attestations/{second['id']}", timeout=30).json())["status"] != (
            "asserted"
        ):
            assert time.monotonic() < deadline, status
            time.sleep(0.2)
        batch = status["batch"]
        assert (batch["count"], batch["status"], status["batch"]["leaf_index"]) == (2, "asserted", 1)
        assert requests.get(url + f"/v1/attestations/{first['id']}", timeout=30).json()["batch"]["id"] == batch["id"]
    verified = run("verify", str(first["record_cid"]), "--batch", str(batch["assertion_id"]))
    assert verified.exit_code == 0, verified.output
