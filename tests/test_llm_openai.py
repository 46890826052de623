"""The OpenAI provider: the real `openai` SDK against a local fake of the chat completions endpoint. What is sent,
what is captured, how each failure maps to our errors, bounded retries, and the key kept out of every message."""

from __future__ import annotations

import json
import logging
import re
import secrets
import time
import traceback
from collections.abc import Iterator

import openai
import pytest

from attest.errors import MissingKey, ModelError, ProviderUnavailable, QueryTooLong, RateLimited, RejectedKey
from attest.llm.base import GenerationParams, RetryPolicy, SentParams, Usage, model_metadata_for_record
from attest.llm.openai_provider import OpenAIProvider
from attest.prompts import get
from attest.record import validate_record
from tests.support.llm_fakes import CHUNKS, OPENAI_OK, FakeModelServer, full_record
from tests.support.ports import free_port

QUERY = "What happens to the base fee?"
FAST = RetryPolicy(attempts=3, backoff_s=0.01, max_backoff_s=0.02, timeout_s=5)
PARAMS = GenerationParams("gpt-test", temperature=0.2, top_p=0.9, max_tokens=300, seed=42)
TEMPLATE = get("rag-answer@1")


@pytest.fixture(autouse=True)
def no_ambient_openai_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "OPENAI_ORG_ID", "OPENAI_PROJECT_ID", "OPENAI_ADMIN_KEY"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def key() -> str:
    return f"sk-test-{secrets.token_hex(20)}"


@pytest.fixture
def fake() -> Iterator[FakeModelServer]:
    with FakeModelServer("openai") as server:
        yield server


def provider(server: FakeModelServer, key: str, retry: RetryPolicy = FAST) -> OpenAIProvider:
    return OpenAIProvider(api_key=key, base_url=server.base_url, retry=retry)


def everything_said_about(err: BaseException) -> str:
    """str, repr and the formatted traceback of the error and of everything chained to it."""
    seen: list[str] = []
    current: BaseException | None = err
    while current is not None:
        seen += [str(current), repr(current), "".join(traceback.format_exception(current))]
        current = current.__cause__ or current.__context__
    return "\n".join(seen)


def test_sends_model_sampling_params_and_the_fenced_context(fake: FakeModelServer, key: str) -> None:
    provider(fake, key).answer(QUERY, CHUNKS, TEMPLATE, PARAMS)
    (request,) = fake.requests
    body = fake.last_body()
    assert request.path == "/v1/chat/completions" and request.headers["authorization"] == f"Bearer {key}"
    assert body["model"] == "gpt-test"
    assert (body["temperature"], body["top_p"], body["max_tokens"], body["seed"]) == (0.2, 0.9, 300, 42)
    assert "max_completion_tokens" not in body  # a compatible server is sent max_tokens
    system, user = body["messages"]
    assert (system["role"], user["role"]) == ("system", "user")
    rendered = TEMPLATE.render(query=QUERY, chunks=CHUNKS)
    assert (system["content"], user["content"]) == (rendered.system, rendered.user)
    for n, chunk in enumerate(CHUNKS, start=1):
        opening = f"<<<BEGIN UNTRUSTED PASSAGE [{n}] {rendered.fence}>>>"
        closing = f"<<<END UNTRUSTED PASSAGE [{n}] {rendered.fence}>>>"
        assert user["content"].index(opening) < user["content"].index(chunk.text) < user["content"].index(closing)
    assert f"<<<BEGIN UNTRUSTED QUESTION {rendered.fence}>>>\n{QUERY}\n" in user["content"]
    assert body.get("stream") in (None, False)


def test_parameters_left_unset_are_not_sent_and_recorded_as_null(fake: FakeModelServer, key: str) -> None:
    answer = provider(fake, key).answer(QUERY, CHUNKS, TEMPLATE, GenerationParams("gpt-test"))
    body = fake.last_body()
    assert not {"temperature", "top_p", "max_tokens", "max_completion_tokens", "seed"} & set(body)
    assert answer.metadata.params == SentParams(None, None, None, None)


def test_max_completion_tokens_field_is_sent_instead_when_chosen(fake: FakeModelServer, key: str) -> None:
    chosen = OpenAIProvider(api_key=key, base_url=fake.base_url, retry=FAST, max_tokens_field="max_completion_tokens")
    chosen.answer(QUERY, CHUNKS, TEMPLATE, PARAMS)
    assert fake.last_body()["max_completion_tokens"] == 300 and "max_tokens" not in fake.last_body()
    assert OpenAIProvider(api_key=key).max_tokens_field == "max_completion_tokens"  # the official API's default


def test_every_returned_field_is_captured(fake: FakeModelServer, key: str) -> None:
    answer = provider(fake, key).answer(QUERY, CHUNKS, TEMPLATE, PARAMS)
    meta = answer.metadata
    assert answer.text == OPENAI_OK["choices"][0]["message"]["content"]
    assert answer.citations == (1, 2)
    assert meta.provider == "openai-compatible" and meta.endpoint == fake.base_url
    assert meta.requested_model == "gpt-test" and meta.returned_model == "gpt-fake-2025-01-01"
    assert meta.system_fingerprint == "fp_fake_42" and meta.response_id == "chatcmpl-fake-0001"
    assert meta.usage == Usage(input_tokens=321, output_tokens=17)
    assert meta.finish_reason == "stop"
    assert meta.params == SentParams(temperature=0.2, top_p=0.9, max_tokens=300, seed=42)
    assert meta.sdk is not None and (meta.sdk.name, meta.sdk.version) == ("openai", openai.__version__)
    assert (meta.template, meta.template_sha256) == ("rag-answer@1", TEMPLATE.sha256)
    assert meta.attempts == 1 and 0 < meta.latency_ms < 5_000
    assert meta.license is None


def test_metadata_maps_onto_a_record_that_validates(fake: FakeModelServer, key: str) -> None:
    answer = provider(fake, key).answer(QUERY, CHUNKS, TEMPLATE, PARAMS)
    record = validate_record(full_record(QUERY, CHUNKS, answer))
    assert record.model.returned_model == "gpt-fake-2025-01-01" and record.model.response_id == "chatcmpl-fake-0001"
    assert record.model.params.seed == 42 and record.model.params.temperature == 0.2
    assert record.model.usage is not None and record.model.usage.input_tokens == 321
    assert record.model.sdk is not None and record.model.sdk.name == "openai"
    assert record.prompt is not None and record.prompt.template_sha256 == TEMPLATE.sha256
    assert model_metadata_for_record(answer)["model"] == record.model_dump(mode="json", by_alias=True)["model"]
    assert key not in json.dumps(full_record(QUERY, CHUNKS, answer))


def test_an_official_endpoint_without_a_key_is_missing_key_naming_the_variable() -> None:
    with pytest.raises(MissingKey, match="OPENAI_API_KEY"):
        OpenAIProvider()
    with pytest.raises(MissingKey, match="OPENAI_API_KEY"):
        OpenAIProvider(api_key="")


def test_a_compatible_server_needs_no_key_and_gets_a_placeholder(fake: FakeModelServer) -> None:
    OpenAIProvider(base_url=fake.base_url, retry=FAST).answer(QUERY, CHUNKS, TEMPLATE, PARAMS)
    assert fake.requests[0].headers["authorization"] == "Bearer no-key"


def test_the_key_comes_from_the_environment(fake: FakeModelServer, key: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", key)
    OpenAIProvider(base_url=fake.base_url, retry=FAST).answer(QUERY, CHUNKS, TEMPLATE, PARAMS)
    assert fake.requests[0].headers["authorization"] == f"Bearer {key}"


@pytest.mark.parametrize(("statuses", "attempts"), [((429,), 2), ((429, 429), 3), ((500, 503), 3), ((502,), 2)])
def test_transient_failures_are_retried_until_an_answer(
    key: str, statuses: tuple[int, ...], attempts: int, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="attest.llm")
    with FakeModelServer("openai", statuses=statuses) as fake:
        answer = provider(fake, key).answer(QUERY, CHUNKS, TEMPLATE, PARAMS)
    assert len(fake.requests) == attempts and answer.metadata.attempts == attempts
    retries = [r.getMessage() for r in caplog.records if "retrying in" in r.getMessage()]
    assert len(retries) == attempts - 1 and f"HTTP {statuses[0]}" in retries[0]
    assert answer.metadata.response_id == "chatcmpl-fake-0001"


@pytest.mark.parametrize(
    ("status", "error"),
    [(429, RateLimited), (500, ProviderUnavailable), (503, ProviderUnavailable), (408, ProviderUnavailable)],
)
def test_persistent_transient_failures_stop_after_the_bounded_attempts(
    key: str, status: int, error: type[ModelError]
) -> None:
    with FakeModelServer("openai", statuses=[status] * 10) as fake:
        started = time.monotonic()
        with pytest.raises(error, match="after 3 attempts") as caught:
            provider(fake, key).answer(QUERY, CHUNKS, TEMPLATE, PARAMS)
        elapsed = time.monotonic() - started
    assert len(fake.requests) == 3
    assert elapsed < 2  # two waits of at most max_backoff_s (0.02 s) plus three local round trips
    assert key not in everything_said_about(caught.value)


@pytest.mark.parametrize(
    ("status", "error", "says"),
    [
        (401, RejectedKey, "OPENAI_API_KEY"),
        (403, RejectedKey, "OPENAI_API_KEY"),
        (404, ModelError, "does not know model 'gpt-test'"),
        (400, ModelError, "refused the request (HTTP 400"),
        (422, ModelError, "refused the request (HTTP 422"),
    ],
)
def test_client_errors_are_not_retried_and_map_to_one_clear_error(
    key: str, status: int, error: type[ModelError], says: str
) -> None:
    with FakeModelServer("openai", statuses=[status]) as fake, pytest.raises(error, match=re.escape(says)) as caught:
        provider(fake, key).answer(QUERY, CHUNKS, TEMPLATE, PARAMS)
    assert type(caught.value) is error
    assert len(fake.requests) == 1
    # The fake quotes the key it was sent in every error body; none of it may reach our error.
    assert key not in everything_said_about(caught.value)


def test_server_text_is_shown_with_the_key_scrubbed(key: str) -> None:
    with FakeModelServer("openai", statuses=[400]) as fake, pytest.raises(ModelError) as caught:
        provider(fake, key).answer(QUERY, CHUNKS, TEMPLATE, PARAMS)
    assert "fake failure 400 ***" in str(caught.value)


def test_context_length_exceeded_is_query_too_long(key: str) -> None:
    with (
        FakeModelServer("openai", statuses=[400], error_code="context_length_exceeded") as fake,
        pytest.raises(QueryTooLong, match="retrieve fewer passages"),
    ):
        provider(fake, key).answer(QUERY, CHUNKS, TEMPLATE, PARAMS)
    assert len(fake.requests) == 1


def test_a_slow_answer_times_out_and_the_retry_gets_through(key: str) -> None:
    patient = RetryPolicy(attempts=3, backoff_s=0.01, max_backoff_s=0.02, timeout_s=0.3)
    with FakeModelServer("openai", delays=[2.0]) as fake:
        answer = provider(fake, key, patient).answer(QUERY, CHUNKS, TEMPLATE, PARAMS)
    assert answer.metadata.attempts == 2 and len(fake.requests) == 2
    assert answer.metadata.latency_ms < 300  # the answering request only, not the one that timed out


def test_a_server_that_never_answers_in_time_is_unavailable(key: str) -> None:
    patient = RetryPolicy(attempts=2, backoff_s=0.01, max_backoff_s=0.02, timeout_s=0.2)
    with FakeModelServer("openai", delays=[2.0, 2.0]) as fake:
        started = time.monotonic()
        with pytest.raises(ProviderUnavailable, match=r"no answer within 0.2s\) after 2 attempts"):
            provider(fake, key, patient).answer(QUERY, CHUNKS, TEMPLATE, PARAMS)
        assert time.monotonic() - started < 1.5
    assert len(fake.requests) == 2


def test_nothing_listening_is_unavailable_after_the_bounded_attempts(key: str) -> None:
    dead = f"http://127.0.0.1:{free_port()}/v1"
    with pytest.raises(ProviderUnavailable, match=r"cannot connect to .* after 3 attempts") as caught:
        OpenAIProvider(api_key=key, base_url=dead, retry=FAST).answer(QUERY, CHUNKS, TEMPLATE, PARAMS)
    assert key not in everything_said_about(caught.value)


def test_a_huge_retry_after_is_capped_by_our_backoff_ceiling(key: str) -> None:
    with FakeModelServer("openai", statuses=[429, 503], retry_after="3600") as fake:
        started = time.monotonic()
        answer = provider(fake, key).answer(QUERY, CHUNKS, TEMPLATE, PARAMS)
        assert time.monotonic() - started < 2
    assert answer.metadata.attempts == 3


@pytest.mark.parametrize(
    "body",
    [
        {
            **OPENAI_OK,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": None}, "finish_reason": "length"}],
        },
        {**OPENAI_OK, "choices": []},
        {**OPENAI_OK, "choices": "nonsense"},
    ],
)
def test_a_completion_without_answer_text_is_a_model_error(key: str, body: dict[str, object]) -> None:
    with FakeModelServer("openai", body=body) as fake, pytest.raises(ModelError, match=r"no answer text|cannot read"):
        provider(fake, key).answer(QUERY, CHUNKS, TEMPLATE, PARAMS)


def test_a_body_that_is_not_json_is_a_model_error(key: str) -> None:
    with (
        FakeModelServer("openai", raw_body=b"<html>gateway</html>") as fake,
        pytest.raises(ModelError, match="cannot read"),
    ):
        provider(fake, key).answer(QUERY, CHUNKS, TEMPLATE, PARAMS)


def test_missing_optional_fields_are_recorded_as_null(key: str) -> None:
    sparse = {k: v for k, v in OPENAI_OK.items() if k not in ("system_fingerprint", "usage")}
    with FakeModelServer("openai", body=sparse) as fake:
        answer = provider(fake, key).answer(QUERY, CHUNKS, TEMPLATE, PARAMS)
    assert answer.metadata.system_fingerprint is None and answer.metadata.usage is None
    assert validate_record(full_record(QUERY, CHUNKS, answer)).model.usage is None


def test_the_key_is_in_no_repr_and_no_log_line(
    fake: FakeModelServer, key: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    chosen = provider(fake, key)
    chosen.answer(QUERY, CHUNKS, TEMPLATE, PARAMS)
    with FakeModelServer("openai", statuses=[401]) as refusing, pytest.raises(RejectedKey):
        provider(refusing, key).answer(QUERY, CHUNKS, TEMPLATE, PARAMS)
    assert caplog.records, "the SDK logs requests at DEBUG; this test needs them"
    assert key not in caplog.text and key not in repr(chosen)
