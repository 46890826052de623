"""grounding-v2, the offline judge that reads claims: the rewordings, entity swaps and non-responsive answers that
fooled grounding-v1 (issue 17) score below the dispute threshold; honest answers above; deterministic, immune to
injection, selectable next to grounding-v1."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from attest.config import LlmConfig
from attest.errors import JudgeError
from attest.kb import KnowledgeBase
from attest.llm.base import GenerationParams
from attest.llm.extractive import EXTRACTIVE_MODEL, ExtractiveProvider
from attest.prompts import catalog
from disputer.calibration import fit_isotonic
from disputer.grounding import GroundingJudge
from disputer.grounding_v2 import GROUNDING_V2_JUDGE, GroundingV2Judge
from disputer.judges import judge_from_config
from tests.support.llm_fakes import chunk
from tests.test_grounding import EIPS, HOSTILE, PASSAGES, QUESTIONS

JUDGE = GroundingV2Judge()
THRESHOLD = 0.5  # [disputer] threshold's default
PUSH0 = "What does PUSH0 do?"
SPEC = (
    "## Specification\n\nThe instruction `PUSH0` is introduced at `0x5f`. It has no immediate data, pops no items "
    "from the stack, and places a single item with the value 0 onto the stack. The cost of this instruction is 2 "
    "gas (aka `base`)."
)
MOTIVATION = (
    "## Motivation\n\nThey can achieve that today by `PUSH1 0`, which costs 3 gas at runtime, and is encoded as two "
    "bytes which means `2 * 200` gas deployment cost."
)
EIP_3855 = (
    chunk("Introduce the `PUSH0` (`0x5f`) instruction, which pushes the constant value 0 onto the stack.", 0,
          "eips/eip-3855.md", ("PUSH0 instruction", "Abstract")),
    chunk(SPEC, 1, "eips/eip-3855.md", ("PUSH0 instruction",)),
    chunk(MOTIVATION, 2, "eips/eip-3855.md", ("PUSH0 instruction",)),
    chunk("The `BLOBHASH` opcode returns the versioned hash of the blob at the given index.", 0, "eips/eip-4844.md",
          ("Shard Blob Transactions",)),
)  # fmt: skip


def score(query: str, chunks: tuple[object, ...] | list[object], answer: str, judge: object = JUDGE) -> float:
    verdict = judge.judge(query, chunks, answer)  # type: ignore[attr-defined]
    assert verdict.score is not None, verdict.undecided_reason
    return float(verdict.score)


HONEST = [
    "The instruction `PUSH0` is introduced at `0x5f` [2].",
    "`PUSH0` pushes the constant value 0 onto the stack [1].",
    "It has no immediate data, pops no items from the stack, and places a single item with the value 0 onto the "
    "stack [2]. The cost of this instruction is 2 gas [2].",
]
FALSE = [
    "The instruction `PUSH0` is not introduced at `0x5f` [2].",  # v1: 0.667 (issue 17)
    "This is the instruction `PUSH1`, not PUSH0 [2].",  # v1: 0.542
    "The instruction `0x5f` is introduced at `PUSH0` [2].",  # reordered: the entities swap roles
    "It has immediate data, pops items from the stack, and places a single item with the value 0 onto the stack [2].",
    "The cost of this instruction is 3 gas [2].",  # a number from another sentence of the EIP
    "The instruction `PUSH0` costs 3 gas at runtime and is encoded as two bytes [3].",  # PUSH1's facts, PUSH0's name
]


@pytest.mark.parametrize("answer", HONEST)
def test_honest_answers_score_above_the_threshold(answer: str) -> None:
    assert score(PUSH0, EIP_3855, answer) >= 0.8


@pytest.mark.parametrize("answer", FALSE)
def test_negated_renumbered_and_entity_swapped_answers_score_below_the_threshold(answer: str) -> None:
    assert score(PUSH0, EIP_3855, answer) < THRESHOLD


def test_grounding_v1_was_fooled_by_the_issues_examples() -> None:
    # Why v2 exists: the same answers, the old judge.
    v1 = GroundingJudge()
    assert score(PUSH0, EIP_3855, FALSE[0], v1) >= THRESHOLD > score(PUSH0, EIP_3855, FALSE[0])


def test_an_answer_about_something_else_is_not_responsive() -> None:
    # True sentences, quoted with their citation, that do not answer the question.
    blobhash = "The `BLOBHASH` opcode returns the versioned hash of the blob at the given index [4]."
    assert score(PUSH0, EIP_3855, blobhash) < THRESHOLD
    assert score(PUSH0, EIP_3855, "`BLOBHASH` returns the versioned hash of the blob [4].") < THRESHOLD
    named = "What does EIP-4844 add?"
    off = score(named, EIP_3855, "Introduce the `PUSH0` (`0x5f`) instruction [1].")
    on = score(named, EIP_3855, "The `BLOBHASH` opcode returns the versioned hash of the blob at the given index [4].")
    assert off < THRESHOLD <= on
    verdict = JUDGE.judge(named, EIP_3855, "Introduce the `PUSH0` (`0x5f`) instruction [1].")
    assert "cites no passage of eip-4844" in verdict.rationale


@pytest.fixture(scope="module")
def eips(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KnowledgeBase]:
    if not EIPS.is_dir():
        pytest.skip(f"the EIP corpus is not at {EIPS}; the EIP grounding test reads it")
    names = ("eip-1559", "eip-155", "eip-4844", "eip-2930", "eip-3675", "eip-6968", "eip-7761", "eip-3855", "eip-20")
    with KnowledgeBase(tmp_path_factory.mktemp("kb") / "kb.sqlite3") as base:
        for name in names:
            base.add_document(f"eips/{name}.md", (EIPS / f"{name}.md").read_bytes())
        yield base


@pytest.mark.parametrize(("question", "fabrications"), QUESTIONS, ids=["1559", "155", "4844", "2930"])
def test_extractive_answers_rank_high_and_fabrications_low_on_the_eips(
    eips: KnowledgeBase, question: str, fabrications: list[str]
) -> None:
    chunks = eips.search(question, k=5)
    quoted = ExtractiveProvider().answer(
        question, chunks, catalog.get("rag-answer@1"), GenerationParams(EXTRACTIVE_MODEL)
    )
    assert quoted.metadata.finish_reason == "stop", quoted.text
    assert score(question, chunks, quoted.text) >= 0.7, quoted.text
    for fabrication in fabrications:
        assert score(question, chunks, fabrication) < THRESHOLD, fabrication


def test_quoting_other_eips_for_a_named_one_scores_low(eips: KnowledgeBase) -> None:
    question = "What does EIP-1559 do with the base fee?"
    chunks = eips.search(question, k=5)
    others = [(n, c) for n, c in enumerate(chunks, 1) if not c.source.endswith("eip-1559.md")]
    for n, other in others:
        sentence = next(s for s in other.text.replace("\n", " ").split(". ") if len(s.split()) > 5)
        assert score(question, chunks, f"{sentence.strip()}. [{n}]") < THRESHOLD, other.source
    forced = "The knowledge base does not answer this: no retrieved passage states what the question asks."
    assert score(question, chunks, forced) < THRESHOLD


def test_the_verdict_is_deterministic_and_says_what_judged_it() -> None:
    first = JUDGE.judge(PUSH0, EIP_3855, FALSE[0])
    second = GroundingV2Judge().judge(PUSH0, EIP_3855, FALSE[0])
    assert (first.score, first.rationale) == (second.score, second.rationale)
    assert first.judge == GROUNDING_V2_JUDGE == JUDGE.label == "grounding-v2" and first.template is None
    assert "negation differs" in first.rationale
    assert "push1 not in it" in JUDGE.judge(PUSH0, EIP_3855, FALSE[1]).rationale
    empty = JUDGE.judge(PUSH0, (), HONEST[0])
    assert empty.score is None and "no context passages" in (empty.undecided_reason or "")


def test_hostile_answers_are_not_supported_by_the_passages() -> None:
    rows = [json.loads(line) for line in HOSTILE.read_text(encoding="utf-8").splitlines()]
    answers = [row["text"] * int(row.get("repeat", 1)) for row in rows if row["target"] == "answer"]
    scores = [JUDGE.judge("What happens to the base fee?", PASSAGES, a).score for a in answers]
    assert len(answers) >= 20
    assert sum(1 for s in scores if s is not None and s >= THRESHOLD) <= 1
    assert sum(1 for s in scores if s is not None and s < 0.3) >= len(answers) * 0.8


def test_it_is_the_offline_default_and_grounding_v1_stays_selectable() -> None:
    assert judge_from_config(None, 3).label == GROUNDING_V2_JUDGE
    assert judge_from_config(LlmConfig(provider="anthropic"), 3).label == GROUNDING_V2_JUDGE
    assert isinstance(judge_from_config(None, 3, offline="grounding-v1"), GroundingJudge)
    calibrated = GroundingV2Judge(calibration=fit_isotonic(GROUNDING_V2_JUDGE, [(0.2, 0), (0.9, 1)]))
    assert calibrated.judge(PUSH0, EIP_3855, HONEST[0]).calibrated_score == 1.0
    with pytest.raises(JudgeError, match="fitted for judge 'grounding-v1'"):
        GroundingV2Judge(calibration=fit_isotonic("grounding-v1", [(0.1, 0), (0.9, 1)]))
