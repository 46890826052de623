"""Choosing a provider, the default when no key is set, the budget check before sending, and the shared pieces of
the provider contract (parameters, citations, the retry policy's bounds)."""

from __future__ import annotations

import base64
import re
from pathlib import Path

import pytest

from attest.errors import MissingKey, ModelError, QueryTooLong, UnknownProvider
from attest.llm import anthropic_provider, openai_provider
from attest.llm.base import GenerationParams, RetryPolicy, citations_in, public_url
from attest.llm.extractive import EXTRACTIVE_MODEL
from attest.llm.registry import (
    DEFAULT_CONTEXT_WINDOW,
    check_budget,
    context_window,
    default_provider,
    default_provider_name,
    estimate_tokens,
    get_provider,
    provider_spec,
)
from attest.prompts import get
from tests.support.llm_fakes import CHUNKS, FakeModelServer, chunk

QUERY = "What happens to the base fee?"
TEMPLATE = get("rag-answer@1")
FAST = RetryPolicy(attempts=2, backoff_s=0.01, max_backoff_s=0.02, timeout_s=5)


@pytest.fixture(autouse=True)
def no_ambient_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL"):
        monkeypatch.delenv(name, raising=False)


def test_an_unknown_provider_names_the_known_ones() -> None:
    with pytest.raises(UnknownProvider, match="'gemini'; choose one of: openai, anthropic, extractive"):
        get_provider("gemini")


@pytest.mark.parametrize(("name", "variable"), [("openai", "OPENAI_API_KEY"), ("anthropic", "ANTHROPIC_API_KEY")])
def test_a_provider_without_its_key_is_missing_key_naming_the_variable(name: str, variable: str) -> None:
    with pytest.raises(MissingKey, match=variable):
        get_provider(name)


def test_registry_key_variables_are_the_providers_own() -> None:
    keyed = {name: provider_spec(name).key_env for name in ("openai", "anthropic")}
    assert keyed == {"openai": openai_provider.KEY_ENV, "anthropic": anthropic_provider.KEY_ENV}


@pytest.mark.parametrize(
    ("env", "chosen"),
    [
        ({}, "extractive"),
        ({"ANTHROPIC_API_KEY": "a"}, "anthropic"),
        ({"OPENAI_API_KEY": "o"}, "openai"),
        ({"OPENAI_API_KEY": "o", "ANTHROPIC_API_KEY": "a"}, "openai"),
        ({"OPENAI_API_KEY": "", "ANTHROPIC_API_KEY": "a"}, "anthropic"),
    ],
)
def test_default_is_openai_then_anthropic_then_extractive(
    env: dict[str, str], chosen: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert default_provider_name() == chosen
    assert default_provider().name == chosen


def test_with_no_key_the_default_answers_offline() -> None:
    answer = default_provider().answer(QUERY, CHUNKS, TEMPLATE, GenerationParams(EXTRACTIVE_MODEL))
    assert answer.metadata.provider == "extractive" and answer.citations


def test_get_provider_passes_base_url_and_key_through_to_a_working_provider() -> None:
    with FakeModelServer("openai") as fake:
        provider = get_provider("OpenAI", base_url=fake.base_url, api_key="sk-given", retry=FAST)
        answer = provider.answer(QUERY, CHUNKS, TEMPLATE, GenerationParams("gpt-test"))
    assert provider.name == "openai" and answer.metadata.endpoint == fake.base_url
    assert fake.requests[0].headers["authorization"] == "Bearer sk-given"
    assert "sk-given" not in repr(provider)


def test_a_query_longer_than_the_budget_is_refused_before_anything_is_sent() -> None:
    with FakeModelServer("openai") as fake:
        provider = get_provider("openai", base_url=fake.base_url, api_key="sk-x", retry=FAST, budget_tokens=2_000)
        with pytest.raises(QueryTooLong, match="the query alone is about 2500 tokens"):
            provider.answer("why " * 2_500, CHUNKS, TEMPLATE, GenerationParams("local-model", max_tokens=500))
        big = [chunk("The base fee is burned. " * 300, i) for i in range(3)]
        with pytest.raises(QueryTooLong, match="retrieve fewer passages"):
            provider.answer(QUERY, big, TEMPLATE, GenerationParams("local-model", max_tokens=500))
    assert fake.requests == []


def test_a_prompt_that_fits_is_sent_and_the_estimate_is_chars_over_four() -> None:
    params = GenerationParams("gpt-4o-mini", max_tokens=100)
    rendered = TEMPLATE.render(query=QUERY, chunks=CHUNKS)
    assert check_budget(QUERY, CHUNKS, TEMPLATE, params) == estimate_tokens(rendered.text)
    assert estimate_tokens("abcd") == 1 and estimate_tokens("abcde") == 2 and estimate_tokens("") == 0


def test_the_reserved_answer_tokens_count_against_the_window() -> None:
    window = estimate_tokens(TEMPLATE.render(query=QUERY, chunks=CHUNKS).text) + 100
    check_budget(QUERY, CHUNKS, TEMPLATE, GenerationParams("m", max_tokens=100), budget_tokens=window)
    with pytest.raises(QueryTooLong, match=f"{window} in all, 101 kept for the answer"):
        check_budget(QUERY, CHUNKS, TEMPLATE, GenerationParams("m", max_tokens=101), budget_tokens=window)


def test_the_extractive_provider_has_a_budget_too() -> None:
    with pytest.raises(QueryTooLong):
        get_provider("extractive").answer("fee " * 200_000, CHUNKS, TEMPLATE, GenerationParams(EXTRACTIVE_MODEL))


def test_judge_templates_are_budgeted_without_an_answer_to_render() -> None:
    assert check_budget(QUERY, CHUNKS, get("judge-correctness@1"), GenerationParams("gpt-4o")) > 0


@pytest.mark.parametrize(
    ("model", "window"),
    [
        ("gpt-4.1-mini", 1_047_576),
        ("gpt-4o-2024-08-06", 128_000),
        ("claude-sonnet-4-6", 200_000),
        ("o3-mini", 200_000),
        ("llama3.1:8b", DEFAULT_CONTEXT_WINDOW),
    ],
)
def test_context_windows_by_model_prefix_and_a_conservative_default(model: str, window: int) -> None:
    assert context_window(model) == window


@pytest.mark.parametrize(
    ("kwargs", "says"),
    [
        ({"model": " "}, "a model name is needed"),
        ({"model": "m", "temperature": 2.5}, "temperature must be between 0 and 2"),
        ({"model": "m", "top_p": -0.1}, "top_p must be between 0 and 1"),
        ({"model": "m", "max_tokens": 0}, "max_tokens must be a positive integer"),
        ({"model": "m", "seed": 2**60}, "seed must be within"),
    ],
)
def test_generation_params_out_of_range_are_a_model_error(kwargs: dict[str, object], says: str) -> None:
    with pytest.raises(ModelError, match=re.escape(says)):
        GenerationParams(**kwargs)  # type: ignore[arg-type]


def test_integral_temperature_is_kept_as_a_float() -> None:
    params = GenerationParams("m", temperature=1, top_p=1)
    assert isinstance(params.temperature, float) and isinstance(params.top_p, float)


def test_citations_are_the_valid_bracketed_numbers_in_order() -> None:
    assert citations_in("A [2]. B [1][2]. C [1, 3]. D [0] [9] [x] [12a]", passages=3) == (1, 2, 3)
    assert citations_in("no citations", passages=3) == ()


@pytest.mark.parametrize("retry", range(1, 12))
def test_backoff_doubles_with_jitter_and_never_exceeds_its_ceiling(retry: int) -> None:
    policy = RetryPolicy(backoff_s=0.5, max_backoff_s=8.0)
    ceiling = min(8.0, 0.5 * 2 ** (retry - 1))
    delays = [policy.delay(retry) for _ in range(200)]
    assert all(ceiling / 2 <= d <= ceiling for d in delays)
    assert len(set(delays)) > 1  # jittered, so retries from many clients spread out


def test_retry_after_is_honoured_up_to_the_ceiling() -> None:
    policy = RetryPolicy(backoff_s=0.5, max_backoff_s=8.0)
    assert policy.delay(1, retry_after_s=3.0) == 3.0
    assert policy.delay(1, retry_after_s=3600.0) == 8.0
    assert policy.delay(1, retry_after_s=-5.0) == 0.0


def test_a_retry_policy_without_attempts_or_time_is_refused() -> None:
    with pytest.raises(ModelError):
        RetryPolicy(attempts=0)
    with pytest.raises(ModelError):
        RetryPolicy(timeout_s=0)


def test_base_urls_are_shown_without_credentials_and_bad_ones_refused() -> None:
    assert public_url("http://user:s3cret@127.0.0.1:11434/v1/?token=s3cret") == "http://127.0.0.1:11434/v1"
    assert public_url("https://[::1]:8000/v1") == "https://[::1]:8000/v1"
    for bad in ("127.0.0.1:11434", "ftp://host/v1", "http://user:s3cret@host:99999/v1"):
        with pytest.raises(ModelError, match="not an http") as caught:
            public_url(bad)
        assert "s3cret" not in str(caught.value)


def test_credentials_in_a_base_url_reach_the_server_but_not_the_metadata() -> None:
    with FakeModelServer("openai") as fake:
        url = fake.base_url.replace("http://", "http://user:s3cret@")
        answer = get_provider("openai", base_url=url, retry=FAST).answer(
            QUERY, CHUNKS, TEMPLATE, GenerationParams("local-model")
        )
    assert answer.metadata.endpoint == fake.base_url and answer.metadata.provider == "openai-compatible"
    # httpx turns URL credentials into Basic auth, which is how such a server expects them.
    assert fake.requests[0].headers["authorization"] == "Basic " + base64.b64encode(b"user:s3cret").decode()
    assert "s3cret" not in repr(answer)


def test_llm_config_defaults_to_the_offline_provider_without_keys(tmp_path: Path) -> None:
    from attest.config import load_config
    from attest.llm.registry import provider_from_config

    provider = provider_from_config(load_config(tmp_path / "absent.toml").llm)
    assert provider.name == "extractive"


def test_llm_config_reaches_an_openai_compatible_server_with_the_key_it_names(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from attest.config import load_config
    from attest.llm.registry import provider_from_config

    monkeypatch.setenv("LOCAL_LLM_KEY", "local-key-0042")
    with FakeModelServer("openai") as fake:
        path = tmp_path / "config.toml"
        path.write_text(
            f'[llm]\nprovider = "openai"\nbase_url = "{fake.base_url}"\n'
            'key_env = "LOCAL_LLM_KEY"\nbudget_tokens = 4096\n'
        )
        provider = provider_from_config(load_config(path).llm, retry=FAST)
        answer = provider.answer(QUERY, CHUNKS, TEMPLATE, GenerationParams("llama3.1", temperature=0.0))
    assert fake.last_body()["model"] == "llama3.1"
    assert fake.requests[-1].headers["authorization"] == "Bearer local-key-0042"
    assert answer.metadata.provider == "openai-compatible"


def test_llm_config_naming_an_unset_key_variable_is_a_config_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from attest.config import load_config
    from attest.errors import ConfigError
    from attest.llm.registry import provider_from_config

    monkeypatch.delenv("MISSING_KEY_VAR", raising=False)
    path = tmp_path / "config.toml"
    path.write_text('[llm]\nprovider = "openai"\nkey_env = "MISSING_KEY_VAR"\n')
    with pytest.raises(ConfigError, match="MISSING_KEY_VAR"):
        provider_from_config(load_config(path).llm)


def test_default_models_are_not_ones_the_sdk_marks_deprecated() -> None:
    from anthropic.resources.messages.messages import DEPRECATED_MODELS

    assert provider_spec("anthropic").default_model not in DEPRECATED_MODELS


def test_a_provider_registered_once_is_known_to_config_lookup_and_auto(monkeypatch: pytest.MonkeyPatch) -> None:
    from pydantic import ValidationError

    from attest.config import LlmConfig
    from attest.llm import registry
    from attest.llm.extractive import ExtractiveProvider

    with pytest.raises(ValidationError, match="Input should be 'auto', 'openai', 'anthropic' or 'extractive'"):
        LlmConfig(provider="local-test")
    spec = registry.ProviderSpec("local-test", lambda **_: ExtractiveProvider(), "local-model", "LOCAL_TEST_KEY")
    monkeypatch.setitem(registry._REGISTRY, spec.name, spec)
    assert registry.provider_names()[-1] == "local-test"
    assert LlmConfig(provider="local-test").provider == "local-test"
    assert registry.provider_spec("Local-Test") is spec and registry.can_grade("local-test")
    assert get_provider("local-test").name == "extractive"
    monkeypatch.setenv("LOCAL_TEST_KEY", "k")
    assert default_provider_name() == "local-test"  # keyed providers first, in registration order
    with pytest.raises(ValueError, match="already registered"):
        registry.register_provider(spec)
