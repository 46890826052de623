"""grounding-v2: the offline judge that reads what an answer claims. No model, no network, same input same verdict.

grounding-v1 asks whether an answer's words are in its passages; rewording a cited sentence into its opposite
("PUSH0 is not introduced at 0x5f"), swapping its entities ("the instruction PUSH1, not PUSH0") or quoting another
EIP that shares the query's words fooled it. grounding-v2 keeps v1's lexical support and adds, per sentence of the
answer, checks against the one passage sentence the answer sentence restates (the cited sentence sharing most of
its words, with its neighbours):

- words and word order: the sentence's content words and word pairs must be in that sentence, not scattered over
  the passage, and in its order (longest common subsequence);
- negation: the answer negates exactly when the passage sentence does;
- specifics: every number, hex value, opcode and identifier (`PUSH0`, `0x5f`, 1559, base_fee_per_gas) must be in
  that passage sentence or its neighbours, so a statement about one entity cannot borrow another's words;

and, for the whole answer, responsiveness: the passages it cites come from the EIP the query names, and the
query's key terms are in the answer or the passages it cites; an answer about something else scores low.

It reads no instructions at all, which is what keeps it immune to injection, and every verdict says
"grounding-v2". It is still lexical: a faithful paraphrase in other words scores lower than a quote.
"""

from __future__ import annotations

import itertools
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass

from attest.context import RetrievedChunk
from attest.llm.base import citations_in
from attest.text import document_stem, named_documents, strip_markup
from disputer.calibration import CalibrationMap
from disputer.grounding import PAIR_WEIGHT, answer_sentences, content_words, since, stem
from disputer.judge import Verdict, check_calibration, undecided

GROUNDING_V2_JUDGE = "grounding-v2"
_CITATION = re.compile(r"\[\d{1,4}(?:\s*,\s*\d{1,4})*\]")
_PASSAGE_SENTENCE_END = re.compile(r"(?<=[.!?;])\s+")
_NEGATION = re.compile(r"\b(?:no|not|nor|never|cannot|none|neither|without)\b|n't\b", re.IGNORECASE)
# Specific tokens a claim hangs on: hex values, numbers, words mixing letters and digits (PUSH0, eip-1559's 1559),
# upper-case names (TSTORE, BASEFEE), snake_case and camelCase identifiers.
_SPECIFIC = re.compile(
    r"\b0[xX][0-9a-fA-F]+\b|\b\d[\d,]*(?:\.\d+)?\b|\b[A-Za-z]+\d\w*\b|\b[A-Z][A-Z0-9_]{2,}\b"
    r"|\b[A-Za-z]+_[A-Za-z0-9_]+\b|\b[a-z]+[A-Z]\w*\b"
)
_PLAIN_CAPS = frozenset({"MUST", "SHOULD", "MAY", "SHALL", "NOT", "REQUIRED", "RECOMMENDED", "OPTIONAL", "EIP", "ERC"})
_EIP_FILE = re.compile(r"^eip-\d+$")
# Words that say what kind of answer the query wants, not what it is about ("What does EIP-4844 introduce?").
_ASKING_TEXT = """eip erc do does work works mean means purpose change changes happen happens use used define defines
    describe describes propose proposes introduce introduces introduced add adds explain specify specifies"""
_ASKING = frozenset(stem(w) for w in _ASKING_TEXT.split())
_CONTRADICTION_CAP = 0.2  # a sentence that negates or names what its passage sentence does not
_OFF_TOPIC_CAP = 0.15  # an answer citing none of the passages of the EIP the query names
_PARTLY_RESPONSIVE = 0.55  # the cap for an answer holding a few of the query's key terms


@dataclass(frozen=True)
class _Claim:
    text: str
    words: int
    support: float
    problem: str | None  # why the sentence was capped, for the rationale
    passage: int | None = None  # the passage (1-based) holding the sentence it restates


def _specifics(text: str) -> set[str]:
    found = set()
    for token in _SPECIFIC.findall(text):
        if token in _PLAIN_CAPS:
            continue
        token = token.replace(",", "").casefold()
        found.add(token)
    return found


def _passage_sentences(chunk: RetrievedChunk) -> list[str]:
    """The passage's sentences: paragraphs joined across hard line breaks, list items and headings apart."""
    sentences: list[str] = []
    current: list[str] = []
    for line in [*chunk.text.splitlines(), ""]:
        line = line.strip()
        if not line or line.startswith(("#", "-", "*", "|", ">")) or re.match(r"\d+[.)]\s", line):
            sentences += [s for s in _PASSAGE_SENTENCE_END.split(" ".join(current)) if s]
            current = [strip_markup(line)] if line else []
        else:
            current.append(line)
    return sentences


def _lcs(first: Sequence[str], second: Sequence[str]) -> int:
    previous = [0] * (len(second) + 1)
    for a in first:
        row = [0]
        for j, b in enumerate(second):
            row.append(previous[j] + 1 if a == b else max(previous[j + 1], row[j]))
        previous = row
    return previous[-1]


def _claim(sentence: str, chunks: Sequence[RetrievedChunk], cited: tuple[int, ...]) -> _Claim | None:
    text = _CITATION.sub(" ", sentence)
    words = content_words(text)
    if not words:
        return None
    plain = [w for w in words if not _NEGATION.fullmatch(w)]
    wanted = set(plain)
    # The passage sentence this one restates: the most shared words, then the shortest.
    best: tuple[int, int, list[str], str, str, int] | None = None
    for n in cited:
        found = _passage_sentences(chunks[n - 1])
        for i, candidate in enumerate(found):
            shared = len(wanted & set(content_words(candidate)))
            window = " ".join(found[max(i - 1, 0) : i + 2])
            key = (shared, -len(candidate))
            if best is None or key > (best[0], best[1]):
                source = window + " " + chunks[n - 1].source
                best = (shared, -len(candidate), content_words(candidate), candidate, source, n)
    if best is None or best[0] == 0:
        return _Claim(sentence, len(words), 0.0, "no cited sentence shares its words")
    _, _, aligned, aligned_text, window, passage = best
    window_words = set(content_words(window))
    unigram = sum(w in window_words for w in words) / len(words)
    pairs = list(itertools.pairwise(words))
    window_pairs = set(itertools.pairwise(content_words(window)))
    paired = sum(p in window_pairs for p in pairs) / len(pairs) if pairs else unigram
    # Word order counts as much as the words: "`0x5f` is introduced at `PUSH0`" holds every word of its sentence.
    order = _lcs(plain, aligned) / max(len(plain), 1)
    support = min((1 - PAIR_WEIGHT) * unigram + PAIR_WEIGHT * paired, order)
    missing = sorted(_specifics(text) - _specifics(window) - set(stem(w) for w in content_words(window)))
    if missing:
        capped = min(support, _CONTRADICTION_CAP)
        return _Claim(sentence, len(words), capped, f"{', '.join(missing)} not in it", passage)
    if bool(_NEGATION.search(text)) != bool(_NEGATION.search(aligned_text)):
        capped = min(support, _CONTRADICTION_CAP)
        return _Claim(sentence, len(words), capped, "negation differs from the passage", passage)
    return _Claim(sentence, len(words), support, None, passage)


def _responsiveness(query: str, chunks: Sequence[RetrievedChunk], restated: set[int], answer: str) -> tuple[float, str]:
    """A cap on the score from how well the answer addresses the query, and why. `restated`: the passages whose
    sentences the answer restates (not merely cites: an uncited sentence cites them all)."""
    cited = restated
    sources = [document_stem(chunks[n - 1].source) for n in sorted(cited)]
    named = named_documents(query)
    files = any(_EIP_FILE.match(document_stem(c.source)) for c in chunks)
    if named and files and not named & set(sources):
        return _OFF_TOPIC_CAP, f"it cites no passage of {', '.join(sorted(named))}, which the query asks about"
    numbers = {name.split("-", 1)[1] for name in named}
    key = {w for w in content_words(query) if w not in _ASKING and w not in numbers}
    if not key:
        return 1.0, ""
    seen = set(content_words(answer))
    for n in cited:
        seen |= set(content_words(chunks[n - 1].text + " " + " ".join(chunks[n - 1].heading_path)))
    coverage = len(key & seen) / len(key)
    if coverage >= 1:
        return 1.0, ""
    if coverage == 0:
        return _OFF_TOPIC_CAP, "none of the query's key terms"
    # Some of them: about the query's subject, maybe not all of it; a cap never low enough to dispute alone.
    return _PARTLY_RESPONSIVE + (1 - _PARTLY_RESPONSIVE) * coverage, f"{coverage:.0%} of the query's key terms"


class GroundingV2Judge:
    """The answer's score is the mean of the word-weighted mean sentence support and the weakest sentence's
    support (as grounding-v1), capped by how responsive the answer is to the query."""

    def __init__(self, *, calibration: CalibrationMap | None = None) -> None:
        self.calibration = check_calibration(calibration, GROUNDING_V2_JUDGE)

    @property
    def label(self) -> str:
        return GROUNDING_V2_JUDGE

    def __repr__(self) -> str:
        return "GroundingV2Judge()"

    def judge(self, query: str, chunks: Sequence[RetrievedChunk], answer: str) -> Verdict:
        started = time.perf_counter()
        if not chunks:
            return undecided(GROUNDING_V2_JUDGE, "no context passages to check the answer against", since(started))
        everything = tuple(range(1, len(chunks) + 1))
        claims: list[_Claim] = []
        for sentence in answer_sentences(answer):
            claim = _claim(sentence, chunks, citations_in(sentence, len(chunks)) or everything)
            if claim is not None:
                claims.append(claim)
        if not claims:
            return undecided(GROUNDING_V2_JUDGE, "the answer has no content words to check", since(started))
        total = sum(c.words for c in claims)
        mean = sum(c.support * c.words for c in claims) / total
        weakest = min(range(len(claims)), key=lambda i: claims[i].support)
        restated = {c.passage for c in claims if c.passage is not None}
        cap, off_topic = _responsiveness(query, chunks, restated, answer)
        score = round(min((mean + claims[weakest].support) / 2, cap), 6)
        rationale = (
            f"support of the answer's {len(claims)} sentence(s) by the passage sentences they restate: "
            f"mean {mean:.2f}, weakest {claims[weakest].support:.2f} (sentence {weakest + 1}"
            + (f": {claims[weakest].problem})" if claims[weakest].problem else ")")
            + (f"; not responsive: {off_topic}, capped at {cap:.2f}" if off_topic else "")
        )
        return Verdict(
            score=score,
            rationale=rationale,
            samples=(score,),
            judge=GROUNDING_V2_JUDGE,
            template=None,
            template_sha256=None,
            undecided_reason=None,
            latency_ms=since(started),
            calibrated_score=self.calibration.apply(score) if self.calibration else score,
        )
