"""The provider contract: what a model is asked (`GenerationParams`), what comes back (`Answer` with
`ModelMetadata`), the bounded retry loop the network providers share, and the mapping onto the record's fields.

Metadata records what was *sent* and what was *returned*, never what we hoped: a parameter a provider was not
sent is `None`, and a field a provider did not report is `None`.
"""

from __future__ import annotations

import logging
import random
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar
from urllib.parse import urlsplit, urlunsplit

from attest.context import RetrievedChunk
from attest.errors import ModelError, ProviderUnavailable, QueryTooLong, RateLimited, RejectedKey
from attest.prompts.catalog import Template

MAX_SAFE_INT = 2**53 - 1  # the record's integer bound (JSON numbers are doubles)
_CITATION = re.compile(r"\[(\d{1,4}(?:\s*,\s*\d{1,4})*)\]")

T = TypeVar("T")
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class GenerationParams:
    """What to ask for. `None` means "do not send it": the provider's default applies and the record says null."""

    model: str
    temperature: float | None = None
    top_p: float | None = None
    max_tokens: int | None = None
    seed: int | None = None

    def __post_init__(self) -> None:
        if not self.model.strip():
            raise ModelError("a model name is needed (for example gpt-4.1-mini, or extractive-v1 offline)")
        if self.temperature is not None and not 0 <= self.temperature <= 2:
            raise ModelError(f"temperature must be between 0 and 2, not {self.temperature}")
        if self.top_p is not None and not 0 <= self.top_p <= 1:
            raise ModelError(f"top_p must be between 0 and 1, not {self.top_p}")
        if self.max_tokens is not None and not 1 <= self.max_tokens <= MAX_SAFE_INT:
            raise ModelError(f"max_tokens must be a positive integer, not {self.max_tokens}")
        if self.seed is not None and not -MAX_SAFE_INT <= self.seed <= MAX_SAFE_INT:
            raise ModelError(f"seed must be within ±{MAX_SAFE_INT}, not {self.seed}")
        # The record types these as floats; 0 and 0.0 are the same request.
        if self.temperature is not None:
            object.__setattr__(self, "temperature", float(self.temperature))
        if self.top_p is not None:
            object.__setattr__(self, "top_p", float(self.top_p))


@dataclass(frozen=True)
class SentParams:
    """The sampling parameters as sent to the provider; `None` for each one not sent."""

    temperature: float | None
    top_p: float | None
    max_tokens: int | None
    seed: int | None


@dataclass(frozen=True)
class Usage:
    input_tokens: int
    output_tokens: int


@dataclass(frozen=True)
class SdkInfo:
    name: str
    version: str


@dataclass(frozen=True)
class ModelMetadata:
    provider: str  # "openai", "openai-compatible", "anthropic", "extractive"
    requested_model: str
    returned_model: str | None  # the model id the response named
    system_fingerprint: str | None
    response_id: str | None
    params: SentParams
    usage: Usage | None
    license: str | None
    sdk: SdkInfo | None
    template: str | None  # id@version; None when no template was rendered for a model (extractive)
    template_sha256: str | None
    finish_reason: str | None
    latency_ms: float  # the request that answered (retries excluded)
    attempts: int  # requests made, the answering one included
    endpoint: str | None  # base URL the request went to; None for offline providers


@dataclass(frozen=True)
class Answer:
    text: str
    citations: tuple[int, ...]  # passage numbers [n] the text cites, 1-based, ascending, each within the context
    metadata: ModelMetadata


@dataclass(frozen=True)
class OutputSchema:
    """Ask the model for one JSON object of this JSON Schema (a judge's verdict). Providers send it through their
    structured-output option; the caller still validates what comes back, since not every server enforces it."""

    name: str  # OpenAI wants a name for the schema: letters, digits, _ and -
    schema: Mapping[str, Any]


class Provider(Protocol):
    @property
    def name(self) -> str: ...

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
        """`graded` is the answer a judge template grades (rendered as its $answer); `output` asks for JSON."""
        ...


def citations_in(text: str, passages: int) -> tuple[int, ...]:
    """The valid passage numbers cited as [n] or [n, m]; numbers outside 1..passages are not citations."""
    found = {int(n) for group in _CITATION.findall(text) for n in group.split(",")}
    return tuple(sorted(n for n in found if 1 <= n <= passages))


# How an offline answerer says it found nothing to answer with (attest.llm.extractive's finish reasons).
NON_ANSWER_FINISH = ("no_context", "no_match")
# A model's (or a person's) way of saying the same: "The passages do not answer this", "the knowledge base
# does not say", "I cannot answer from the context".
_SAYS_UNANSWERED = re.compile(
    r"\b(?:knowledge base|passages?|context|sources?|documents?)\b[^.\n]{0,40}?"
    r"\b(?:does not|do not|doesn't|don't|cannot|can't|did not|didn't)\s+(?:answer|say|state|mention|contain|cover)"
    r"|\bnothing to quote\b|^\s*i (?:do not|don't|cannot|can't) (?:know|answer)",
    re.IGNORECASE,
)


def non_answer(answer: Answer, retrieved: int) -> str | None:
    """Why `answer` answers nothing worth a bond (None when it does answer): no passage was retrieved, or the
    answer itself says the passages do not answer the question."""
    if retrieved == 0:
        return "retrieval found no passage for the question"
    if answer.metadata.finish_reason in NON_ANSWER_FINISH or _SAYS_UNANSWERED.search(answer.text[:300]):
        return "the answer says the knowledge base does not answer the question"
    return None


def model_metadata_for_record(answer: Answer) -> dict[str, Any]:
    """The record's `model` and `prompt` fields for this answer, as plain JSON data (see attest.record.model)."""
    meta = answer.metadata
    prompt = (
        {"template": meta.template, "template_sha256": meta.template_sha256}
        if meta.template is not None and meta.template_sha256 is not None
        else None
    )
    return {
        "model": {
            "provider": meta.provider,
            "requested_model": meta.requested_model,
            "returned_model": meta.returned_model or None,
            "system_fingerprint": meta.system_fingerprint or None,
            "response_id": meta.response_id or None,
            "params": {
                "temperature": meta.params.temperature,
                "top_p": meta.params.top_p,
                "max_tokens": meta.params.max_tokens,
                "seed": meta.params.seed,
            },
            "usage": (
                {"input_tokens": meta.usage.input_tokens, "output_tokens": meta.usage.output_tokens}
                if meta.usage is not None
                else None
            ),
            "license": meta.license or None,
            "sdk": {"name": meta.sdk.name, "version": meta.sdk.version} if meta.sdk is not None else None,
        },
        "prompt": prompt,
    }


# -- bounded retries ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class RetryPolicy:
    """Our retries, not the SDK's (SDKs get max_retries=0), so the count and the waits are ours to bound."""

    attempts: int = 4  # requests in all, the first included
    backoff_s: float = 0.5  # the first wait's ceiling; it doubles for each retry
    max_backoff_s: float = 8.0  # no wait is longer, whatever a Retry-After header asks
    timeout_s: float = 60.0  # per request

    def __post_init__(self) -> None:
        if self.attempts < 1 or self.backoff_s < 0 or self.max_backoff_s < 0 or self.timeout_s <= 0:
            raise ModelError("retry policy needs attempts >= 1, non-negative backoff and a positive timeout")

    def delay(self, retry: int, retry_after_s: float | None = None) -> float:
        """The wait before retry number `retry` (from 1): the server's Retry-After if given, else exponential
        backoff with jitter in the upper half of the ceiling; never more than `max_backoff_s`."""
        if retry_after_s is not None:
            return min(self.max_backoff_s, max(0.0, retry_after_s))
        ceiling = min(self.max_backoff_s, self.backoff_s * 2.0 ** (retry - 1))
        return ceiling / 2 + random.uniform(0, ceiling / 2)


class Retryable(Exception):
    """A failure worth another attempt (429, 5xx, timeout, connection). Internal to the retry loop."""

    def __init__(self, kind: type[RateLimited] | type[ProviderUnavailable], detail: str, retry_after_s: float | None):
        super().__init__(detail)
        self.kind = kind
        self.detail = detail
        self.retry_after_s = retry_after_s


@dataclass(frozen=True)
class Sent(Generic[T]):
    result: T
    attempts: int
    latency_ms: float


def call_with_retries(send: Callable[[], T], policy: RetryPolicy, provider: str) -> Sent[T]:
    """`send()` until it returns, raises a non-retryable error, or `policy.attempts` requests have failed."""
    failure: Retryable | None = None
    for attempt in range(1, policy.attempts + 1):
        if failure is not None:
            wait = policy.delay(attempt - 1, failure.retry_after_s)
            log.info(
                "%s: %s; retrying in %.2fs (attempt %d of %d)", provider, failure.detail, wait, attempt, policy.attempts
            )
            time.sleep(wait)
        started = time.perf_counter()
        try:
            result = send()
        except Retryable as err:
            failure = err
            continue
        return Sent(result, attempt, round((time.perf_counter() - started) * 1000, 3))
    assert failure is not None
    raise _gave_up(provider, failure, policy.attempts)


def _gave_up(provider: str, failure: Retryable, attempts: int) -> ModelError:
    tried = f"{attempts} attempt{'s' if attempts != 1 else ''}"
    if failure.kind is RateLimited:
        return RateLimited(
            f"{provider} kept rate-limiting requests ({failure.detail}) after {tried}; "
            "wait a minute and retry, or check your plan's rate limits and quota"
        )
    return ProviderUnavailable(
        f"{provider} is unavailable ({failure.detail}) after {tried}; retry later, "
        "or check the base URL and the provider's status page"
    )


def failure_for_status(
    provider: str,
    status: int,
    *,
    model: str,
    key_env: str,
    detail: str,
    retry_after_s: float | None = None,
    too_long: bool = False,
) -> ModelError | Retryable:
    """Our error for an HTTP error status. `detail` must already be scrubbed of the key."""
    if status in (401, 403):
        # Server text is left out on purpose: providers echo part of the rejected key in it.
        return RejectedKey(
            f"{provider} rejected the API key (HTTP {status}); check {key_env} (a valid key with access to {model!r})"
        )
    if status == 429:
        return Retryable(RateLimited, "HTTP 429", retry_after_s)
    if status == 408 or status >= 500:
        return Retryable(ProviderUnavailable, f"HTTP {status}", retry_after_s)
    if too_long:
        return QueryTooLong(
            f"{provider} says the prompt does not fit {model!r} (HTTP {status}: {detail}); "
            "shorten the query or retrieve fewer passages"
        )
    if status == 404:
        return ModelError(f"{provider} does not know model {model!r} (HTTP 404: {detail}); check the model name")
    return ModelError(f"{provider} refused the request (HTTP {status}: {detail}); check the model and parameters")


def retry_after_seconds(headers: Any) -> float | None:
    """Retry-After (seconds) or retry-after-ms from response headers; None when absent or not a number."""
    try:
        if (ms := headers.get("retry-after-ms")) is not None:
            return float(ms) / 1000
        if (seconds := headers.get("retry-after")) is not None:
            return float(seconds)
    except (TypeError, ValueError):
        pass  # an HTTP date or garbage: fall back to our own backoff
    return None


def public_url(url: str) -> str:
    """A base URL fit to show and keep: any user:password@ and query string removed."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        port, parts = None, None
    host = parts.hostname if parts is not None else None
    if parts is None or parts.scheme not in ("http", "https") or not host:
        # The URL itself stays out of the message: it may carry credentials.
        raise ModelError("the model base URL is not an http(s) URL with a host; fix base_url")
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{host}:{port}" if port else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", "")).rstrip("/")


def text_or_none(value: object) -> str | None:
    """A response field as the record takes it: a non-empty string, or None."""
    return value if isinstance(value, str) and value else None


def is_count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_SAFE_INT


def scrub(text: str, secret: str | None, limit: int = 300) -> str:
    """Provider-supplied text made safe to show: the secret removed, one line, bounded length."""
    if secret:
        text = text.replace(secret, "***")
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
