"""The offline judges on labelled answers over the EIP corpus: grounding-v1 and its successor grounding-v2 in the
same run, on the same passages.

bench/judge_answers.toml holds, for each answerable question of bench/answer_questions.toml (same split), up to
four answers: *honest* (a sentence of the question's EIP that states its fact, quoted and cited), *wrong* (that
sentence with its number, identifier or fact phrase replaced by another), *reworded-false* (that sentence with its
negation flipped: "is" -> "is not", "no" dropped) and *non-responsive* (a true sentence quoted from another EIP
among the retrieved passages). Each is judged as `attest ask` would have produced it: the KB's top 5 passages for
the question, with the quoted sentence's own passage put in place of the 5th when retrieval missed it, cited as
[n]. Wrong, reworded and non-responsive answers are false under the claim rules (label 0), honest ones true
(label 1). AUROC, accuracy at the default threshold 0.5 and the bond P&L of disputing every answer scored below it
(UMA's economics: +0.5 bond per won dispute, -1 bond per lost one; disputer.evalstats) are reported per split;
the held-out part was never looked at while grounding-v2 was written or tuned.

The set is generated from the corpus by `python -m bench.judge --build` (deterministic) and committed; the
rewordings are mechanical, so they test what a lexical judge can check, not every way an answer can be false.
"""

from __future__ import annotations

import json
import re
import sys
import tempfile
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from attest.context import RetrievedChunk
from attest.kb import KnowledgeBase
from attest.llm.extractive import quotable_sentences
from bench.answers import CORPUS, K, Question, load_questions
from disputer.evalstats import report
from disputer.grounding import GroundingJudge
from disputer.grounding_v2 import GroundingV2Judge
from disputer.judge import Judge

if TYPE_CHECKING:
    from bench.common import Table

HERE = Path(__file__).resolve().parent
ANSWERS = HERE / "judge_answers.toml"
THRESHOLD = 0.5
BOND = 200.0  # USDC, the devnet's minimum bond
KINDS = ("honest", "wrong", "reworded-false", "non-responsive")
_NUMBER = re.compile(r"\b\d[\d,]*\b")
_IDENTIFIER = re.compile(r"`[^`\n]+`|\b[A-Z][A-Z0-9_]{2,}\b|\b0x[0-9a-fA-F]+\b")
_NEGATABLE = ((" is ", " is not "), (" are ", " are not "), (" must ", " must not "), (" can ", " cannot "),
              (" does ", " does not "), (" will ", " will not "), (" should ", " should not "))  # fmt: skip
_WORDS = re.compile(r"\w+")
_HOLDS = 0.9  # the share of the quote's words a passage must hold to be the one it comes from
_NEGATED = re.compile(r"\b(?:not|no|never)\s+", re.IGNORECASE)


@dataclass(frozen=True)
class Item:
    q: str
    kind: str
    label: int
    answer: str  # "[n]" stands for the quoted passage's number
    source: str  # the EIP (file stem) the quote comes from
    quote: str  # the sentence quoted (or reworded), as it stands in `source`
    split: str


def load_items(path: Path = ANSWERS) -> list[Item]:
    with path.open("rb") as f:
        return [Item(**item) for item in tomllib.load(f)["answer"]]


def _passages(kb: KnowledgeBase, item: Item) -> tuple[list[RetrievedChunk], int]:
    """The question's top K passages with the quoted sentence's passage among them, and its number."""
    passages = kb.search(item.q, k=K)
    wanted = set(_WORDS.findall(item.quote.casefold()))

    def share(chunk: RetrievedChunk) -> float:
        # Words, not characters: the quote lost the passage's link targets and emphasis marks.
        if not chunk.source.endswith(f"/{item.source}.md"):
            return 0.0
        return len(wanted & set(_WORDS.findall(chunk.text.casefold()))) / len(wanted)

    for n, chunk in enumerate(passages, start=1):
        if share(chunk) >= _HOLDS:
            return passages, n
    found = max(kb.search(item.quote, k=20), key=share)
    if share(found) < _HOLDS:
        raise SystemExit(f"{item.q!r}: no passage of {item.source} holds {item.quote[:60]!r}")
    passages = [*passages[: K - 1], found]
    return passages, len(passages)


def score_all(items: list[Item], judges: list[Judge]) -> dict[str, list[float | None]]:
    scores: dict[str, list[float | None]] = {j.label: [] for j in judges}
    with tempfile.TemporaryDirectory() as tmp, KnowledgeBase(Path(tmp) / "kb.sqlite3") as kb:
        kb.add_path(CORPUS)
        for item in items:
            passages, n = _passages(kb, item)
            answer = item.answer.replace("[n]", f"[{n}]")
            for judge in judges:
                scores[judge.label].append(judge.judge(item.q, passages, answer).score)
    return scores


HEADERS = ("split", "judge", "answers", "AUROC", f"accuracy at {THRESHOLD}", "disputes won / lost / missed",
           f"bond P&L (USDC, bond {BOND:g})", *(f"{k} below {THRESHOLD}" for k in KINDS))  # fmt: skip


def rows(items: list[Item], scores: dict[str, list[float | None]]) -> list[tuple[str, ...]]:
    found: list[tuple[str, ...]] = []
    for split in ("tuning", "held-out"):
        index = [i for i, item in enumerate(items) if item.split == split]
        labels = [items[i].label for i in index]
        for judge, all_scores in scores.items():
            mine = [all_scores[i] for i in index]
            r = report(judge, mine, labels, threshold=THRESHOLD, bond=BOND)
            below = []
            for kind in KINDS:
                of_kind = [all_scores[i] for i in index if items[i].kind == kind]
                low = sum(1 for s in of_kind if s is not None and s < THRESHOLD)
                below.append(f"{low}/{len(of_kind)}")
            found.append(
                (split, judge, str(len(index)), _fmt(r.auroc), _fmt(r.accuracy), f"{r.won} / {r.lost} / {r.missed}",
                 f"{r.profit:+,.0f}", *below)
            )  # fmt: skip
    return found


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def run(quick: bool = False) -> list[Table]:
    from bench.common import Table

    items = load_items()
    scores = score_all(items, [GroundingJudge(), GroundingV2Judge()])
    notes = (__doc__ or "") + f"\n{len(items)} answers over {len({i.q for i in items})} questions."
    return [Table("Offline judges on labelled answers over the EIP corpus", HEADERS, rows(items, scores), notes)]


# -- building the set --------------------------------------------------------------------------------------
def _sentences(eip: str) -> list[str]:
    text = (CORPUS / f"{eip}.md").read_text("utf-8")
    # The extractive model's reading of a passage: whole prose sentences, no front matter, headings or code.
    return [s for s in quotable_sentences(text) if len(s.split()) >= 6 and len(s) <= 300 and "Copyright" not in s]


def _wrong(sentence: str, eip: str, fact: str, other_fact: str) -> str | None:
    if (number := _NUMBER.search(sentence)) is not None:
        value = int(number.group().replace(",", ""))
        return sentence[: number.start()] + str(value * 2 + 1) + sentence[number.end() :]
    names = _IDENTIFIER.findall(sentence)
    if names:
        others = sorted(set(_IDENTIFIER.findall((CORPUS / f"{eip}.md").read_text("utf-8"))) - set(names))
        if others:
            return sentence.replace(names[0], others[len(sentence) % len(others)], 1)
    match = re.search(fact, sentence, re.IGNORECASE)
    if match is not None and other_fact:
        return sentence[: match.start()] + other_fact + sentence[match.end() :]
    return None


def _reworded(sentence: str) -> str | None:
    if _NEGATED.search(sentence):
        return _NEGATED.sub("", sentence, count=1)
    for plain, negated in _NEGATABLE:
        if plain in sentence:
            return sentence.replace(plain, negated, 1)
    return None


def build(path: Path = ANSWERS) -> int:
    questions = [q for q in load_questions() if q.eip]
    items: list[Item] = []
    honest: dict[str, tuple[str, Question]] = {}
    for question in questions:
        stating = [s for s in _sentences(question.eip) if re.search(question.fact, s, re.IGNORECASE)]
        if stating:
            honest[question.q] = (min(stating, key=len), question)
    ordered = list(honest.values())
    for index, (sentence, question) in enumerate(ordered):
        other_sentence, other = ordered[(index + 7) % len(ordered)]
        other_fact = re.search(other.fact, other_sentence, re.IGNORECASE)
        variants = [
            ("honest", 1, sentence, question.eip, sentence),
            ("wrong", 0, _wrong(sentence, question.eip, question.fact, other_fact.group() if other_fact else ""),
             question.eip, sentence),
            ("reworded-false", 0, _reworded(sentence), question.eip, sentence),
            ("non-responsive", 0, other_sentence, other.eip, other_sentence),
        ]  # fmt: skip
        for kind, label, text, source, quote in variants:
            if text is not None and not (kind == "non-responsive" and other.eip == question.eip):
                items.append(Item(question.q, kind, label, f"{text} [n]", source, quote, question.split))
    lines = [
        "# Labelled answers for the judge benchmark (bench/judge.py), generated by `python -m bench.judge --build`",
        "# from bench/answer_questions.toml and ../shared/corpus/eips. label 1: true and responsive; 0: false.",
        "",
    ]
    for item in items:
        lines += ["[[answer]]"] + [f"{key} = {json.dumps(getattr(item, key))}" for key in Item.__dataclass_fields__]
        lines.append("")
    path.write_text("\n".join(lines), encoding="utf-8")
    return len(items)


def main() -> None:
    if "--build" in sys.argv:
        print(f"wrote {build()} answers to {ANSWERS}")
        return
    for table in run():
        print(table.markdown())


if __name__ == "__main__":
    main()
