"""The pieces of an answer both `attest ask` and a long-running server (attest/flow/attester.py) use: which
provider answers, an answer produced elsewhere, and the signed record of an answer."""

from __future__ import annotations

from datetime import UTC, datetime

from eth_account.signers.local import LocalAccount

from attest.config import Config
from attest.context import RetrievedChunk
from attest.errors import KbError
from attest.llm.base import Answer, ModelMetadata, SentParams, citations_in, model_metadata_for_record
from attest.llm.registry import AUTO, Budgeted, default_provider_name, get_provider, provider_spec
from attest.record.codec import sign_and_encode
from attest.record.model import validate_record

ANSWER_TEMPLATE = "rag-answer@1"


def provider_for(name: str | None, model: str | None, config: Config) -> tuple[Budgeted, str]:
    """The provider `name` (else the configured one) and the model it is asked for. The config's base URL, key
    and budget apply only to the configured provider."""
    llm = config.llm
    chosen = name or (default_provider_name() if llm.provider == AUTO else llm.provider)
    same_as_config = chosen == llm.provider or (llm.provider == AUTO and name is None)
    provider = get_provider(
        chosen,
        base_url=llm.base_url if same_as_config else None,
        api_key=llm.api_key() if same_as_config else None,
        budget_tokens=llm.budget_tokens if same_as_config else None,
    )
    return provider, model or (llm.model if same_as_config else None) or provider_spec(chosen).default_model


def check_query(query: str) -> None:
    if not query.strip():
        raise KbError('the question is empty; ask something, such as `attest ask "What does EIP-1559 burn?"`')
    try:
        query.encode("utf-8")
    except UnicodeEncodeError:
        # Python decodes argv bytes that are not UTF-8 to lone surrogates, which no record, prompt or claim can carry.
        raise KbError("the question is not valid UTF-8 text; retype it (check the terminal's encoding)") from None


def external_answer(text: str, model: str | None, chunks: list[RetrievedChunk]) -> tuple[Answer, str]:
    """An answer produced elsewhere, recorded with provider "external"."""
    name = model or "unknown"
    metadata = ModelMetadata(
        provider="external", requested_model=name, returned_model=None, system_fingerprint=None,
        response_id=None, params=SentParams(None, None, None, None), usage=None, license=None, sdk=None,
        template=None, template_sha256=None, finish_reason=None, latency_ms=0.0, attempts=0, endpoint=None,
    )  # fmt: skip
    stripped = text.strip()
    if not stripped:
        raise KbError("--answer is empty; give the answer text to attest")
    return Answer(stripped, citations_in(stripped, len(chunks)), metadata), f"external ({name})"


def signed_record(
    query: str, answer: Answer, chunks: list[RetrievedChunk], corpus: str | None, account: LocalAccount
) -> tuple[bytes, str]:
    """The record's pinned bytes and its digest, signed by `account` (the asserter)."""
    record = validate_record(
        {
            "schema": "llm-attest/record/v1",
            "query": query,
            "answer": answer.text,
            "context": [_context_entry(c) for c in chunks],
            "corpus": corpus,
            **model_metadata_for_record(answer),
            "created_at": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
            "asserter": account.address,
        }
    )
    data, digest = sign_and_encode(record, account)
    return data, "0x" + digest.hex()


def _context_entry(chunk: RetrievedChunk) -> dict[str, object]:
    return {
        "source": chunk.source,
        "doc_cid": chunk.doc_cid,
        "chunk_index": chunk.chunk_index,
        "text": chunk.text,
        "sha256": chunk.sha256,
    }
