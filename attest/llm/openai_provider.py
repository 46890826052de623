"""OpenAI chat completions through the official SDK, and any OpenAI-compatible server (Ollama, vLLM,
llama.cpp) by `base_url`. A compatible server is recorded as provider "openai-compatible": its models are not
OpenAI's, and the record should not suggest they are.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Literal, TypeVar

import openai
from openai.types.chat import ChatCompletion, ChatCompletionMessageParam
from openai.types.chat.completion_create_params import ResponseFormat

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

KEY_ENV = "OPENAI_API_KEY"
BASE_URL_ENV = "OPENAI_BASE_URL"
OPENAI_API = "https://api.openai.com/v1"
# Local servers ignore the key, but the SDK insists on one; this placeholder is what their docs suggest.
_NO_KEY = "no-key"

V = TypeVar("V")


class OpenAIProvider:
    name = "openai"

    def __init__(
        self,
        *,
        api_key: str | None = None,
        base_url: str | None = None,
        retry: RetryPolicy | None = None,
        max_tokens_field: Literal["max_tokens", "max_completion_tokens"] | None = None,
    ) -> None:
        url = (base_url or os.environ.get(BASE_URL_ENV) or OPENAI_API).rstrip("/")
        self.endpoint = public_url(url)  # shown in errors and metadata; `url` may carry credentials
        self.official = self.endpoint == OPENAI_API
        # OpenAI's own models take max_completion_tokens (reasoning models refuse max_tokens); compatible servers
        # know max_tokens.
        self.max_tokens_field = max_tokens_field or ("max_completion_tokens" if self.official else "max_tokens")
        key = api_key or os.environ.get(KEY_ENV) or None
        if key is None and self.official:
            raise MissingKey(
                f"OpenAI needs an API key: set {KEY_ENV} in the environment, "
                "or use --provider extractive to answer offline without a model"
            )
        self._key = key
        self._retry = retry or RetryPolicy()
        self._client = openai.OpenAI(
            api_key=key or _NO_KEY,
            base_url=url,
            timeout=self._retry.timeout_s,
            max_retries=0,
        )

    def __repr__(self) -> str:
        return f"OpenAIProvider(endpoint={self.endpoint!r})"

    @property
    def label(self) -> str:
        return "openai" if self.official else "openai-compatible"

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
        prompt = template.render(query=query, chunks=chunks, answer=graded)
        messages: list[ChatCompletionMessageParam] = [
            {"role": "system", "content": prompt.system},
            {"role": "user", "content": prompt.user},
        ]

        by_completion = self.max_tokens_field == "max_completion_tokens"
        response_format = self._response_format(output)

        def send() -> ChatCompletion:
            failure: Exception
            try:
                return self._client.chat.completions.create(
                    model=params.model,
                    messages=messages,
                    temperature=_given(params.temperature),
                    top_p=_given(params.top_p),
                    max_completion_tokens=_given(params.max_tokens) if by_completion else openai.omit,
                    max_tokens=openai.omit if by_completion else _given(params.max_tokens),
                    seed=_given(params.seed),
                    response_format=response_format,
                )
            except openai.APIStatusError as err:
                failure = self._failure(err, params.model)
            except openai.APITimeoutError:
                failure = Retryable(ProviderUnavailable, f"no answer within {self._retry.timeout_s:g}s", None)
            except openai.APIConnectionError:
                failure = Retryable(ProviderUnavailable, f"cannot connect to {self.endpoint}", None)
            except (openai.OpenAIError, ValueError) as err:
                # ValueError: a body that is not JSON (the SDK lets json's error through).
                failure = ModelError(f"{self.label} returned a response we cannot read ({type(err).__name__})")
            # Raised outside the except blocks so no SDK exception (which holds the request) rides along.
            raise failure

        sent = call_with_retries(send, self._retry, self.label)
        completion = sent.result
        try:
            choice = completion.choices[0] if completion.choices else None
            text = choice.message.content if choice is not None else None
            refusal = text_or_none(getattr(choice.message, "refusal", None)) if choice is not None else None
            finish_reason = text_or_none(choice.finish_reason) if choice is not None else None
            usage = completion.usage
            counts = (usage.prompt_tokens, usage.completion_tokens) if usage is not None else None
        except (AttributeError, TypeError) as err:
            raise ModelError(f"{self.label} returned a completion we cannot read ({type(err).__name__})") from None
        if refusal is not None:
            # A refusal is never an answer, even when some content came with it.
            raise ModelRefused(
                f"{self.label} model {params.model!r} refused to answer ({scrub(refusal, self._key, 200)}); "
                "rephrase the query or use another model"
            )
        if not isinstance(text, str) or not text.strip():
            raise ModelError(
                f"{self.label} model {params.model!r} returned no answer text (finish reason: {finish_reason}); "
                "retry, or raise max_tokens"
            )
        return Answer(
            text=text,
            citations=citations_in(text, len(chunks)),
            metadata=ModelMetadata(
                provider=self.label,
                requested_model=params.model,
                returned_model=text_or_none(completion.model),
                system_fingerprint=text_or_none(completion.system_fingerprint),
                response_id=text_or_none(completion.id),
                params=SentParams(params.temperature, params.top_p, params.max_tokens, params.seed),
                usage=Usage(*counts) if counts is not None and all(is_count(c) for c in counts) else None,
                license=None,
                sdk=SdkInfo("openai", openai.__version__),
                template=template.ref,
                template_sha256=template.sha256,
                finish_reason=finish_reason,
                latency_ms=sent.latency_ms,
                attempts=sent.attempts,
                endpoint=self.endpoint,
            ),
        )

    def _response_format(self, output: OutputSchema | None) -> ResponseFormat | openai.Omit:
        if output is None:
            return openai.omit
        if not self.official:
            # Compatible servers (Ollama, vLLM, llama.cpp) agree on JSON mode; strict schemas vary between them.
            return {"type": "json_object"}
        return {
            "type": "json_schema",
            "json_schema": {"name": output.name, "schema": dict(output.schema), "strict": True},
        }

    def _failure(self, err: openai.APIStatusError, model: str) -> ModelError | Retryable:
        body = err.body
        message = body.get("message") if isinstance(body, dict) else body
        return failure_for_status(
            self.label,
            err.status_code,
            model=model,
            key_env=KEY_ENV,
            detail=scrub(str(message or "no details"), self._key),
            retry_after_s=retry_after_seconds(err.response.headers),
            too_long=err.code == "context_length_exceeded",
        )


def _given(value: V | None) -> V | openai.Omit:
    return openai.omit if value is None else value
