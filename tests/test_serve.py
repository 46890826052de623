"""`attest serve` driven by the real `openai` SDK over real HTTP: every answer's record is signed, pinned and in
the ledger before the response, and carries its attestation."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from openai import OpenAI

from attest.config import Config
from attest.ledger import Ledger
from tests.support.serve import serving
from tests.test_ask import KB_DOCS, QUESTION, ok


def config(mode: str = "none", **serve: object) -> Config:
    return Config.model_validate({"serve": {"assert": mode, **serve}})


@pytest.fixture
def kb(attest_home: str) -> str:
    ok("kb", "add", str(KB_DOCS))
    return attest_home


@pytest.fixture
def base_url(kb: str) -> Iterator[str]:
    with serving(config("none")) as url:
        yield url


def test_chat_completion_is_answered_with_its_record_in_the_ledger(base_url: str) -> None:
    client = OpenAI(base_url=base_url + "/v1", api_key="unused-on-loopback")
    raw = client.chat.completions.with_raw_response.create(
        model="extractive", messages=[{"role": "user", "content": QUESTION}]
    )
    reply = raw.parse()
    answer = reply.choices[0].message.content or ""
    assert "trim" in answer.lower() and reply.choices[0].finish_reason == "stop"
    assert reply.usage is not None and reply.usage.completion_tokens > 0
    attestation = (reply.model_extra or {})["attestation"]
    assert raw.headers["x-attest-record"] == attestation["record_cid"]
    with Ledger() as ledger:
        row = ledger.get(attestation["id"])
    assert (row.cid, row.digest, row.status) == (attestation["record_cid"], attestation["digest"], "pinned")
    assert row.query == QUESTION and json.loads(row.record)["answer"] == answer
    assert attestation["verify"] == f"attest verify {row.cid}"
