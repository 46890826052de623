"""Providers by name, the default choice, and the budget check that refuses an oversized prompt before it is sent.

Every provider is registered once here (`register_provider`, the built-ins at the bottom of this module); the
config's allowed `[llm] provider` values, the `auto` order, the CLI's `--provider` choices and whether a provider
can judge are all read from this one table.

Every provider handed out here is wrapped in `Budgeted`: it renders the prompt, estimates its tokens
(characters / 4, the usual rule of thumb for English) and raises QueryTooLong when the estimate plus the reserved
output exceeds the model's context window. Nothing is sent, and no tokens are paid for, when it does not fit.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from attest.context import RetrievedChunk
from attest.errors import QueryTooLong, UnknownProvider
from attest.llm.base import Answer, GenerationParams, OutputSchema, Provider, RetryPolicy
from attest.llm.extractive import EXTRACTIVE_MODEL, ExtractiveProvider
from attest.prompts.catalog import Template

AUTO = "auto"  # the config value that picks the first provider whose key is set, else the offline one


class ProviderFactory(Protocol):
    def __call__(self, *, api_key: str | None, base_url: str | None, retry: RetryPolicy | None) -> Provider: ...


@dataclass(frozen=True)
class ProviderSpec:
    name: str
    make: ProviderFactory
    default_model: str
    key_env: str | None  # the variable holding its key; None: it needs none and answers offline
    grades: bool = True  # can be a judge's model (the extractive provider only quotes)


_REGISTRY: dict[str, ProviderSpec] = {}


def register_provider(spec: ProviderSpec) -> None:
    """Add a provider; `auto` tries keyed providers in registration order."""
    if spec.name in _REGISTRY or spec.name == AUTO:
        raise ValueError(f"a provider named {spec.name!r} is already registered")
    _REGISTRY[spec.name] = spec


def provider_names() -> tuple[str, ...]:
    return tuple(_REGISTRY)


def provider_spec(name: str) -> ProviderSpec:
    spec = _REGISTRY.get(name.strip().lower())
    if spec is None:
        raise UnknownProvider(f"unknown model provider {name!r}; choose one of: {', '.join(_REGISTRY)}")
    return spec


CHARS_PER_TOKEN = 4
# Context windows (tokens) by model-name prefix, longest prefix first. A model not listed (a local server's) gets
# the conservative default; pass budget_tokens to get_provider() to use a larger window.
CONTEXT_WINDOWS: tuple[tuple[str, int], ...] = (
    ("gpt-4.1", 1_047_576),
    ("gpt-5", 400_000),
    ("gpt-4o", 128_000),
    ("o1", 200_000),
    ("o3", 200_000),
    ("o4", 200_000),
    ("claude", 200_000),
    (EXTRACTIVE_MODEL, 100_000),
)
DEFAULT_CONTEXT_WINDOW = 8_192
DEFAULT_OUTPUT_RESERVE = 1_024  # tokens kept free for the answer when max_tokens is not set


def get_provider(
    name: str,
    *,
    base_url: str | None = None,
    api_key: str | None = None,
    retry: RetryPolicy | None = None,
    budget_tokens: int | None = None,
) -> Budgeted:
    """A provider by name. Keys come from `api_key`, else the provider's environment variable."""
    inner = provider_spec(name).make(api_key=api_key, base_url=base_url, retry=retry)
    return Budgeted(inner, budget_tokens=budget_tokens)


class LlmSettings(Protocol):
    """What `provider_from_config` reads: attest.config's LlmConfig."""

    @property
    def provider(self) -> str: ...
    @property
    def base_url(self) -> str | None: ...
    @property
    def budget_tokens(self) -> int | None: ...
    def api_key(self) -> str | None: ...


def provider_from_config(config: LlmSettings, *, retry: RetryPolicy | None = None) -> Budgeted:
    """The provider `[llm]` in config.toml describes (`auto` picks by which key is set)."""
    name = default_provider_name() if config.provider == AUTO else config.provider
    return get_provider(
        name, base_url=config.base_url, api_key=config.api_key(), retry=retry, budget_tokens=config.budget_tokens
    )


def can_grade(name: str) -> bool:
    """Whether a provider can be a judge's model; one not registered here (a caller's own) is assumed to."""
    spec = _REGISTRY.get(name)
    return spec is None or spec.grades


def default_provider_name() -> str:
    """The first registered provider whose key is set (openai, then anthropic), else the offline one."""
    for spec in _REGISTRY.values():
        if spec.key_env is not None and os.environ.get(spec.key_env):
            return spec.name
    return next(spec.name for spec in _REGISTRY.values() if spec.key_env is None)


def default_provider(*, retry: RetryPolicy | None = None) -> Budgeted:
    return get_provider(default_provider_name(), retry=retry)


def estimate_tokens(text: str) -> int:
    return math.ceil(len(text) / CHARS_PER_TOKEN)


def context_window(model: str) -> int:
    for prefix, window in CONTEXT_WINDOWS:
        if model.startswith(prefix):
            return window
    return DEFAULT_CONTEXT_WINDOW


def check_budget(
    query: str,
    chunks: Sequence[RetrievedChunk],
    template: Template,
    params: GenerationParams,
    *,
    budget_tokens: int | None = None,
    graded: str | None = None,
) -> int:
    """The estimated prompt tokens, or QueryTooLong when prompt plus reserved output exceed the window.
    `graded` is the answer a judge template grades; without it a judge prompt is estimated with an empty one."""
    window = budget_tokens or context_window(params.model)
    reserve = params.max_tokens or DEFAULT_OUTPUT_RESERVE
    prompt_budget = window - reserve
    query_tokens = estimate_tokens(query)
    if query_tokens > prompt_budget:
        raise QueryTooLong(
            f"the query alone is about {query_tokens} tokens; model {params.model!r} has room for about "
            f"{max(prompt_budget, 0)} ({window} in all, {reserve} kept for the answer). Shorten the query."
        )
    answer = graded if graded is not None else ("" if template.needs_answer else None)
    estimate = estimate_tokens(template.render(query=query, chunks=chunks, answer=answer).text)
    if estimate > prompt_budget:
        raise QueryTooLong(
            f"the prompt (query, {len(chunks)} passages and template {template.ref}) is about {estimate} tokens; "
            f"model {params.model!r} has room for about {max(prompt_budget, 0)} ({window} in all, {reserve} kept "
            "for the answer). Shorten the query or retrieve fewer passages."
        )
    return estimate


class Budgeted:
    """A provider that refuses, before sending anything, a prompt that does not fit its model."""

    def __init__(self, inner: Provider, *, budget_tokens: int | None = None) -> None:
        self.inner = inner
        self.budget_tokens = budget_tokens

    @property
    def name(self) -> str:
        return self.inner.name

    def __repr__(self) -> str:
        return f"Budgeted({self.inner!r}, budget_tokens={self.budget_tokens})"

    @property
    def label(self) -> str:
        """The provider as records name it: "openai-compatible" for a local server, else its name."""
        return str(getattr(self.inner, "label", self.inner.name))

    def answer(
        self,
        query: str,
        chunks: Sequence[RetrievedChunk],
        template: Template,
        params: GenerationParams,
        *,
        graded: str | None = None,
        output: OutputSchema | None = None,
    ) -> Answer:
        check_budget(query, chunks, template, params, budget_tokens=self.budget_tokens, graded=graded)
        return self.inner.answer(query, chunks, template, params, graded=graded, output=output)


# -- the built-in providers ----------------------------------------------------------------------------------
# The SDKs take seconds to import, so their modules load only when their provider is asked for.
def _openai(*, api_key: str | None, base_url: str | None, retry: RetryPolicy | None) -> Provider:
    from attest.llm.openai_provider import OpenAIProvider

    return OpenAIProvider(api_key=api_key, base_url=base_url, retry=retry)


def _anthropic(*, api_key: str | None, base_url: str | None, retry: RetryPolicy | None) -> Provider:
    from attest.llm.anthropic_provider import AnthropicProvider

    return AnthropicProvider(api_key=api_key, base_url=base_url, retry=retry)


def _extractive(*, api_key: str | None, base_url: str | None, retry: RetryPolicy | None) -> Provider:
    return ExtractiveProvider()


register_provider(ProviderSpec("openai", _openai, "gpt-4.1-mini", "OPENAI_API_KEY"))
register_provider(ProviderSpec("anthropic", _anthropic, "claude-sonnet-4-6", "ANTHROPIC_API_KEY"))
register_provider(ProviderSpec("extractive", _extractive, EXTRACTIVE_MODEL, None, grades=False))
