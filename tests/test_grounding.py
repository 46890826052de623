"""grounding-v1, the offline judge: correct answers quoted from EIP passages score high, fabrications low; cited
passages matter; negation counts; deterministic; honest about what it is and when it cannot decide."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from attest.errors import JudgeError
from attest.kb import KnowledgeBase
from attest.llm.base import GenerationParams
from attest.llm.extractive import EXTRACTIVE_MODEL, ExtractiveProvider
from attest.prompts import catalog
from disputer.calibration import fit_isotonic
from disputer.grounding import GROUNDING_JUDGE, GroundingJudge, answer_sentences, content_words, stem
from tests.support.llm_fakes import chunk

EIPS = Path(__file__).resolve().parents[2] / "shared" / "corpus" / "eips"
HOSTILE = Path(__file__).parent / "fixtures" / "injection" / "hostile.jsonl"
JUDGE = GroundingJudge()
PASSAGES = (
    chunk("EIP-1559 adds a base fee per gas. The base fee is burned rather than paid to the miner.", 0),
    chunk("Blocks target 50% fullness. The base fee rises when blocks are fuller than the target.", 1),
)

# (question, fabricated answers): each fabrication is plausible English about the topic, not in the passages.
QUESTIONS = [
    (
        "What is the maximum base fee change per block in EIP-1559?",
        [
            "The base fee can change by at most 50% per block and is paid to validators as a reward.",
            "There is no limit; miners set the base fee freely each block.",
        ],
    ),
    (
        "How does EIP-155 prevent replay attacks?",
        [
            "EIP-155 raises the block reward to 5 ether to pay for replay protection.",
            "Replay attacks are prevented by miners checking proof of stake signatures twice.",
        ],
    ),
    (
        "How large is a blob in EIP-4844?",
        [
            "A blob is one megabyte and is stored forever by every execution client.",
            "Blobs are compressed with zip and kept permanently on chain.",
        ],
    ),
    (
        "What does an access list contain in EIP-2930?",
        [
            "An access list contains the names of validators allowed to vote on the block.",
            "Access lists hold the sender's private keys and nonce history.",
        ],
    ),
]


@pytest.fixture(scope="module")
def eips(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KnowledgeBase]:
    if not EIPS.is_dir():
        pytest.skip(f"the EIP corpus is not at {EIPS}; the EIP grounding test reads it")
    with KnowledgeBase(tmp_path_factory.mktemp("kb") / "kb.sqlite3") as base:
        for name in ("eip-1559.md", "eip-155.md", "eip-4844.md", "eip-2930.md", "eip-3675.md"):
            base.add_document(f"eips/{name}", (EIPS / name).read_bytes())
        yield base


@pytest.mark.parametrize(("question", "fabrications"), QUESTIONS, ids=["1559", "155", "4844", "2930"])
def test_a_correct_extractive_answer_ranks_high_and_fabrications_low(
    eips: KnowledgeBase, question: str, fabrications: list[str]
) -> None:
    chunks = eips.search(question, k=3)
    quoted = ExtractiveProvider().answer(
        question, chunks, catalog.get("rag-answer@1"), GenerationParams(EXTRACTIVE_MODEL)
    )
    correct = JUDGE.judge(question, chunks, quoted.text)
    assert correct.score is not None and correct.score >= 0.9, quoted.text
    for fabrication in fabrications:
        wrong = JUDGE.judge(question, chunks, fabrication)
        assert wrong.score is not None and wrong.score <= 0.45, fabrication
        assert wrong.score < correct.score - 0.4


def test_support_comes_from_the_passage_a_sentence_cites() -> None:
    right = JUDGE.judge("q", PASSAGES, "The base fee is burned rather than paid to the miner [1].")
    wrong_citation = JUDGE.judge("q", PASSAGES, "The base fee is burned rather than paid to the miner [2].")
    uncited = JUDGE.judge("q", PASSAGES, "The base fee is burned rather than paid to the miner.")
    assert right.score == uncited.score == 1.0
    assert wrong_citation.score is not None and wrong_citation.score < 0.6


def test_a_negation_the_passages_do_not_make_costs_support() -> None:
    plain = JUDGE.judge("q", PASSAGES, "The base fee is burned.")
    negated = JUDGE.judge("q", PASSAGES, "The base fee is not burned.")
    assert plain.score == 1.0 and negated.score is not None and negated.score < 0.8


def test_one_unsupported_sentence_costs_a_long_faithful_answer() -> None:
    faithful = "EIP-1559 adds a base fee per gas [1]. The base fee is burned [1]. Blocks target 50% fullness [2]."
    mixed = faithful + " Validators receive the burned fee as a bonus."
    good, bad = JUDGE.judge("q", PASSAGES, faithful), JUDGE.judge("q", PASSAGES, mixed)
    assert good.score == 1.0 and bad.score is not None and bad.score < 0.65


def test_the_verdict_is_deterministic_and_says_what_judged_it() -> None:
    first = JUDGE.judge("q", PASSAGES, "The base fee rises when blocks are full [2].")
    second = GroundingJudge().judge("q", PASSAGES, "The base fee rises when blocks are full [2].")
    assert (first.score, first.rationale, first.samples) == (second.score, second.rationale, second.samples)
    assert first.judge == GROUNDING_JUDGE == JUDGE.label and first.template is None and first.template_sha256 is None
    assert first.samples == (first.score,) and first.calibrated_score == first.score
    assert "lexical support" in first.rationale


def test_without_passages_or_content_words_it_does_not_decide() -> None:
    empty = JUDGE.judge("q", (), "The base fee is burned.")
    assert empty.score is None and "no context passages" in (empty.undecided_reason or "")
    framing = JUDGE.judge("q", PASSAGES, "The retrieved passages say: [1]")
    assert framing.score is None and "no content words" in (framing.undecided_reason or "")


def test_hostile_answers_are_not_supported_by_the_passages() -> None:
    rows = [json.loads(line) for line in HOSTILE.read_text(encoding="utf-8").splitlines()]
    answers = [row["text"] * int(row.get("repeat", 1)) for row in rows if row["target"] == "answer"]
    scores = [JUDGE.judge("What happens to the base fee?", PASSAGES, a).score for a in answers]
    assert len(answers) >= 20
    # Instructions, fake verdicts and role-play are not in the passages. One item is a true sentence followed by
    # invisible tag characters: grounding sees only the true sentence, which is fair.
    assert sum(1 for s in scores if s is not None and s >= 0.5) <= 1
    assert sum(1 for s in scores if s is not None and s < 0.3) >= len(answers) * 0.8


def test_calibration_applies_only_when_fitted_for_grounding() -> None:
    calibrated = GroundingJudge(calibration=fit_isotonic(GROUNDING_JUDGE, [(0.2, 0), (0.5, 0), (0.9, 1)]))
    verdict = calibrated.judge("q", PASSAGES, "The base fee is burned.")
    assert verdict.score == 1.0 and verdict.calibrated_score == 1.0
    low = calibrated.judge("q", PASSAGES, "Validators keep the fee.")
    assert low.calibrated_score == 0.0 and low.score is not None and low.score > 0
    with pytest.raises(JudgeError, match=r"fitted for judge 'openai:gpt-4\.1-mini'"):
        GroundingJudge(calibration=fit_isotonic("openai:gpt-4.1-mini", [(0.1, 0), (0.9, 1)]))


def test_words_stems_and_sentences() -> None:
    assert {stem(w) for w in ("burn", "burned", "burning", "burns")} == {"burn"}
    assert stem("stored") == stem("store") and stem("bytes") == stem("byte") and stem("1559") == "1559"
    assert content_words("The base_fee_per_gas is NOT burned [1]") == ["bas", "fee", "per", "gas", "not", "burn", "1"]
    assert answer_sentences('The passages say:\n- "A b c." [1]\n- "D e f." [2]') == [
        "The passages say:",
        '"A b c." [1]',
        '"D e f." [2]',
    ]
