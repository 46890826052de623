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
from attest.text import STOPWORDS, document_stem, named_documents, strip_markup

EXTRACTIVE_MODEL = "extractive-v1"
LICENSE = "AGPL-3.0-or-later"  # extractive-v1 is llm-attest's own code
HEADER = "The retrieved passages say:"
NOT_ANSWERED = "The knowledge base does not answer this"
NO_CONTEXT = f"{NOT_ANSWERED}: no passage in it matches the question."
NO_MATCH = f"{NOT_ANSWERED}: no retrieved passage states what the question asks."
_WORD = re.compile(r"\w+")
# A sentence ends at . ! or ? followed by a capital or an opening mark, so "i.e. the" stays whole.
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(\[*`])")
_WHOLE_END = re.compile(r"[.!?][\"')`*]*$")  # a sentence that ends where its writer ended it
_FRONT_MATTER_KEY = re.compile(r"^[a-z][a-z0-9_-]*:(\s|$)")  # "title: …", "discussions-to: …"
_LINK = re.compile(r"!?\[([^\]]*)\]\([^)]*\)")  # [text](url): its text is what a reader reads
_BOLD = re.compile(r"\*\*([A-Za-z][^*`]*?)\*\*(?!\w)")  # **MUST**, but not the 10**9 of an expression
_URL = re.compile(r"https?://|\]:\s")
_LIST_ITEM = re.compile(r"^(?:[-*+]|\d+[.)])\s+")
# Code is quoted only when the question asks for it: otherwise a comment in it ("check if the base fee is
# correct") matches the question's words without saying anything.
_ASKS_FOR_CODE = frozenset({"code", "pseudocode", "implementation", "snippet", "example", "python", "solidity"})
_DOCUMENT_WORDS = frozenset({"eip", "erc"})  # "EIP-1559" names a document: its passages, not its words, answer
_MIN_WORDS = 4
_NAME = re.compile(r"[A-Za-z][\w]*")
_IDENTIFIER = re.compile(r"[A-Za-z]*[A-Z][a-z]*[A-Z0-9_][\w]*|[A-Z]{2,}")  # PUSH0, TSTORE, ModExp, EL
_MIN_COVERAGE = 0.5  # the share of the question's key terms a sentence must hold to count as answering it
_MAX_QUOTE_CHARS = 400
_MIN_QUOTE_CHARS = 40
_LENGTH_DAMPING = 0.5
_OPENING_WORDS = 3
_SUBJECT_BONUS = 1.25
_SUMMARY_BONUS = 1.5
_TITLE_BONUS = 2.0
_SUMMARY_HEADING = re.compile(r"(?:simple )?(?:summary|abstract)\s*$", re.IGNORECASE)


@dataclass(frozen=True)
class _Sentence:
    passage: int  # 1-based, as cited
    position: int
    text: str
    words: frozenset[str]
    section: frozenset[str]  # the words of its passage's heading path: what the sentence is about
    summary: bool = False  # under an "Abstract" or "Summary" heading: the document's own short account


class ExtractiveProvider:
    name = "extractive"

    def __init__(self, *, top_passages: int = 5, max_quotes: int = 3) -> None:
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
        named = named_documents(query)
        entities = _entities(query)
        passages = list(enumerate(chunks, start=1))
        if any(not any(_mentions(c, e) for _, c in passages) for e in entities):
            # "What is the capital of France?": no passage names France, so none is about it, whatever else
            # ("capital efficiency") they share with the question.
            return NO_MATCH, (), "no_match"
        if entities:
            # The passages of a document titled by what the question names ("DELEGATECALL", "Skinny CREATE2")
            # first, then those that name it, each in the retriever's order.
            passages = sorted(passages, key=lambda p: (not _titled(p[1], entities), not _names_all(p[1], entities)))
        top = passages[: self.top_passages]
        if named:
            # A question about EIP-1559 is answered by EIP-1559's text or not at all: another EIP that mentions
            # it answers a different question. A named document missing from the passages is not answered.
            top = [(n, c) for n, c in top if document_stem(c.source) in named]
        with_code = not _ASKS_FOR_CODE.isdisjoint(_WORD.findall(query.casefold()))
        sentences = [s for n, chunk in top for s in _sentences(n, chunk.text, with_code, chunk.heading_path)]
        wanted = _terms(query) - _DOCUMENT_WORDS - {name.split("-", 1)[1] for name in named}
        if not wanted and named:
            # "What is EIP-4844?": the named document's own first sentences, in the retriever's order.
            ranked = sorted(sentences, key=lambda s: (s.passage, s.position))
        else:
            titled = frozenset(n for n, c in top if _titled(c, entities))
            if entities:
                # A sentence about what the question names says it, or sits in the document titled by it.
                sentences = [s for s in sentences if s.passage in titled or _says_any(s.text, entities)]
            ranked = _rank(sentences, wanted, titled)
        if not ranked:
            return NO_MATCH, (), "no_match"
        return self._render(ranked, max_tokens)

    def _render(self, ranked: list[_Sentence], max_tokens: int | None) -> tuple[str, tuple[int, ...], str]:
        budget = max_tokens * 4 if max_tokens is not None else None  # the chars-per-token estimate budgets use
        lines = [HEADER]
        cited: set[int] = set()
        quoted: set[str] = set()
        # Whole sentences only: one too long for the room left is skipped for a shorter one, and cut (marked
        # "…") only when nothing at all would fit otherwise.
        for sentence in ranked:
            if len(lines) - 1 >= self.max_quotes:
                break
            if sentence.text in quoted:
                continue
            limit = _MAX_QUOTE_CHARS
            if budget is not None:
                limit = min(limit, budget - len("\n".join(lines)) - len(f'\n- "" [{sentence.passage}]'))
            if len(sentence.text) > limit:
                continue
            lines.append(f'- "{sentence.text}" [{sentence.passage}]')
            cited.add(sentence.passage)
            quoted.add(sentence.text)
        if len(lines) == 1:
            best = ranked[0]
            room = _MAX_QUOTE_CHARS if budget is None else budget - len(HEADER) - len(f'\n- "" [{best.passage}]')
            lines.append(f'- "{_shorten(best.text, max(room, _MIN_QUOTE_CHARS))}" [{best.passage}]')
            cited.add(best.passage)
        return "\n".join(lines), tuple(sorted(cited)), "stop"


def _rank(sentences: list[_Sentence], wanted: frozenset[str], titled: frozenset[int] = frozenset()) -> list[_Sentence]:
    """The sentences holding enough of `wanted`, the most direct first: more of the question's key terms, then
    rarer ones in fewer words (BM25-like length damping), then the retriever's order. Sentences of the `titled`
    passages (of a document whose title names what the question names) weigh more."""
    if not wanted:
        return []
    # Rarer words weigh more: a word in every sentence says little about which one answers.
    frequency = {w: sum(1 for s in sentences if w in s.words) for w in wanted}
    weight = {w: math.log(1 + len(sentences) / df) for w, df in frequency.items() if df}
    mean_length = sum(len(s.words) for s in sentences) / max(len(sentences), 1)
    scored = []
    for s in sentences:
        held = s.words & wanted
        # A term in the section's headings counts for coverage: a sentence under "Simple replay attack
        # protection" is about replay attacks without repeating the words.
        coverage = len((s.words | s.section) & wanted) / len(wanted)
        if coverage < _MIN_COVERAGE:
            continue
        # Shorter is more direct (BM25-like damping against the mean length), and so is a sentence whose subject
        # is what the question asks about ("The base fee is burned." for a question on the base fee).
        damping = 1 - _LENGTH_DAMPING + _LENGTH_DAMPING * len(s.words) / mean_length
        opening = {_stem(w) for w in _WORD.findall(s.text.casefold())[:_OPENING_WORDS]}
        subject = _SUBJECT_BONUS if opening & wanted else 1.0
        summary = _SUMMARY_BONUS if s.summary else 1.0
        title = _TITLE_BONUS if s.passage in titled else 1.0
        score = round(sum(weight.get(w, 0.0) for w in sorted(held)) * subject * summary * title / damping, 9)
        scored.append((-round(coverage, 6), -score, s.passage, s.position, s))
    if any(entry[1] < 0 for entry in scored):  # some sentence says a key term itself: those answer first
        scored = [entry for entry in scored if entry[1] < 0]
    return [entry[-1] for entry in sorted(scored, key=lambda e: e[:4])]


def _entities(query: str) -> frozenset[str]:
    """What the question names: opcodes and identifiers (PUSH0, DELEGATECALL, ModExp) and capitalised words past
    its first (France), but not the documents it names (EIP-1559), which are matched by file."""
    words = _NAME.findall(query)
    found = {w for w in words[1:] if w[0].isupper()} | {w for w in words if _IDENTIFIER.fullmatch(w)}
    return frozenset(w for w in found if w.casefold() not in _DOCUMENT_WORDS and w.casefold() not in STOPWORDS)


def _mentions(chunk: RetrievedChunk, entity: str) -> bool:
    text = chunk.text + " " + " ".join(chunk.heading_path)
    return re.search(rf"(?<!\w){re.escape(entity)}(?!\w)", text, re.IGNORECASE) is not None


def _titled(chunk: RetrievedChunk, entities: frozenset[str]) -> bool:
    title = chunk.heading_path[0] if chunk.heading_path else ""
    return any(re.search(rf"(?<!\w){re.escape(e)}(?!\w)", title, re.IGNORECASE) for e in entities)


def _says_any(text: str, entities: frozenset[str]) -> bool:
    return any(re.search(rf"(?<!\w){re.escape(e)}(?!\w)", text, re.IGNORECASE) for e in entities)


def _names_all(chunk: RetrievedChunk, entities: frozenset[str]) -> bool:
    return all(_mentions(chunk, e) for e in entities)


def _stem(word: str) -> str:
    """A rough common root of a word's forms ("fees" -> "fee", "trimmed" and "trimming" -> "trim", "introduces"
    and "introduce" -> "introduc"), so a question's word matches the passage's other form of it."""
    for suffix in ("ing", "ed", "es", "s"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3 and not word.endswith("ss"):
            word = word[: -len(suffix)]
            if len(word) > 3 and word[-1] == word[-2] and word[-1] not in "aeiouls":
                word = word[:-1]  # trimm -> trim
            break
    return word[:-1] if len(word) > 3 and word.endswith("e") else word


def _terms(text: str) -> frozenset[str]:
    words = {w for w in _WORD.findall(text.casefold()) if len(w) > 1 or w.isdigit()}
    meaningful = words - STOPWORDS
    return frozenset(_stem(w) for w in (meaningful or words))


def _paragraphs(text: str, with_code: bool, summary: bool = False) -> list[tuple[str, str, bool]]:
    """The prose of a passage as (paragraph, kind: "prose", "item" or "code"), its hard line breaks joined: no
    front matter, headings, tables, rules, link lines, nor code unless `with_code` (then each code line is one);
    and whether it sits under a summary heading (`summary`: the passage starts under one)."""
    paragraphs: list[tuple[str, str, bool]] = []
    current: list[str] = []
    kind = "prose"
    in_code = in_front = False

    def close() -> None:
        if current:
            paragraphs.append((" ".join(current), kind, summary))
            current.clear()

    for number, raw_line in enumerate(text.splitlines()):
        line = raw_line.strip()
        if line == "---" and (number == 0 or in_front):
            in_front = not in_front and number == 0
            close()
            continue
        if line.startswith(("```", "~~~")):
            in_code = not in_code
            close()
            continue
        if in_code:
            if with_code and line:
                paragraphs.append((line, "code", summary))
            continue
        if line.startswith("#"):
            close()
            summary = _SUMMARY_HEADING.match(strip_markup(line)) is not None
            continue
        if in_front or not line or line.startswith(("|", "<")) or set(line) <= set("-=*_ "):
            close()
            continue
        if _FRONT_MATTER_KEY.match(line) or (_URL.search(line) and len(_WORD.findall(_LINK.sub("", line))) < 8):
            close()  # metadata, or a line that is mostly a link
            continue
        if _LIST_ITEM.match(line) or line.startswith(">"):
            close()
            kind = "item"
        elif not current:
            kind = "prose"
        current.append(strip_markup(line))
    close()
    return paragraphs


def _sentences(passage: int, text: str, with_code: bool = False, headings: tuple[str, ...] = ()) -> list[_Sentence]:
    """Whole sentences of a passage: a piece the chunk boundary cut (starting in lower case, or the passage's
    last piece without its full stop) is not one."""
    found: list[_Sentence] = []
    section = _terms(" ".join(headings))
    paragraphs = _paragraphs(text, with_code, bool(headings) and _SUMMARY_HEADING.match(headings[-1]) is not None)
    for index, (paragraph, kind, summary) in enumerate(paragraphs):
        if kind == "code":  # asked for: a line of code is quoted as it is
            if len(_WORD.findall(paragraph)) >= 2:
                found.append(_Sentence(passage, len(found), paragraph, _terms(paragraph), section, summary))
            continue
        readable = _BOLD.sub(r"\1", _LINK.sub(r"\1", paragraph))
        pieces = [p.strip() for p in _SENTENCE_END.split(readable)]
        for position, piece in enumerate(pieces):
            last = index == len(paragraphs) - 1 and position == len(pieces) - 1
            if len(_WORD.findall(piece)) < _MIN_WORDS or piece[0].islower() or _URL.search(piece):
                continue
            if not _WHOLE_END.search(piece) and (last or kind != "item"):
                continue
            found.append(_Sentence(passage, len(found), piece, _terms(piece), section, summary))
    return found


def _shorten(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    cut = text[: limit - 1].rsplit(" ", 1)[0]
    return cut + "…"


def quotable_sentences(text: str) -> list[str]:
    """The sentences of a document this model may quote: whole prose sentences, no front matter, headings or code."""
    return [s.text for s in _sentences(1, text)]
