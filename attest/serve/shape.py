"""The OpenAI Chat Completions wire format: the models served, a request read into a query, a completion and its
stream chunks, each carrying the attestation of the record behind it. Pure."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from attest.config import Config
from attest.context import RetrievedChunk
from attest.flow.ask import AskResult
from attest.llm.extractive import EXTRACTIVE_MODEL
from attest.llm.registry import AUTO, default_provider_name, estimate_tokens, provider_spec
from attest.serve.errors import ApiError

STREAM_PIECE = 24  # characters per streamed delta: the answer exists whole (it is signed) before it is streamed


@dataclass(frozen=True)
class ServedModel:
    id: str
    provider: str
    model: str


def served_models(config: Config) -> dict[str, ServedModel]:
    """The offline extractive model always, and the configured provider's model; the first is the default."""
    name = default_provider_name() if config.llm.provider == AUTO else config.llm.provider
    models: dict[str, ServedModel] = {}
    if name != "extractive":
        model = config.llm.model or provider_spec(name).default_model
        models[model] = ServedModel(model, name, model)
    models["extractive"] = ServedModel("extractive", "extractive", EXTRACTIVE_MODEL)
    return models


def read_json(body: bytes) -> dict[str, Any]:
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):
        raise ApiError(400, "the request body is not valid JSON; send a JSON object", code="invalid_json") from None
    if not isinstance(data, dict):
        raise ApiError(400, "the request body must be a JSON object", code="invalid_json")
    return data


def text_field(data: dict[str, Any], name: str, *, required: bool = True) -> str | None:
    value = data.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value.strip():
        raise ApiError(400, f"`{name}` must be a non-empty string", param=name, code="invalid_value")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:  # JSON may spell lone surrogates (\ud800), which no record can carry
        raise ApiError(400, f"`{name}` is not valid Unicode text", param=name, code="invalid_value") from None
    return value


def last_user_message(data: dict[str, Any]) -> str:
    """The query: the text of the last message with role "user" (string content, or its text parts)."""
    messages = data.get("messages")
    if not isinstance(messages, list) or not messages:
        raise ApiError(400, "`messages` must be a non-empty list", param="messages", code="invalid_value")
    for message in reversed(messages):
        if isinstance(message, dict) and message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, list):  # [{"type": "text", "text": ...}, ...]
                content = "\n".join(
                    p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text"
                )
            return str(text_field({"content": content}, "content"))
    raise ApiError(400, '`messages` holds no message with role "user"', param="messages", code="invalid_value")


def usage(result: AskResult, query: str, chunks: list[RetrievedChunk]) -> dict[str, int]:
    """The provider's token counts when it reports them, else an estimate of characters / 4 (the rule the
    budget check uses): the query with the passages the model read, and the answer."""
    if result.usage is not None:
        prompt, completion = result.usage.input_tokens, result.usage.output_tokens
    else:
        prompt = estimate_tokens(query + "".join(c.text for c in chunks))
        completion = estimate_tokens(result.answer)
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def attestation(result: AskResult, mode: str) -> dict[str, Any]:
    """What the record behind an answer is and where it stands; `verify` is the command anyone can run."""
    a = result.attestation
    target = a.assertion_id or a.cid
    return {
        "id": a.id,
        "record_cid": a.cid,
        "digest": a.digest,
        "network": a.network,
        "mode": mode,
        "status": a.status,
        "assertion_id": a.assertion_id,
        "batch_id": a.batch_id,
        "not_asserted": result.not_asserted,
        "status_url": f"/v1/attestations/{a.id}",
        "verify": f"attest verify {target}",
    }


def completion(result: AskResult, model: str, query: str, mode: str) -> dict[str, Any]:
    return {
        "id": f"chatcmpl-attest-{result.attestation.id}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": result.answer, "refusal": None},
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": usage(result, query, result.chunks),
        "attestation": attestation(result, mode),
    }


def stream(result: AskResult, model: str, query: str, mode: str) -> Iterator[str]:
    """Server-sent events: the role, the answer in pieces, then a last chunk with finish_reason, usage and the
    attestation; then `[DONE]`."""
    base = {"id": f"chatcmpl-attest-{result.attestation.id}", "object": "chat.completion.chunk",
            "created": int(time.time()), "model": model}  # fmt: skip

    def event(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> str:
        chunk = {**base, "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}], **extra}
        return f"data: {json.dumps(chunk, ensure_ascii=False)}\n\n"

    yield event({"role": "assistant", "content": ""})
    text = result.answer
    for start in range(0, len(text), STREAM_PIECE):
        yield event({"content": text[start : start + STREAM_PIECE]})
    yield event({}, "stop", usage=usage(result, query, result.chunks), attestation=attestation(result, mode))
    yield "data: [DONE]\n\n"
