"""grounding-v1: the offline judge. No model, no network, same input same verdict.

It measures lexical support, not truth: for each sentence of the answer, how much of its content (words, and
adjacent word pairs, after dropping stopwords and light suffix stripping) appears in the passages the sentence
cites as [n], or in all passages when it cites none. An answer copied from its passages scores near 1; one whose
content is not in its passages scores near 0. It cannot tell a faithful paraphrase from a fabrication that
reuses the passages' words in a false order beyond what word pairs catch, and it reads no instructions at all,
which is what makes it immune to injection. Every verdict says "grounding-v1", so nobody mistakes it for a model.
"""

from __future__ import annotations

import itertools
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass

from attest.context import RetrievedChunk
from attest.llm.base import citations_in
from attest.text import STOPWORDS, strip_markup
from disputer.calibration import CalibrationMap
from disputer.judge import Verdict, check_calibration, undecided

GROUNDING_JUDGE = "grounding-v1"
# Letters and digits; underscores split identifiers such as base_fee_per_gas into their words.
_WORD = re.compile(r"[^\W_]+")
_CITATION = re.compile(r"\[\d{1,4}(?:\s*,\s*\d{1,4})*\]")
_SENTENCE_END = re.compile(r"(?<=[.!?;])\s+")
# Negations flip a claim, so they must be found in the passages like any content word.
_NEGATIONS = frozenset({"no", "not", "nor", "never", "cannot"})
# Words that frame an answer ("The retrieved passages say:") rather than claim anything.
_FRAMING = frozenset({"passage", "passages", "retrieved", "context", "say", "says", "according", "yes"})
_NEUTRAL = (STOPWORDS - _NEGATIONS) | _FRAMING
_MIN_STEM = 3
PAIR_WEIGHT = 2 / 3  # word pairs count double: they catch true words put in a false order


def stem(word: str) -> str:
    """A crude stem so "burned", "burning", "burns" and "burn" meet, as do "stored" and "store"; numbers stay
    exact. Wrong stems only matter when they differ between answer and passage, and both go through here."""
    word = word.casefold()
    if word.isdigit() or len(word) <= _MIN_STEM:
        return word
    if word.endswith("ies") and len(word) > 4:
        word = word[:-3] + "y"
    elif word.endswith(("sses", "xes", "zes", "ches", "shes")):
        word = word[:-2]
    elif word.endswith("s") and not word.endswith(("ss", "us", "is")):
        word = word[:-1]
    for suffix in ("ing", "ed"):
        if word.endswith(suffix) and len(word) - len(suffix) >= _MIN_STEM:
            word = word[: -len(suffix)]
            break
    if word.endswith("e") and len(word) - 1 >= _MIN_STEM:
        word = word[:-1]
    return word


def content_words(text: str) -> list[str]:
    """The stems of the words that carry a claim, in order."""
    return [stem(w) for w in _WORD.findall(text.casefold()) if w not in _NEUTRAL and (len(w) > 1 or w.isdigit())]


@dataclass(frozen=True)
class SentenceSupport:
    text: str
    words: int  # content words
    support: float  # 0..1


@dataclass(frozen=True)
class _Passage:
    words: frozenset[str]
    pairs: frozenset[tuple[str, str]]


def _passage(chunk: RetrievedChunk) -> _Passage:
    words = content_words(chunk.text)
    # The section headings are shown with the passage ("section: ..."), so an answer may name them.
    headings = content_words(" ".join(chunk.heading_path))
    return _Passage(frozenset(words + headings), frozenset(itertools.pairwise(words)))


def _union(passages: Sequence[_Passage]) -> _Passage:
    return _Passage(frozenset().union(*(p.words for p in passages)), frozenset().union(*(p.pairs for p in passages)))


def answer_sentences(answer: str) -> list[str]:
    pieces: list[str] = []
    for line in answer.splitlines():
        line = strip_markup(line.strip())
        pieces += [p.strip() for p in _SENTENCE_END.split(line) if p.strip()]
    return pieces


def sentence_support(sentences: Sequence[str], chunks: Sequence[RetrievedChunk]) -> list[SentenceSupport]:
    """Each sentence's support by its cited passages (all passages when it cites none)."""
    passages = [_passage(c) for c in chunks]
    everything = _union(passages)
    found: list[SentenceSupport] = []
    for sentence in sentences:
        cited = citations_in(sentence, len(chunks))
        source = _union([passages[n - 1] for n in cited]) if cited else everything
        words = content_words(_CITATION.sub(" ", sentence))
        if not words:
            continue
        unigram = sum(w in source.words for w in words) / len(words)
        pairs = list(itertools.pairwise(words))
        paired = sum(p in source.pairs for p in pairs) / len(pairs) if pairs else unigram
        support = (1 - PAIR_WEIGHT) * unigram + PAIR_WEIGHT * paired
        found.append(SentenceSupport(sentence, len(words), support))
    return found


class GroundingJudge:
    """The answer's score is the mean of the word-weighted mean sentence support and the weakest sentence's
    support, so one unsupported claim costs even a long, otherwise faithful answer."""

    def __init__(self, *, calibration: CalibrationMap | None = None) -> None:
        self.calibration = check_calibration(calibration, GROUNDING_JUDGE)

    @property
    def label(self) -> str:
        return GROUNDING_JUDGE

    def __repr__(self) -> str:
        return "GroundingJudge()"

    def judge(self, query: str, chunks: Sequence[RetrievedChunk], answer: str) -> Verdict:
        started = time.perf_counter()
        if not chunks:
            return undecided(GROUNDING_JUDGE, "no context passages to check the answer against", since(started))
        supports = sentence_support(answer_sentences(answer), chunks)
        if not supports:
            return undecided(GROUNDING_JUDGE, "the answer has no content words to check", since(started))
        total = sum(s.words for s in supports)
        mean = sum(s.support * s.words for s in supports) / total
        weakest = min(range(len(supports)), key=lambda i: supports[i].support)
        score = round((mean + supports[weakest].support) / 2, 6)
        rationale = (
            f"lexical support of the answer's {len(supports)} sentence(s) by the passages they cite: "
            f"mean {mean:.2f}, weakest {supports[weakest].support:.2f} (sentence {weakest + 1})"
        )
        return Verdict(
            score=score,
            rationale=rationale,
            samples=(score,),
            judge=GROUNDING_JUDGE,
            template=None,
            template_sha256=None,
            undecided_reason=None,
            latency_ms=since(started),
            calibrated_score=self.calibration.apply(score) if self.calibration else score,
        )


def since(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 3)
