"""Anthropic messages through the official SDK.

The SDK speaks API version 2026-10-21, which refuses temperature, top_p and top_k and has no seed. Asking for
them is an error here rather than silently dropped, so a record never suggests a setting that was not applied.
`max_tokens` is required by the API; when not given, `DEFAULT_MAX_TOKENS` is sent and recorded.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import anthropic
from anthropic.types import Message, MessageParam, OutputConfigParam

from attest.context import RetrievedChunk
from attest.errors import MissingKey, ModelError, ModelRefused, ProviderUnavailable
from attest.llm.base import (
    Answer,
    GenerationParams,
    ModelMetadata,
    OutputSchema,
    Retryable,
    RetryPolicy,
    SdkInfo,
    SentParams,
    Usage,
    call_with_retries,
    citations_in,
    failure_for_status,
    is_count,
    public_url,
    retry_after_seconds,
    scrub,
    text_or_none,
)
from attest.prompts.catalog import Template

KEY_ENV = "ANTHROPIC_API_KEY"
BASE_URL_ENV = "ANTHROPIC_BASE_URL"
ANTHROPIC_API = "https://api.anthropic.com"
DEFAULT_MAX_TOKENS = 1024


class AnthropicProvider:
    name = "anthropic"

    def __init__(
        self,
        *,
        api_key: str | None = None,
        base_url: str | None = None,
        retry: RetryPolicy | None = None,
    ) -> None:
        key = api_key or os.environ.get(KEY_ENV) or None
        if key is None:
            raise MissingKey(
                f"Anthropic needs an API key: set {KEY_ENV} in the environment, "
                "or use --provider extractive to answer offline without a model"
            )
        url = (base_url or os.environ.get(BASE_URL_ENV) or ANTHROPIC_API).rstrip("/")
        self.endpoint = public_url(url)  # shown in errors and metadata; `url` may carry credentials
        self._key = key
        self._retry = retry or RetryPolicy()
        # An explicit key also stops the SDK from looking for credentials in files or other variables.
        self._client = anthropic.Anthropic(api_key=key, base_url=url, timeout=self._retry.timeout_s, max_retries=0)

    def __repr__(self) -> str:
        return f"AnthropicProvider(endpoint={self.endpoint!r})"

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
        refused = [name for name in ("temperature", "top_p", "seed") if getattr(params, name) is not None]
        if refused:
            raise ModelError(
                "Anthropic's Messages API (version 2026-10-21, which this SDK speaks) does not take "
                f"{', '.join(refused)}; leave {'them' if len(refused) > 1 else 'it'} unset for provider anthropic"
            )
        max_tokens = params.max_tokens or DEFAULT_MAX_TOKENS
        prompt = template.render(query=query, chunks=chunks, answer=graded)
        messages: list[MessageParam] = [{"role": "user", "content": prompt.user}]
        output_config: OutputConfigParam | anthropic.Omit = (
            anthropic.omit if output is None else {"format": {"type": "json_schema", "schema": dict(output.schema)}}
        )

        def send() -> Message:
            failure: Exception
            try:
                return self._client.messages.create(
                    model=params.model,
                    max_tokens=max_tokens,
                    system=prompt.system,
                    messages=messages,
                    output_config=output_config,
                )
            except anthropic.APIStatusError as err:
                failure = self._failure(err, params.model)
            except anthropic.APITimeoutError:
                failure = Retryable(ProviderUnavailable, f"no answer within {self._retry.timeout_s:g}s", None)
            except anthropic.APIConnectionError:
                failure = Retryable(ProviderUnavailable, f"cannot connect to {self.endpoint}", None)
            except (anthropic.AnthropicError, ValueError) as err:
                # ValueError: a body that is not JSON (the SDK lets json's error through).
                failure = ModelError(f"anthropic returned a response we cannot read ({type(err).__name__})")
            # Raised outside the except blocks so no SDK exception (which holds the request) rides along.
            raise failure

        sent = call_with_retries(send, self._retry, "anthropic")
        message = sent.result
        try:
            text = "".join(block.text for block in message.content if block.type == "text")
            finish_reason = text_or_none(message.stop_reason)
            usage = message.usage
            counts = (usage.input_tokens, usage.output_tokens) if usage is not None else None
        except (AttributeError, TypeError) as err:
            raise ModelError(f"anthropic returned a message we cannot read ({type(err).__name__})") from None
        if finish_reason == "refusal":
            # Streaming classifiers can stop a reply part-way: the partial text is not an answer.
            raise ModelRefused(
                f"anthropic model {params.model!r} refused to answer (stop reason: refusal), so there is no answer "
                "text; rephrase the query or use another model"
            )
        if not text.strip():
            raise ModelError(
                f"anthropic model {params.model!r} returned no answer text (stop reason: {finish_reason}); "
                "retry, or raise max_tokens"
            )
        return Answer(
            text=text,
            citations=citations_in(text, len(chunks)),
            metadata=ModelMetadata(
                provider="anthropic",
                requested_model=params.model,
                returned_model=text_or_none(message.model),
                system_fingerprint=None,  # the Messages API reports none
                response_id=text_or_none(message.id),
                params=SentParams(temperature=None, top_p=None, max_tokens=max_tokens, seed=None),
                usage=Usage(*counts) if counts is not None and all(is_count(c) for c in counts) else None,
                license=None,
                sdk=SdkInfo("anthropic", anthropic.__version__),
                template=template.ref,
                template_sha256=template.sha256,
                finish_reason=finish_reason,
                latency_ms=sent.latency_ms,
                attempts=sent.attempts,
                endpoint=self.endpoint,
            ),
        )

    def _failure(self, err: anthropic.APIStatusError, model: str) -> ModelError | Retryable:
        return failure_for_status(
            "anthropic",
            err.status_code,
            model=model,
            key_env=KEY_ENV,
            detail=scrub(err.api_message or "no details", self._key),
            retry_after_s=retry_after_seconds(err.response.headers),
            too_long=err.status_code == 413,
        )
