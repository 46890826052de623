"""The labelled sets the answer and judge benches score on: at least 100 questions over the EIP corpus, every fact
in its EIP, tuning and held-out parts, and a judge set that `python -m bench.judge --build` regenerates exactly."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from bench.answers import CORPUS, load_questions
from bench.judge import ANSWERS, KINDS, build, load_items

pytestmark = pytest.mark.skipif(not CORPUS.is_dir(), reason=f"the EIP corpus is not at {CORPUS}")


def test_at_least_100_answerable_questions_in_two_parts() -> None:
    questions = load_questions()  # checks each fact pattern against its EIP's text
    answerable = [q for q in questions if q.eip]
    assert len(answerable) >= 100
    parts = Counter(q.split for q in answerable)
    assert parts["tuning"] >= 50 and parts["held-out"] >= 50
    assert {q.split for q in questions if not q.eip} == {"tuning", "held-out"}


def test_the_judge_set_covers_every_kind_in_both_parts_and_is_regenerated_exactly(tmp_path: Path) -> None:
    items = load_items()
    assert len({i.q for i in items}) >= 100
    for split in ("tuning", "held-out"):
        kinds = Counter(i.kind for i in items if i.split == split)
        assert set(kinds) == set(KINDS) and min(kinds.values()) >= 15, kinds
    assert all(i.label == (i.kind == "honest") for i in items)
    rebuilt = tmp_path / "judge_answers.toml"
    build(rebuilt)
    assert rebuilt.read_text(encoding="utf-8") == ANSWERS.read_text(encoding="utf-8")
