"""The offline extractive model's answers over the EIP corpus, against labelled questions: does the answer quote a
sentence that states the question's fact and cite the EIP it comes from, and does it decline the questions the
corpus does not answer.

Each question of bench/answer_questions.toml is asked as `attest ask` asks it (the KB's top 5 passages, then
`extractive-v1`) over a fresh KB of ../shared/corpus/eips. An answerable question is *answered* when one of the
answer's quotes matches its fact pattern and cites a passage of its EIP, *first* when the first quote does;
an unanswerable one is *declined* when the model says it has nothing to answer with (finish reason
`no_context`/`no_match`). It imports only `attest`, so the code before a change is measured by running this
file against a checkout of it:

    python -m bench.answers                                      # this tree
    git worktree add /tmp/before REV && PYTHONPATH=/tmp/before python bench/answers.py   # REV's code
"""

from __future__ import annotations

import re
import statistics
import sys
import tempfile
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from attest.kb import KnowledgeBase
from attest.llm.base import GenerationParams
from attest.llm.extractive import EXTRACTIVE_MODEL, ExtractiveProvider
from attest.prompts import get

if TYPE_CHECKING:
    from bench.common import Table

HERE = Path(__file__).resolve().parent
CORPUS = HERE.parent.parent / "shared" / "corpus" / "eips"
QUESTIONS = HERE / "answer_questions.toml"
SPLITS = ("tuning", "held-out")
K = 5  # `attest ask`'s default --top-k
_QUOTE = re.compile(r'^- "(?P<text>.*)" \[(?P<n>\d+)\]$')


@dataclass(frozen=True)
class Question:
    q: str
    eip: str  # file stem, "" when the corpus does not answer it
    fact: str  # pattern, "" likewise
    split: str


@dataclass(frozen=True)
class Outcome:
    question: Question
    answered: bool  # a quote states the fact and cites the EIP
    first: bool  # the first quote does
    declined: bool
    ms: float  # search + answer


def load_questions(path: Path = QUESTIONS) -> list[Question]:
    with path.open("rb") as f:
        raw = tomllib.load(f)["question"]
    questions = [Question(item["q"], item["eip"], item["fact"], item["split"]) for item in raw]
    for question in questions:
        if question.split not in SPLITS:
            raise SystemExit(f"{question.q!r}: split must be one of {SPLITS}")
        if question.eip and not _states(question.fact, (CORPUS / f"{question.eip}.md").read_text("utf-8")):
            raise SystemExit(f"{question.q!r}: its fact /{question.fact}/ is not in {question.eip}.md")
    return questions


def _states(fact: str, text: str) -> bool:
    return re.search(fact, " ".join(text.split()), re.IGNORECASE) is not None


def ask_all(questions: list[Question]) -> list[Outcome]:
    provider, template = ExtractiveProvider(), get("rag-answer@1")
    outcomes = []
    with tempfile.TemporaryDirectory() as tmp, KnowledgeBase(Path(tmp) / "kb.sqlite3") as kb:
        kb.add_path(CORPUS)
        for question in questions:
            started = time.perf_counter()
            passages = kb.search(question.q, k=K)
            answer = provider.answer(question.q, passages, template, GenerationParams(EXTRACTIVE_MODEL))
            ms = (time.perf_counter() - started) * 1000
            hits = []
            for line in answer.text.splitlines():
                quote = _QUOTE.match(line)
                if quote is not None:
                    source = passages[int(quote["n"]) - 1].source
                    from_eip = bool(question.eip) and source.rsplit("/", 1)[-1] == f"{question.eip}.md"
                    hits.append(from_eip and _states(question.fact, quote["text"]))
            declined = answer.metadata.finish_reason in ("no_context", "no_match")
            outcomes.append(Outcome(question, any(hits), bool(hits) and hits[0], declined, ms))
    return outcomes


def _share(flags: list[bool]) -> str:
    return f"{sum(flags)}/{len(flags)} ({100 * sum(flags) / len(flags):.0f}%)" if flags else "-"


def rows(outcomes: list[Outcome]) -> list[tuple[str, ...]]:
    found: list[tuple[str, ...]] = []
    for split in SPLITS:
        mine = [o for o in outcomes if o.question.split == split]
        answerable = [o for o in mine if o.question.eip]
        unanswerable = [o for o in mine if not o.question.eip]
        found.append(
            (
                split,
                _share([o.answered for o in answerable]),
                _share([o.first for o in answerable]),
                _share([o.declined for o in answerable]),
                _share([o.declined for o in unanswerable]),
                f"{statistics.median(o.ms for o in mine):.1f}",
            )
        )
    return found


HEADERS = (
    "questions",
    "states the fact, cites its EIP",
    "first quote does",
    "answerable declined",
    "unanswerable declined",
    "p50 ms (search + answer)",
)


def run(quick: bool = False) -> list[Table]:
    from bench.common import Table

    outcomes = ask_all(load_questions())
    return [Table("Extractive answers on labelled EIP questions", HEADERS, rows(outcomes), notes=__doc__ or "")]


def main() -> None:
    outcomes = ask_all(load_questions())
    print("| " + " | ".join(HEADERS) + " |")
    print("|" + "|".join("---" for _ in HEADERS) + "|")
    for row in rows(outcomes):
        print("| " + " | ".join(row) + " |")
    if "-v" in sys.argv:
        for o in outcomes:
            mark = "declined" if o.declined else ("ok" if o.answered else "MISS")
            print(f"{o.question.split:<9} {mark:<8} {o.question.q}")


if __name__ == "__main__":
    main()
