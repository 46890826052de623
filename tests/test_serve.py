"""`attest serve` driven by the real `openai` SDK (sync, async, streaming) over real HTTP: every answer's record is
signed, pinned and in the ledger before the response, and carries its attestation; bad input gets the right status
in the OpenAI error shape and writes nothing half-way."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest
import requests
from openai import AsyncOpenAI, OpenAI

from attest.config import Config, load_config
from attest.errors import ConfigError
from attest.kb import KnowledgeBase
from attest.ledger import Attestation, Ledger
from attest.serve.keys import KeyBook
from tests.support.serve import serving
from tests.test_ask import KB_DOCS, QUESTION, ok

USER = [{"role": "user", "content": QUESTION}]
TEN_MB = "x" * 10_000_000


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


def sdk(url: str, key: str = "unused-on-loopback") -> OpenAI:
    return OpenAI(base_url=url + "/v1", api_key=key, max_retries=0)


def row_of(attestation: dict[str, object]) -> tuple[str | None, str, str, str, str]:
    with Ledger() as ledger:
        row = ledger.get(int(str(attestation["id"])))
    return row.cid, row.digest, row.status, row.query, str(json.loads(row.record)["answer"])


def error_of(response: requests.Response) -> dict[str, object]:
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"message", "type", "param", "code"}, body
    error: dict[str, object] = body["error"]
    return error


def test_chat_completion_is_answered_with_its_record_in_the_ledger(base_url: str) -> None:
    raw = sdk(base_url).chat.completions.with_raw_response.create(model="extractive", messages=USER)
    reply = raw.parse()
    answer = reply.choices[0].message.content or ""
    assert "trim" in answer.lower() and reply.choices[0].finish_reason == "stop" and reply.model == "extractive"
    # The extractive model reports no usage: characters / 4 of the query with its passages, and of the answer.
    assert reply.usage is not None and reply.usage.completion_tokens == -(-len(answer) // 4)
    assert reply.usage.prompt_tokens > len(QUESTION) // 4
    assert reply.usage.total_tokens == reply.usage.prompt_tokens + reply.usage.completion_tokens
    attestation = (reply.model_extra or {})["attestation"]
    assert raw.headers["x-attest-record"] == attestation["record_cid"]
    assert row_of(attestation) == (attestation["record_cid"], attestation["digest"], "pinned", QUESTION, answer)
    assert attestation["verify"] == f"attest verify {attestation['record_cid']}"
    assert (attestation["mode"], attestation["assertion_id"], attestation["batch_id"]) == ("none", None, None)
    verified = ok("verify", str(attestation["record_cid"]))  # anyone's check of the record behind the answer
    assert "signature" in verified


def test_async_client_and_the_last_user_message_is_the_query(base_url: str) -> None:
    async def both() -> list[openai.types.chat.ChatCompletion]:
        client = AsyncOpenAI(base_url=base_url + "/v1", api_key="k", max_retries=0)
        history = [
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": "What colour is the lens?"},
            {"role": "assistant", "content": "..."},
            {"role": "user", "content": [{"type": "text", "text": QUESTION}]},
        ]
        return await asyncio.gather(
            client.chat.completions.create(model="extractive", messages=USER),  # type: ignore[arg-type]
            client.chat.completions.create(model="extractive", messages=history),  # type: ignore[arg-type]
        )

    first, second = asyncio.run(both())
    ids = {(r.model_extra or {})["attestation"]["id"] for r in (first, second)}
    assert len(ids) == 2 and first.choices[0].message.content == second.choices[0].message.content
    assert row_of((second.model_extra or {})["attestation"])[3] == QUESTION


def test_streamed_answer_is_the_record_and_the_last_chunk_carries_the_attestation(base_url: str) -> None:
    chunks = list(sdk(base_url).chat.completions.create(model="extractive", messages=USER, stream=True))
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks)
    last = chunks[-1]
    assert last.choices[0].finish_reason == "stop" and len(chunks) > 3
    attestation = (last.model_extra or {})["attestation"]
    assert row_of(attestation)[4] == text and last.usage is not None and last.usage.completion_tokens > 0
    body = {"model": "extractive", "messages": USER, "stream": True}
    with requests.post(base_url + "/v1/chat/completions", json=body, stream=True, timeout=30) as response:
        lines = [line for line in response.iter_lines(decode_unicode=True) if line]
    assert response.headers["content-type"].startswith("text/event-stream")
    assert lines[-1] == "data: [DONE]" and all(line.startswith("data: ") for line in lines)


def test_a_client_that_leaves_mid_stream_leaves_the_record_complete(base_url: str) -> None:
    # The record is made whole before the first byte is streamed, so leaving cannot cut it short.
    body = {"model": "extractive", "messages": USER, "stream": True}
    with requests.post(base_url + "/v1/chat/completions", json=body, stream=True, timeout=30) as response:
        cid = response.headers["x-attest-record"]
        first = next(response.iter_lines(decode_unicode=True))
    assert first.startswith("data: ")
    with Ledger() as ledger:
        (row,) = [a for a in ledger.select() if a.cid == cid]
    assert row.status == "pinned" and json.loads(row.record)["query"] == QUESTION
    ok("verify", cid)


def test_models_health_and_metrics(base_url: str) -> None:
    assert [m.id for m in sdk(base_url).models.list()] == ["extractive"]
    assert requests.get(base_url + "/healthz").json() == {"status": "ok", "assert": "none"}
    sdk(base_url).chat.completions.create(model="extractive", messages=USER)
    metrics = requests.get(base_url + "/metrics").text
    assert 'attest_serve_records_total{mode="none"} 1.0' in metrics
    assert 'attest_serve_requests_total{route="/v1/chat/completions",status="200"} 1.0' in metrics
    assert "attest_serve_request_seconds_bucket" in metrics


def test_an_answer_made_elsewhere_is_attested_with_the_passages_it_names(base_url: str) -> None:
    with KnowledgeBase() as kb:
        (hit, *_) = kb.search(QUESTION, k=1)
    body = {"query": QUESTION, "answer": "Every four hours [1].", "model": "my-model",
            "context": [f"{hit.doc_cid}#{hit.chunk_index}"]}  # fmt: skip
    made = requests.post(base_url + "/v1/attestations", json=body)
    assert made.status_code == 201, made.text
    attestation = made.json()
    with Ledger() as ledger:
        record = json.loads(ledger.get(attestation["id"]).record)
    assert record["answer"] == "Every four hours [1]." and record["model"]["provider"] == "external"
    assert [(c["doc_cid"], c["chunk_index"]) for c in record["context"]] == [(hit.doc_cid, hit.chunk_index)]
    status = requests.get(base_url + f"/v1/attestations/{attestation['id']}").json()
    assert (status["record_cid"], status["status"]) == (attestation["record_cid"], "pinned")
    assert requests.get(base_url + f"/v1/attestations/{attestation['record_cid']}").json()["id"] == attestation["id"]
    missing = requests.get(base_url + "/v1/attestations/999")
    assert missing.status_code == 404 and error_of(missing)["code"] == "attestation_not_found"
    unknown = requests.post(base_url + "/v1/attestations", json={**body, "context": [f"{hit.doc_cid}#9999"]})
    assert unknown.status_code == 400 and error_of(unknown)["param"] == "context"


def test_bad_input_gets_the_right_status_in_the_openai_shape_and_writes_nothing(kb: str) -> None:
    with serving(config("none", max_body_bytes=1_000_000)) as url:
        chat = url + "/v1/chat/completions"
        cases = [
            (requests.post(chat, data=b"{not json", headers={"content-type": "application/json"}), 400, "invalid_json"),
            (requests.post(chat, json=[1, 2]), 400, "invalid_json"),
            (requests.post(chat, json={"model": "extractive", "messages": []}), 400, "invalid_value"),
            (requests.post(chat, json={"model": "extractive", "messages": [{"role": "user", "content": "  "}]}), 400,
             "invalid_value"),
            (requests.post(chat, json={"model": "extractive", "messages": [{"role": "system", "content": "x"}]}), 400,
             "invalid_value"),
            (requests.post(chat, data=b'{"messages": [{"role": "user", "content": "\\ud800"}]}'), 400, "invalid_value"),
            (requests.post(chat, json={"model": "gpt-nothing", "messages": USER}), 404, "model_not_found"),
            (requests.post(chat, json={"model": "extractive", "messages": [{"role": "user", "content": TEN_MB}]}), 413,
             "request_too_large"),
            (requests.post(chat, data=iter([b'{"messages": "', b"x" * 2_000_000, b'"}'])), 413, "request_too_large"),
            (requests.get(url + "/v1/nothing"), 404, "not_found"),
            (requests.get(chat), 405, "method_not_allowed"),
        ]  # fmt: skip
        for response, status, code in cases:
            assert (response.status_code, error_of(response)["code"]) == (status, code), response.text
        with pytest.raises(openai.NotFoundError) as raised:
            sdk(url).chat.completions.create(model="gpt-nothing", messages=USER)  # type: ignore[arg-type]
        assert raised.value.code == "model_not_found"
    assert pinned() == []  # no bad request wrote a record


def test_an_empty_knowledge_base_is_the_servers_problem(attest_home: str) -> None:
    with serving(config("none")) as url:
        response = requests.post(url + "/v1/chat/completions", json={"model": "extractive", "messages": USER})
    assert response.status_code == 503 and error_of(response)["type"] == "server_error"
    assert "attest kb add" in str(error_of(response)["message"])


def test_a_request_over_the_time_limit_is_a_504(kb: str) -> None:
    with serving(config("none", timeout_s=0.001)) as url:
        response = requests.post(url + "/v1/chat/completions", json={"model": "extractive", "messages": USER})
        assert response.status_code == 504 and error_of(response)["code"] == "timeout"
        # The ask goes on in its thread and lands whole: the record is complete in the ledger, only unanswered.
        deadline = time.monotonic() + 30
        while [a.status for a in pinned()] != ["pinned"] and time.monotonic() < deadline:
            time.sleep(0.05)
    (row,) = pinned()
    assert row.status == "pinned" and row.cid is not None and json.loads(row.record)["query"] == QUESTION


def pinned() -> list[Attestation]:
    with Ledger() as ledger:
        return ledger.select()


def test_keys_rate_limit_and_daily_quota(kb: str) -> None:
    with KeyBook() as book:
        (_, token), (revoked, old) = book.create("app"), book.create("old")
        book.revoke(revoked.id)
    with serving(config("none", rate_per_s=0.01, burst=3, daily_records=1), require_keys=True) as url:
        chat = url + "/v1/chat/completions"
        body = {"model": "extractive", "messages": USER}
        for headers in ({}, {"authorization": f"Bearer {old}"}, {"authorization": "Bearer sk-attest-guess"}):
            refused = requests.post(chat, json=body, headers=headers)
            assert refused.status_code == 401 and error_of(refused)["code"] == "invalid_api_key"
        with pytest.raises(openai.AuthenticationError):
            sdk(url, old).models.list()
        # A request that makes no record gives its reservation back.
        failed = requests.post(url + "/v1/attestations", json={"query": QUESTION, "answer": "x", "context": ["b#9"]},
                               headers={"authorization": f"Bearer {token}"})  # fmt: skip
        assert failed.status_code == 400
        with KeyBook() as book:
            assert book.records_today(1) == 0
        assert sdk(url, token).chat.completions.create(model="extractive", messages=USER).choices  # type: ignore[arg-type]
        over_quota = requests.post(chat, json=body, headers={"authorization": f"Bearer {token}"})
        assert over_quota.status_code == 429 and error_of(over_quota)["code"] == "insufficient_quota"
        assert int(over_quota.headers["retry-after"]) >= 1
        too_fast = requests.get(url + "/v1/models", headers={"authorization": f"Bearer {token}"})
        assert too_fast.status_code == 429 and error_of(too_fast)["code"] == "rate_limit_exceeded"
        assert 90 <= int(too_fast.headers["retry-after"]) <= 100  # a token every 100 s
        assert requests.get(url + "/metrics").status_code == 401
    assert len(pinned()) == 1
    with KeyBook() as book:
        assert [k.revoked_at is None for k in book.list()] == [True, False]


def test_cors_is_off_unless_origins_are_configured(kb: str) -> None:
    preflight = {"origin": "https://app.example", "access-control-request-method": "POST"}
    with serving(config("none")) as url:
        response = requests.options(url + "/v1/chat/completions", headers=preflight)
        assert "access-control-allow-origin" not in response.headers
    with serving(config("none", cors_origins=["https://app.example"])) as url:
        response = requests.options(url + "/v1/chat/completions", headers=preflight)
        assert response.headers["access-control-allow-origin"] == "https://app.example"


def test_a_bug_is_a_500_that_tells_the_client_nothing_more(kb: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # No real component fails this way on purpose: the flow is replaced by one that crashes, as a bug would.
    def crash(*args: object, **kwargs: object) -> None:
        raise RuntimeError("internal detail /srv/secret-path")

    # Without an assertion per answer the server answers through the Attester (with one, through `ask`).
    monkeypatch.setattr("attest.serve.service.Attester.attest", crash)
    with serving(config("none")) as url:
        response = requests.post(url + "/v1/chat/completions", json={"model": "extractive", "messages": USER})
        after = requests.get(url + "/healthz")
    assert response.status_code == 500 and error_of(response)["code"] == "internal_error"
    assert "secret-path" not in response.text and after.status_code == 200


def test_the_serve_table_is_read_from_the_config_file(attest_home: str) -> None:
    path = Path(attest_home) / "config.toml"
    path.write_text('[serve]\nassert = "each"\ncors_origins = ["https://app.example"]\ndaily_records = 5\n')
    settings = load_config().serve
    assert (settings.assert_mode, settings.cors_origins, settings.daily_records) == (
        "each",
        ("https://app.example",),
        5,
    )
    assert 'assert = "each"' in ok("config", "show")
    path.write_text('[serve]\nassert = "sometimes"\n')
    with pytest.raises(ConfigError, match=r"serve\.assert"):
        load_config()
