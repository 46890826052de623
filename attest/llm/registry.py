"""Providers by name, the default choice, and the budget check that refuses an oversized prompt before it is sent.

Every provider handed out here is wrapped in `Budgeted`: it renders the prompt, estimates its tokens
(characters / 4, the usual rule of thumb for English) and raises QueryTooLong when the estimate plus the reserved
output exceeds the model's context window. Nothing is sent, and no tokens are paid for, when it does not fit.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence

from attest.config import LlmConfig
from attest.context import RetrievedChunk
from attest.errors import QueryTooLong, UnknownProvider
from attest.llm.base import Answer, GenerationParams, OutputSchema, Provider, RetryPolicy
from attest.llm.extractive import EXTRACTIVE_MODEL, ExtractiveProvider
from attest.prompts.catalog import Template

PROVIDERS = ("openai", "anthropic", "extractive")
# The SDKs take seconds to import, so their modules load only when their provider is asked for.
KEY_ENVS = {"openai": "OPENAI_API_KEY", "anthropic": "ANTHROPIC_API_KEY"}
DEFAULT_MODELS = {"openai": "gpt-4.1-mini", "anthropic": "claude-sonnet-4-6", "extractive": EXTRACTIVE_MODEL}
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
    inner: Provider
    match name.strip().lower():
        case "openai":
            from attest.llm.openai_provider import OpenAIProvider

            inner = OpenAIProvider(api_key=api_key, base_url=base_url, retry=retry)
        case "anthropic":
            from attest.llm.anthropic_provider import AnthropicProvider

            inner = AnthropicProvider(api_key=api_key, base_url=base_url, retry=retry)
        case "extractive":
            inner = ExtractiveProvider()
        case _:
            raise UnknownProvider(f"unknown model provider {name!r}; choose one of: {', '.join(PROVIDERS)}")
    return Budgeted(inner, budget_tokens=budget_tokens)


def provider_from_config(config: LlmConfig, *, retry: RetryPolicy | None = None) -> Budgeted:
    """The provider `[llm]` in config.toml describes (`auto` picks by which key is set)."""
    name = default_provider_name() if config.provider == "auto" else config.provider
    return get_provider(
        name, base_url=config.base_url, api_key=config.api_key(), retry=retry, budget_tokens=config.budget_tokens
    )


def default_provider_name() -> str:
    """openai if its key is set, else anthropic if its key is set, else the offline extractive provider."""
    for name in ("openai", "anthropic"):
        if os.environ.get(KEY_ENVS[name]):
            return name
    return "extractive"


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
