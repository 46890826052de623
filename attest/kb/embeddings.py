"""Optional dense retrieval: an OpenAI-compatible embeddings client, filling the KB's vectors, hybrid search.

Off by default: nothing here runs unless the user asks for embeddings. Any server that speaks `/v1/embeddings`
works (OpenAI, vLLM, llama.cpp, Ollama, LiteLLM) through `base_url`.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import replace
from typing import Protocol

import openai

from attest.context import RetrievedChunk
from attest.errors import KbError, MissingKey, ModelError, ProviderUnavailable, RateLimited, RejectedKey
from attest.kb.fusion import cosine_top_k, reciprocal_rank_fusion
from attest.kb.store import KnowledgeBase

DEFAULT_BATCH_SIZE = 128
DEFAULT_TIMEOUT_S = 60.0
DEFAULT_MAX_RETRIES = 3


class Embedder(Protocol):
    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        """One vector per text, in order."""
        ...


class OpenAIEmbedder:
    """The official `openai` SDK against any OpenAI-compatible `/embeddings` endpoint.

    Retries on 408/409/429/5xx and connection errors are the SDK's: at most `max_retries` more attempts with
    exponential backoff, honouring `Retry-After`. What still fails becomes one of our `ModelError`s, whose
    messages never contain the key.
    """

    def __init__(
        self,
        model: str,
        *,
        base_url: str | None = None,
        api_key: str | None = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        max_retries: int = DEFAULT_MAX_RETRIES,
        dimensions: int | None = None,
    ) -> None:
        if batch_size < 1:
            raise ModelError(f"the embedding batch size must be at least 1, not {batch_size}")
        key = api_key or os.environ.get("OPENAI_API_KEY", "")
        if not key:
            raise MissingKey(
                "embeddings need an API key: set OPENAI_API_KEY (any non-empty value for a local server that "
                "ignores keys) or pass one"
            )
        self.model = model
        self.batch_size = batch_size
        self.dimensions = dimensions
        self.max_retries = max_retries
        self._key = key
        self._client = openai.OpenAI(api_key=key, base_url=base_url, timeout=timeout_s, max_retries=max_retries)

    @property
    def endpoint(self) -> str:
        return str(self._client.base_url).rstrip("/") + "/embeddings"

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        vectors: list[list[float]] = []
        for start in range(0, len(texts), self.batch_size):
            vectors += self._embed_batch(texts[start : start + self.batch_size])
        if vectors and len({len(v) for v in vectors}) != 1:
            raise ModelError(f"{self.endpoint} returned vectors of different lengths for model {self.model!r}")
        return vectors

    def _embed_batch(self, batch: Sequence[str]) -> list[list[float]]:
        try:
            # "float" explicitly: the SDK would ask for base64, which several compatible servers do not implement.
            response = self._client.embeddings.create(
                model=self.model,
                input=list(batch),
                encoding_format="float",
                dimensions=openai.omit if self.dimensions is None else self.dimensions,
            )
        except openai.APIStatusError as e:
            raise self._status_error(e) from None
        except openai.APITimeoutError:
            raise ProviderUnavailable(
                f"{self.endpoint} timed out {self.max_retries + 1} times; retry later or raise the timeout"
            ) from None
        except openai.APIConnectionError:
            raise ProviderUnavailable(
                f"cannot connect to {self.endpoint} after {self.max_retries + 1} attempts; check base_url and that "
                "the server is up"
            ) from None
        data = sorted(response.data, key=lambda item: item.index)
        if [item.index for item in data] != list(range(len(batch))):
            raise ModelError(f"{self.endpoint} returned {len(data)} vectors for {len(batch)} inputs")
        vectors = [list(item.embedding) for item in data]
        for vector in vectors:
            if not vector or not all(math.isfinite(x) for x in vector):
                raise ModelError(f"{self.endpoint} returned an empty or non-finite vector for model {self.model!r}")
        return vectors

    def _status_error(self, e: openai.APIStatusError) -> ModelError:
        status = e.status_code
        if status in (401, 403):
            return RejectedKey(
                f"{self.endpoint} refused the API key (HTTP {status}); check OPENAI_API_KEY or the key passed"
            )
        if status == 429:
            return RateLimited(
                f"{self.endpoint} kept answering 429 (rate limited) after {self.max_retries} retries; wait, or "
                "lower the batch size"
            )
        if status >= 500:
            return ProviderUnavailable(
                f"{self.endpoint} kept failing (HTTP {status}) after {self.max_retries} retries; retry later"
            )
        # 400/404/422 carry the useful part (unknown model, input too long); a server may echo the key back.
        detail = str(e.message).replace(self._key, "***")[:500]
        return ModelError(f"{self.endpoint} rejected the request for model {self.model!r} (HTTP {status}): {detail}")


def embed_missing(kb: KnowledgeBase, embedder: Embedder, model: str, group: int = 512) -> int:
    """Embed every chunk that has no vector under `model` and store the vectors; the number embedded.

    Vectors are stored `group` chunks at a time, so an interrupted run keeps what was already paid for and
    the next run picks up the rest.
    """
    pending = kb.chunks_without_embedding(model)
    for start in range(0, len(pending), group):
        rows = pending[start : start + group]
        vectors = embedder.embed([text for _, text in rows])
        if len(vectors) != len(rows):
            raise KbError(f"the embedder returned {len(vectors)} vectors for {len(rows)} chunks")
        kb.store_embeddings(model, [(chunk_id, vector) for (chunk_id, _), vector in zip(rows, vectors, strict=True)])
    return len(pending)


def hybrid_search(
    kb: KnowledgeBase, embedder: Embedder, model: str, query: str, k: int = 5, candidates: int = 50
) -> list[RetrievedChunk]:
    """The top `k` chunks by reciprocal rank fusion of BM25 and cosine similarity to the embedded query.

    Each side contributes its best `candidates`; `score` on the results is the fused score. `model` names the
    stored vectors and must be the model `embedder` uses. BM25 breaks ties.
    """
    if k < 1:
        raise KbError(f"k must be at least 1 (got {k})")
    stored = kb.embeddings(model)
    if not stored:
        raise KbError(f"the knowledge base has no {model!r} embeddings; embed it first, or search without them")
    depth = max(candidates, k)
    lexical = kb.search(query, k=depth)
    [query_vector] = embedder.embed([query])
    nearest = cosine_top_k(query_vector, stored, depth)
    # Search results carry no chunk ids, so both sides are keyed by what names a chunk: document CID and index.
    chunks: dict[tuple[str, int], RetrievedChunk] = {}
    keys: dict[tuple[str, int], int] = {}
    rankings: list[list[int]] = [[], []]
    for side, found in ((0, lexical), (1, [kb.chunk(chunk_id) for chunk_id, _ in nearest])):
        for chunk in found:
            key = (chunk.doc_cid, chunk.chunk_index)
            chunks.setdefault(key, chunk)
            rankings[side].append(keys.setdefault(key, len(keys)))
    by_number = {number: key for key, number in keys.items()}
    fused = reciprocal_rank_fusion(rankings)[:k]
    return [replace(chunks[by_number[number]], score=score) for number, score in fused]
