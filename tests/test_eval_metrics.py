"""Evaluation: the statistics against hand-worked and brute-force values, the OOv3 bond economics, the JSONL row
loader's errors, and whole evaluations with the grounding judge and with an LLM judge that never decides."""

from __future__ import annotations

import hashlib
import json
import random
from pathlib import Path

import pytest

from attest.errors import EvalDataError, JudgeError
from attest.ipfs.unixfs import cid_of
from attest.llm.base import RetryPolicy
from attest.llm.registry import get_provider
from disputer.evalstats import (
    EvalRow,
    accuracy,
    auroc,
    bond_outcome,
    brier,
    ece,
    evaluate,
    load_rows,
    parse_row,
    report,
)
from disputer.grounding import GroundingJudge
from disputer.judge import LlmJudge
from tests.support.llm_fakes import FakeModelServer

PASSAGES = [
    "EIP-1559 adds a base fee per gas. The base fee is burned rather than paid to the miner.",
    {"text": "Blocks target 50% fullness. The base fee rises when blocks are fuller.", "source": "eip-1559.md"},
]


def test_accuracy_counts_scores_at_the_threshold_as_correct() -> None:
    assert accuracy([0.1, 0.5, 0.7, 0.2], [0, 1, 0, 1], threshold=0.5) == 0.5
    assert accuracy([], [], threshold=0.5) is None


def test_auroc_by_hand_with_ties_and_degenerate_cases() -> None:
    assert auroc([0.1, 0.4, 0.4, 0.8], [0, 0, 1, 1]) == 0.875
    assert auroc([0.9, 0.8, 0.2], [1, 1, 0]) == 1.0 and auroc([0.1, 0.8], [1, 0]) == 0.0
    assert auroc([0.5] * 6, [0, 1, 0, 1, 1, 0]) == 0.5
    assert auroc([0.3, 0.4], [1, 1]) is None and auroc([], []) is None


@pytest.mark.parametrize("seed", range(5))
def test_auroc_equals_the_share_of_correct_over_wrong_pairs(seed: int) -> None:
    rng = random.Random(seed)
    scores = [round(rng.random(), 1) for _ in range(50)]  # coarse, so ties are common
    labels = [int(rng.random() < 0.5) for _ in range(50)]
    pos = [s for s, y in zip(scores, labels, strict=True) if y == 1]
    neg = [s for s, y in zip(scores, labels, strict=True) if y == 0]
    pairs = sum(1.0 if p > n else 0.5 if p == n else 0.0 for p in pos for n in neg)
    assert auroc(scores, labels) == pytest.approx(pairs / (len(pos) * len(neg)))


def test_ece_and_brier_by_hand() -> None:
    # Bins: [0, 0.1): 0.05 vs 0; [0.1, 0.2): 0.15 vs 1; [0.9, 1]: 0.95 and 1.0 vs 1 and 0.
    assert ece([0.05, 0.15, 0.95, 1.0], [0, 1, 1, 0]) == pytest.approx((0.05 + 0.85 + 2 * 0.475) / 4)
    assert ece([1.0, 0.0], [1, 0]) == 0.0 and ece([], []) is None
    assert brier([0.0, 1.0, 0.5, 0.9], [0, 1, 1, 0]) == pytest.approx((0 + 0 + 0.25 + 0.81) / 4)
    with pytest.raises(ValueError, match="3 scores for 2 labels"):
        brier([0.1, 0.2, 0.3], [0, 1])


def test_bond_economics_follow_oov3() -> None:
    scores = [0.1, 0.2, 0.9, None, 0.95]
    labels = [0, 1, 0, 0, 1]
    outcome = bond_outcome(scores, labels, threshold=0.5, bond=100.0, dispute_cost=1.0)
    # A won dispute earns half the asserter's bond; a lost one forfeits the disputer's whole bond.
    assert (outcome.disputes, outcome.won, outcome.lost, outcome.missed) == (2, 1, 1, 2)
    assert outcome.profit == 50.0 - 100.0 - 2 * 1.0
    assert bond_outcome(scores, labels, threshold=0.0, bond=100.0).profit == 0.0
    with pytest.raises(JudgeError, match="finite and not negative"):
        bond_outcome(scores, labels, threshold=0.5, bond=-1.0)


def test_a_report_counts_undecided_rows_and_leaves_them_out_of_the_statistics() -> None:
    result = report("j", [0.9, None, 0.1, 0.8], [1, 0, 0, 1], threshold=0.5, bond=10.0, latencies_ms=[1.0, 3.0])
    assert (result.rows, result.decided, result.undecided) == (4, 3, 1)
    assert result.accuracy == 1.0 and result.auroc == 1.0
    assert (result.disputes, result.won, result.missed, result.profit) == (1, 1, 1, 5.0)
    assert result.mean_latency_ms == 2.0 and result.as_dict()["undecided"] == 1
    json.dumps(result.as_dict())
    with pytest.raises(JudgeError, match="between 0 and 1"):
        report("j", [0.5], [1], threshold=1.5, bond=1.0)


def write_rows(path: Path, rows: list[object]) -> Path:
    path.write_text("\n".join(r if isinstance(r, str) else json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    return path


def test_rows_load_with_plain_and_described_passages(tmp_path: Path) -> None:
    good = {"query": "What happens to the base fee?", "context": PASSAGES, "answer": "It is burned.", "label": 1}
    path = write_rows(tmp_path / "rows.jsonl", [good, "", {**good, "label": 0, "id": 7, "note": "wrong"}])
    first, second = load_rows(path)
    assert first.label == 1 and second.label == 0 and second.id == "7" and first.id is None
    text = PASSAGES[0]
    assert isinstance(text, str)
    plain, described = first.context
    assert plain.text == text and plain.source == "context-1" and plain.chunk_index == 0
    assert plain.sha256 == hashlib.sha256(text.encode()).hexdigest() and plain.doc_cid == str(cid_of(text.encode()))
    assert described.source == "eip-1559.md" and described.chunk_index == 1


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("{not json", "not valid JSON"),
        ('["a"]', "a row is a JSON object"),
        ('{"query": "q", "context": [], "answer": "a"}', "missing 'label'"),
        ('{"query": "q", "context": [], "answer": "a", "label": 2}', "'label' must be 0"),
        ('{"query": "q", "context": [], "answer": "a", "label": true}', "'label' must be 0"),
        ('{"query": "q", "context": [], "answer": "a", "label": 1, "lable": 1}', "unknown keys lable"),
        ('{"query": "", "context": [], "answer": "a", "label": 1}', "'query' must be a non-empty string"),
        ('{"query": "q", "context": "text", "answer": "a", "label": 1}', "'context' must be a list"),
        ('{"query": "q", "context": [3], "answer": "a", "label": 1}', r"context\[0\]: a passage is a string"),
        ('{"query": "q", "context": [{"txt": "x"}], "answer": "a", "label": 1}', "unknown keys txt"),
        ('{"query": "q", "context": [{"text": "x", "sha256": "00"}], "answer": "a", "label": 1}', "'sha256' does not"),
        ('{"query": "q", "context": [], "answer": "a", "label": 1, "label": 0}', "appears twice"),
        ('{"query": "q", "context": [], "answer": "a", "label": NaN}', "NaN is not a JSON number"),
        ('{"query": "q", "context": [], "answer": 5, "label": 1}', "'answer' must be a string"),
        ("[" * 50 + "]" * 50, "nests JSON"),
    ],
)
def test_a_bad_row_is_refused_with_its_file_and_line(line: str, message: str, tmp_path: Path) -> None:
    good = json.dumps({"query": "q", "context": [], "answer": "a", "label": 1})
    path = write_rows(tmp_path / "rows.jsonl", [good, good, line])
    with pytest.raises(EvalDataError, match=message) as raised:
        load_rows(path)
    assert str(raised.value).startswith(f"{path}:3: ")


def test_unreadable_row_files_are_refused(tmp_path: Path) -> None:
    with pytest.raises(EvalDataError, match="cannot read"):
        load_rows(tmp_path / "absent.jsonl")
    (tmp_path / "latin1.jsonl").write_bytes(b'{"query": "caf\xe9"}\n')
    with pytest.raises(EvalDataError, match="not UTF-8"):
        load_rows(tmp_path / "latin1.jsonl")
    (tmp_path / "empty.jsonl").write_text("\n\n", encoding="utf-8")
    with pytest.raises(EvalDataError, match="has no rows"):
        load_rows(tmp_path / "empty.jsonl")


def labelled_rows() -> list[EvalRow]:
    def row(answer: str, label: int) -> EvalRow:
        line = json.dumps({"query": "What happens to the base fee?", "context": PASSAGES, "answer": answer})
        return parse_row(line[:-1] + f', "label": {label}}}')

    return [
        row("The base fee is burned rather than paid to the miner [1].", 1),
        row("The base fee rises when blocks are fuller [2].", 1),
        row("EIP-1559 adds a base fee per gas [1].", 1),
        row("Validators keep the whole fee as a staking reward.", 0),
        row("The fee is refunded to the sender after each epoch.", 0),
    ]


def test_evaluating_the_grounding_judge_on_labelled_rows() -> None:
    result = evaluate(labelled_rows(), GroundingJudge(), threshold=0.5, bond=250.0)
    assert result.judge == "grounding-v1" and (result.rows, result.decided) == (5, 5)
    assert result.accuracy == 1.0 and result.auroc == 1.0
    assert (result.disputes, result.won, result.lost, result.missed) == (2, 2, 0, 0)
    assert result.profit == 2 * 0.5 * 250.0
    assert result.brier is not None and result.brier < 0.1 and result.ece is not None


def test_an_llm_judge_that_never_decides_disputes_nothing() -> None:
    fast = RetryPolicy(attempts=1, timeout_s=5)
    with FakeModelServer("openai", echo=True) as fake:
        judge = LlmJudge(get_provider("openai", base_url=fake.base_url, api_key="sk-x", retry=fast), "m", samples=1)
        result = evaluate(labelled_rows(), judge, threshold=0.5, bond=250.0)
    assert (result.decided, result.undecided, result.disputes, result.missed) == (0, 5, 0, 2)
    assert result.accuracy is None and result.auroc is None and result.profit == 0.0
    assert len(fake.requests) == 5


def test_a_bad_threshold_is_refused_before_any_row_is_judged() -> None:
    with FakeModelServer("openai", echo=True) as fake:
        judge = LlmJudge(get_provider("openai", base_url=fake.base_url, api_key="sk-x"), "m", samples=1)
        with pytest.raises(JudgeError, match="between 0 and 1"):
            evaluate(labelled_rows(), judge, threshold=float("nan"), bond=1.0)
    assert fake.requests == []
