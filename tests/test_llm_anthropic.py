"""The Anthropic provider: the real `anthropic` SDK against a local fake of the messages endpoint. What is sent
(and what is refused before sending), what is captured, error mapping, bounded retries, and the key kept out."""

from __future__ import annotations

import logging
import re
import secrets
import time
import traceback
from collections.abc import Iterator

import anthropic
import pytest

from attest.errors import MissingKey, ModelError, ProviderUnavailable, QueryTooLong, RateLimited, RejectedKey
from attest.llm.anthropic_provider import DEFAULT_MAX_TOKENS, AnthropicProvider
from attest.llm.base import GenerationParams, RetryPolicy, SentParams, Usage
from attest.prompts import get
from attest.record import validate_record
from tests.support.llm_fakes import ANTHROPIC_OK, CHUNKS, FakeModelServer, full_record

QUERY = "What happens to the base fee?"
FAST = RetryPolicy(attempts=3, backoff_s=0.01, max_backoff_s=0.02, timeout_s=5)
PARAMS = GenerationParams("claude-test", max_tokens=400)
TEMPLATE = get("rag-answer@1")


@pytest.fixture(autouse=True)
def no_ambient_anthropic_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN", "ANTHROPIC_BASE_URL"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def key() -> str:
    return f"sk-ant-test-{secrets.token_hex(20)}"


@pytest.fixture
def fake() -> Iterator[FakeModelServer]:
    with FakeModelServer("anthropic") as server:
        yield server


def provider(server: FakeModelServer, key: str, retry: RetryPolicy = FAST) -> AnthropicProvider:
    return AnthropicProvider(api_key=key, base_url=server.base_url, retry=retry)


def everything_said_about(err: BaseException) -> str:
    seen: list[str] = []
    current: BaseException | None = err
    while current is not None:
        seen += [str(current), repr(current), "".join(traceback.format_exception(current))]
        current = current.__cause__ or current.__context__
    return "\n".join(seen)


def test_sends_model_max_tokens_system_and_the_fenced_context(fake: FakeModelServer, key: str) -> None:
    provider(fake, key).answer(QUERY, CHUNKS, TEMPLATE, PARAMS)
    (request,) = fake.requests
    body = fake.last_body()
    assert request.path == "/v1/messages" and request.headers["authorization"] == f"Bearer {key}"
    assert request.headers["anthropic-version"] == "2026-10-21"
    assert body["model"] == "claude-test" and body["max_tokens"] == 400
    rendered = TEMPLATE.render(query=QUERY, chunks=CHUNKS)
    assert body["system"] == rendered.system
    assert body["messages"] == [{"role": "user", "content": rendered.user}]
    for n, chunk in enumerate(CHUNKS, start=1):
        opening = f"<<<BEGIN UNTRUSTED PASSAGE [{n}] {rendered.fence}>>>"
        closing = f"<<<END UNTRUSTED PASSAGE [{n}] {rendered.fence}>>>"
        assert rendered.user.index(opening) < rendered.user.index(chunk.text) < rendered.user.index(closing)
    # The 2026-10-21 API refuses sampling settings, so none are ever sent.
    assert not {"temperature", "top_p", "top_k", "seed"} & set(body)


def test_max_tokens_defaults_to_a_sent_and_recorded_value(fake: FakeModelServer, key: str) -> None:
    answer = provider(fake, key).answer(QUERY, CHUNKS, TEMPLATE, GenerationParams("claude-test"))
    assert fake.last_body()["max_tokens"] == DEFAULT_MAX_TOKENS
    assert answer.metadata.params == SentParams(None, None, DEFAULT_MAX_TOKENS, None)


@pytest.mark.parametrize(
    ("params", "named"),
    [
        (GenerationParams("claude-test", temperature=0), "temperature"),
        (GenerationParams("claude-test", top_p=0.5), "top_p"),
        (GenerationParams("claude-test", seed=1, temperature=1), "temperature, seed"),
    ],
)
def test_sampling_settings_are_refused_before_anything_is_sent(
    fake: FakeModelServer, key: str, params: GenerationParams, named: str
) -> None:
    with pytest.raises(ModelError, match=re.escape(f"does not take {named}")):
        provider(fake, key).answer(QUERY, CHUNKS, TEMPLATE, params)
    assert fake.requests == []


def test_every_returned_field_is_captured(fake: FakeModelServer, key: str) -> None:
    answer = provider(fake, key).answer(QUERY, CHUNKS, TEMPLATE, PARAMS)
    meta = answer.metadata
    assert answer.text == ANTHROPIC_OK["content"][0]["text"] and answer.citations == (1, 2)
    assert meta.provider == "anthropic" and meta.endpoint == fake.base_url
    assert meta.requested_model == "claude-test" and meta.returned_model == "claude-fake-2025-01-01"
    assert meta.response_id == "msg_fake_0001" and meta.system_fingerprint is None
    assert meta.usage == Usage(input_tokens=298, output_tokens=19)
    assert meta.finish_reason == "end_turn"
    assert meta.sdk is not None and (meta.sdk.name, meta.sdk.version) == ("anthropic", anthropic.__version__)
    assert (meta.template, meta.template_sha256) == ("rag-answer@1", TEMPLATE.sha256)
    assert meta.attempts == 1 and 0 < meta.latency_ms < 5_000


def test_text_blocks_are_joined_and_other_blocks_ignored(key: str) -> None:
    body = {
        **ANTHROPIC_OK,
        "content": [
            {"type": "thinking", "thinking": "hmm", "signature": "sig"},
            {"type": "text", "text": "Burned [1]."},
            {"type": "text", "text": " Target is half [2]."},
        ],
    }
    with FakeModelServer("anthropic", body=body) as fake:
        answer = provider(fake, key).answer(QUERY, CHUNKS, TEMPLATE, PARAMS)
    assert answer.text == "Burned [1]. Target is half [2]." and answer.citations == (1, 2)


def test_metadata_maps_onto_a_record_that_validates(fake: FakeModelServer, key: str) -> None:
    answer = provider(fake, key).answer(QUERY, CHUNKS, TEMPLATE, PARAMS)
    record = validate_record(full_record(QUERY, CHUNKS, answer))
    assert record.model.provider == "anthropic" and record.model.returned_model == "claude-fake-2025-01-01"
    assert record.model.params.max_tokens == 400 and record.model.params.temperature is None
    assert record.prompt is not None and record.prompt.template == "rag-answer@1"


def test_no_key_is_missing_key_naming_the_variable() -> None:
    with pytest.raises(MissingKey, match="ANTHROPIC_API_KEY"):
        AnthropicProvider()


def test_the_key_comes_from_the_environment(fake: FakeModelServer, key: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", key)
    AnthropicProvider(base_url=fake.base_url, retry=FAST).answer(QUERY, CHUNKS, TEMPLATE, PARAMS)
    assert fake.requests[0].headers["authorization"] == f"Bearer {key}"


@pytest.mark.parametrize(("statuses", "attempts"), [((429,), 2), ((529, 500), 3), ((503,), 2)])
def test_transient_failures_are_retried_until_an_answer(key: str, statuses: tuple[int, ...], attempts: int) -> None:
    with FakeModelServer("anthropic", statuses=statuses) as fake:
        answer = provider(fake, key).answer(QUERY, CHUNKS, TEMPLATE, PARAMS)
    assert len(fake.requests) == attempts and answer.metadata.attempts == attempts


@pytest.mark.parametrize(
    ("status", "error"), [(429, RateLimited), (529, ProviderUnavailable), (500, ProviderUnavailable)]
)
def test_persistent_transient_failures_stop_after_the_bounded_attempts(
    key: str, status: int, error: type[ModelError]
) -> None:
    with FakeModelServer("anthropic", statuses=[status] * 10, retry_after="3600") as fake:
        started = time.monotonic()
        with pytest.raises(error, match="after 3 attempts") as caught:
            provider(fake, key).answer(QUERY, CHUNKS, TEMPLATE, PARAMS)
        assert time.monotonic() - started < 2  # Retry-After: 3600 is capped at max_backoff_s
    assert len(fake.requests) == 3
    assert key not in everything_said_about(caught.value)


@pytest.mark.parametrize(
    ("status", "error", "says"),
    [
        (401, RejectedKey, "ANTHROPIC_API_KEY"),
        (403, RejectedKey, "ANTHROPIC_API_KEY"),
        (413, QueryTooLong, "does not fit 'claude-test'"),
        (404, ModelError, "does not know model 'claude-test'"),
        (400, ModelError, "refused the request (HTTP 400: fake failure 400 ***)"),
    ],
)
def test_client_errors_are_not_retried_and_map_to_one_clear_error(
    key: str, status: int, error: type[ModelError], says: str
) -> None:
    with FakeModelServer("anthropic", statuses=[status]) as fake, pytest.raises(error, match=re.escape(says)) as caught:
        provider(fake, key).answer(QUERY, CHUNKS, TEMPLATE, PARAMS)
    assert type(caught.value) is error and len(fake.requests) == 1
    assert key not in everything_said_about(caught.value)


def test_a_slow_answer_times_out_and_the_retry_gets_through(key: str) -> None:
    patient = RetryPolicy(attempts=2, backoff_s=0.01, max_backoff_s=0.02, timeout_s=0.3)
    with FakeModelServer("anthropic", delays=[2.0]) as fake:
        answer = provider(fake, key, patient).answer(QUERY, CHUNKS, TEMPLATE, PARAMS)
    assert answer.metadata.attempts == 2 and len(fake.requests) == 2


def test_a_server_that_never_answers_in_time_is_unavailable(key: str) -> None:
    patient = RetryPolicy(attempts=2, backoff_s=0.01, max_backoff_s=0.02, timeout_s=0.2)
    with (
        FakeModelServer("anthropic", delays=[2.0, 2.0]) as fake,
        pytest.raises(ProviderUnavailable, match=r"no answer within 0\.2s"),
    ):
        provider(fake, key, patient).answer(QUERY, CHUNKS, TEMPLATE, PARAMS)
    assert len(fake.requests) == 2


@pytest.mark.parametrize(
    "body",
    [
        {**ANTHROPIC_OK, "content": [], "stop_reason": "refusal"},
        {**ANTHROPIC_OK, "content": "nonsense"},
    ],
)
def test_a_message_without_answer_text_is_a_model_error(key: str, body: dict[str, object]) -> None:
    with (
        FakeModelServer("anthropic", body=body) as fake,
        pytest.raises(ModelError, match=r"no answer text|cannot read"),
    ):
        provider(fake, key).answer(QUERY, CHUNKS, TEMPLATE, PARAMS)


def test_a_body_that_is_not_json_is_a_model_error(key: str) -> None:
    with (
        FakeModelServer("anthropic", raw_body=b"<html>gateway</html>") as fake,
        pytest.raises(ModelError, match="cannot read"),
    ):
        provider(fake, key).answer(QUERY, CHUNKS, TEMPLATE, PARAMS)


def test_the_key_is_in_no_repr_and_no_log_line(
    fake: FakeModelServer, key: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    chosen = provider(fake, key)
    chosen.answer(QUERY, CHUNKS, TEMPLATE, PARAMS)
    with FakeModelServer("anthropic", statuses=[401]) as refusing, pytest.raises(RejectedKey):
        provider(refusing, key).answer(QUERY, CHUNKS, TEMPLATE, PARAMS)
    assert caplog.records, "the SDK logs requests at DEBUG; this test needs them"
    assert key not in caplog.text and key not in repr(chosen)
