"""The offline provider: no model, no network. It answers by quoting the sentences of the top passages that share
the most (rarer) words with the query, each with its [n] citation. Same input, same answer, byte for byte.

It is recorded as provider "extractive", model "extractive-v1", so nobody mistakes a quote for a model's answer.
It renders no prompt, so the record's `prompt` is null.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass

from attest import __version__
from attest.context import RetrievedChunk
from attest.errors import ModelError
from attest.llm.base import Answer, GenerationParams, ModelMetadata, OutputSchema, SdkInfo, SentParams
from attest.prompts.catalog import Template
from attest.text import STOPWORDS, strip_markup

EXTRACTIVE_MODEL = "extractive-v1"
LICENSE = "AGPL-3.0-or-later"  # extractive-v1 is llm-attest's own code
HEADER = "The retrieved passages say:"
NO_CONTEXT = "No passages were retrieved, so there is nothing to quote. Add documents to the knowledge base first."
NO_MATCH = "None of the retrieved passages shares a word with the question, so there is nothing to quote."
_WORD = re.compile(r"\w+")
# A sentence ends at . ! or ? followed by a capital or an opening mark, so "i.e. the" stays whole.
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(\[*`])")
_MIN_WORDS = 3
_MAX_QUOTE_CHARS = 320
_MIN_QUOTE_CHARS = 40
_LENGTH_DAMPING = 0.5


@dataclass(frozen=True)
class _Sentence:
    passage: int  # 1-based, as cited
    position: int
    text: str
    words: frozenset[str]


class ExtractiveProvider:
    name = "extractive"

    def __init__(self, *, top_passages: int = 3, max_quotes: int = 3) -> None:
        if top_passages < 1 or max_quotes < 1:
            raise ModelError("the extractive provider needs top_passages >= 1 and max_quotes >= 1")
        self.top_passages = top_passages
        self.max_quotes = max_quotes

    def __repr__(self) -> str:
        return f"ExtractiveProvider(top_passages={self.top_passages}, max_quotes={self.max_quotes})"

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
        """Quotes from `chunks` (taken in the retriever's order). `template` is not used: no model reads it.
        It quotes; it cannot grade, so a request for structured output (a judge's) is refused."""
        if output is not None or graded is not None:
            raise ModelError(
                "the extractive provider quotes passages and cannot grade answers; judge with the offline "
                "grounding judge or configure a model provider"
            )
        if params.model != EXTRACTIVE_MODEL:
            raise ModelError(f"the extractive provider has one model, {EXTRACTIVE_MODEL}, not {params.model!r}")
        started = time.perf_counter()
        text, citations, finish_reason = self._quote(query, chunks, params.max_tokens)
        latency_ms = round((time.perf_counter() - started) * 1000, 3)
        return Answer(
            text=text,
            # From the quotes chosen, not parsed from the text: a quoted sentence may itself contain "[2]".
            citations=citations,
            metadata=ModelMetadata(
                provider="extractive",
                requested_model=EXTRACTIVE_MODEL,
                returned_model=EXTRACTIVE_MODEL,
                system_fingerprint=None,
                response_id=None,
                # Recorded as requested; sampling settings cannot change a deterministic quote, max_tokens bounds it.
                params=SentParams(params.temperature, params.top_p, params.max_tokens, params.seed),
                usage=None,
                license=LICENSE,
                sdk=SdkInfo("llm-attest", __version__),
                template=None,
                template_sha256=None,
                finish_reason=finish_reason,
                latency_ms=latency_ms,
                attempts=1,
                endpoint=None,
            ),
        )

    def _quote(
        self, query: str, chunks: Sequence[RetrievedChunk], max_tokens: int | None
    ) -> tuple[str, tuple[int, ...], str]:
        if not chunks:
            return NO_CONTEXT, (), "no_context"
        sentences = [s for n, chunk in enumerate(chunks[: self.top_passages], start=1) for s in _sentences(n, chunk)]
        wanted = _terms(query)
        # Rarer words weigh more: a word in every sentence says little about which one answers.
        frequency = {w: sum(1 for s in sentences if w in s.words) for w in wanted}
        weight = {w: math.log(1 + len(sentences) / df) for w, df in frequency.items() if df}
        # Long sentences match more words by chance; damp that as BM25 does (b = 0.5 against the mean length),
        # without rewarding fragments for being short.
        mean_length = sum(len(s.words) for s in sentences) / max(len(sentences), 1)
        scored = [
            (
                round(
                    sum(weight.get(w, 0.0) for w in sorted(s.words & wanted))
                    / max(1.0, 1 - _LENGTH_DAMPING + _LENGTH_DAMPING * len(s.words) / mean_length),
                    9,
                ),
                s,
            )
            for s in sentences
        ]
        ranked = sorted(
            ((score, s) for score, s in scored if score > 0),
            key=lambda pair: (-pair[0], pair[1].passage, pair[1].position),
        )
        if not ranked:
            return NO_MATCH, (), "no_match"
        budget = max_tokens * 4 if max_tokens is not None else None  # the chars-per-token estimate budgets use
        lines = [HEADER]
        cited: set[int] = set()
        for _, sentence in ranked:
            if len(lines) - 1 >= self.max_quotes:
                break
            if any(f'"{sentence.text}"' in line for line in lines):
                continue
            limit = _MAX_QUOTE_CHARS
            if budget is not None:
                room = budget - len("\n".join(lines)) - len(f'\n- "" [{sentence.passage}]')
                if room < _MIN_QUOTE_CHARS:
                    if len(lines) > 1:
                        break
                    room = _MIN_QUOTE_CHARS  # one short quote beats an empty answer
                limit = min(limit, room)
            lines.append(f'- "{_shorten(sentence.text, limit)}" [{sentence.passage}]')
            cited.add(sentence.passage)
        return "\n".join(lines), tuple(sorted(cited)), "stop"


def _terms(text: str) -> frozenset[str]:
    words = {w for w in _WORD.findall(text.casefold()) if len(w) > 1 or w.isdigit()}
    meaningful = words - STOPWORDS
    return frozenset(meaningful or words)


def _sentences(passage: int, chunk: RetrievedChunk) -> list[_Sentence]:
    found: list[_Sentence] = []
    in_code = False
    for raw_line in chunk.text.splitlines():
        line = raw_line.strip()
        if line.startswith(("```", "~~~")):
            in_code = not in_code
            continue
        if in_code or not line or line.startswith("|") or set(line) <= set("-=*_ "):
            continue
        for piece in _SENTENCE_END.split(strip_markup(line)):
            piece = piece.strip()
            if len(_WORD.findall(piece)) >= _MIN_WORDS:
                found.append(_Sentence(passage, len(found), piece, _terms(piece)))
    return found


def _shorten(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    cut = text[: limit - 1].rsplit(" ", 1)[0]
    return cut + "…"
