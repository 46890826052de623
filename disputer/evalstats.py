"""How good a judge is on labelled answers, and what disputing by it would have earned.

Rows are JSONL, one labelled answer per line:

    {"query": "...", "context": ["passage", {"text": "...", "source": "eip-1559.md"}], "answer": "...", "label": 1}

`label` is 1 for a correct answer and 0 for a wrong one. What `attest export` writes (JSONL, CSV or TSV, with all
its columns) is a dataset too: without a `label` column each row's label is its outcome on chain (`attested` 1,
`rejected` 0), and rows not settled yet have none and are skipped (counted).

The statistics read each verdict's calibrated score (the raw score when the judge has no calibration); undecided
verdicts are counted, never disputed, and left out of the score statistics.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, NoReturn

from attest.context import RetrievedChunk
from attest.errors import EvalDataError, JudgeError
from attest.flow.export import COLUMNS as EXPORT_COLUMNS
from attest.ipfs.unixfs import cid_of
from attest.jsonsafe import nested_deeper_than
from disputer.judge import Judge

ECE_BINS = 10
MAX_LINE_CHARS = 1_048_576
_ROW_KEYS = frozenset({"query", "context", "answer", "label", "id", "note"})
_EXPORT_KEYS = frozenset(EXPORT_COLUMNS) | {"label"}
_OUTCOME_LABELS = {"attested": 1, "rejected": 0}
_PASSAGE_KEYS = frozenset({"text", "source", "heading", "doc_cid", "chunk_index", "sha256"})


# -- rows ----------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class EvalRow:
    query: str
    context: tuple[RetrievedChunk, ...]
    answer: str
    label: int  # 1 correct, 0 wrong
    id: str | None = None


@dataclass(frozen=True)
class Dataset:
    rows: list[EvalRow]
    unlabelled: int  # exported attestations not settled yet: no outcome, so no label


def load_rows(path: Path) -> list[EvalRow]:
    """Every labelled row of a dataset (see `load_dataset`)."""
    return load_dataset(path).rows


def load_dataset(path: Path) -> Dataset:
    """The rows of a JSONL file, or of `attest export`'s CSV/TSV (by the file's suffix); blank lines are skipped,
    and the first bad line raises with its number."""
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise EvalDataError(f"cannot read evaluation rows from {path}: {err.strerror}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise EvalDataError(f"{path} is not UTF-8 (bad byte at offset {err.start}); rows are UTF-8 JSONL") from None
    if path.suffix.casefold() in (".csv", ".tsv"):
        found = _table_rows(text, path)
    else:
        lines = enumerate(text.splitlines(), start=1)
        found = [_parse(line, f"{path}:{n}") for n, line in lines if line.strip()]
    rows = [row for row in found if row is not None]
    if not found:
        raise EvalDataError(f"{path} has no rows; write one JSON object per line")
    if not rows:
        raise EvalDataError(f"{path} has no labelled rows: its {len(found)} exported rows are not settled yet")
    return Dataset(rows, len(found) - len(rows))


def _table_rows(text: str, path: Path) -> list[EvalRow | None]:
    """`attest export --format csv|tsv`: its list columns are JSON, its empty cells nothing."""
    delimiter = "\t" if path.suffix.casefold() == ".tsv" else ","
    found: list[EvalRow | None] = []
    for n, cells in enumerate(csv.DictReader(io.StringIO(text), delimiter=delimiter), start=2):
        where = f"{path}:{n}"
        data: dict[str, Any] = {k: v for k, v in cells.items() if v not in ("", None)}
        try:
            data["context"] = json.loads(data.get("context", "[]"))
            if "label" in data:
                data["label"] = int(data["label"])
        except ValueError as err:
            raise EvalDataError(f"{where}: 'context' must be JSON and 'label' 0 or 1 ({err})") from None
        found.append(_from_object(data, where))
    return found


def parse_row(line: str, where: str = "row") -> EvalRow:
    row = _parse(line, where)
    if row is None:
        raise EvalDataError(f"{where}: the exported row has no label: its assertion is not settled yet")
    return row


def _parse(line: str, where: str) -> EvalRow | None:
    def fail(problem: str) -> NoReturn:
        raise EvalDataError(f"{where}: {problem}")

    if len(line) > MAX_LINE_CHARS:
        fail(f"the line is over {MAX_LINE_CHARS:,} characters")
    if nested_deeper_than(line, 4):
        fail("the row nests JSON more deeply than a row does")
    problem: str | None = None
    try:
        data = json.loads(line, object_pairs_hook=_unique_keys, parse_constant=_no_constant)
    except EvalDataError as err:
        problem = str(err)
    except (ValueError, RecursionError) as err:
        problem = f"not valid JSON ({err})"
    if problem is not None:
        fail(problem)
    if not isinstance(data, dict):
        fail("a row is a JSON object with query, context, answer and label")
    return _from_object(data, where)


def _from_object(data: dict[str, Any], where: str) -> EvalRow | None:
    def fail(problem: str) -> NoReturn:
        raise EvalDataError(f"{where}: {problem}")

    if "outcome" in data or "record_cid" in data:  # a row of `attest export`
        if unknown := set(data) - _EXPORT_KEYS:
            fail(f"unknown keys {', '.join(sorted(unknown))}; an exported row has `attest export`'s columns")
        if "label" not in data:
            outcome = data.get("outcome")
            if outcome is None:
                return None
            if outcome not in _OUTCOME_LABELS:
                fail(f"'outcome' must be attested or rejected, not {json.dumps(outcome)}; or add a 'label' column")
            data = {**data, "label": _OUTCOME_LABELS[outcome]}
    elif unknown := set(data) - _ROW_KEYS:
        fail(f"unknown keys {', '.join(sorted(unknown))}; a row has {', '.join(sorted(_ROW_KEYS))}")
    for key in ("query", "context", "answer", "label"):
        if key not in data:
            fail(f"missing {key!r}")
    query, answer, label, context = data["query"], data["answer"], data["label"], data["context"]
    if not isinstance(query, str) or not query.strip():
        fail("'query' must be a non-empty string")
    if not isinstance(answer, str):
        fail("'answer' must be a string")
    if isinstance(label, bool) or label not in (0, 1):
        fail(f"'label' must be 0 (wrong) or 1 (correct), not {json.dumps(label)}")
    if not isinstance(context, list):
        fail("'context' must be a list of passages (strings or objects with 'text')")
    row_id = data.get("id")
    if row_id is not None and (isinstance(row_id, bool) or not isinstance(row_id, str | int)):
        fail("'id' must be a string or an integer")
    chunks = tuple(_passage(item, i, f"{where}: context[{i}]") for i, item in enumerate(context))
    return EvalRow(query, chunks, answer, int(label), None if row_id is None else str(row_id))


def _passage(item: object, index: int, where: str) -> RetrievedChunk:
    if isinstance(item, str):
        item = {"text": item}
    if not isinstance(item, dict):
        raise EvalDataError(f"{where}: a passage is a string or an object with 'text'")
    if unknown := set(item) - _PASSAGE_KEYS:
        raise EvalDataError(f"{where}: unknown keys {', '.join(sorted(unknown))}")
    text, source, heading = item.get("text"), item.get("source", f"context-{index + 1}"), item.get("heading", [])
    if not isinstance(text, str):
        raise EvalDataError(f"{where}: 'text' must be a string")
    if not isinstance(source, str):
        raise EvalDataError(f"{where}: 'source' must be a string")
    if isinstance(heading, str):
        heading = [heading]
    if not isinstance(heading, list) or not all(isinstance(h, str) for h in heading):
        raise EvalDataError(f"{where}: 'heading' must be a string or a list of strings")
    data = text.encode("utf-8")
    sha256 = hashlib.sha256(data).hexdigest()
    if item.get("sha256", sha256) != sha256:
        raise EvalDataError(f"{where}: 'sha256' does not match the passage text; fix or drop it")
    doc_cid = item.get("doc_cid")
    if doc_cid is None:
        doc_cid = str(cid_of(data))
    if not isinstance(doc_cid, str):
        raise EvalDataError(f"{where}: 'doc_cid' must be a string")
    chunk_index = item.get("chunk_index", index)
    if isinstance(chunk_index, bool) or not isinstance(chunk_index, int) or chunk_index < 0:
        raise EvalDataError(f"{where}: 'chunk_index' must be a non-negative integer")
    return RetrievedChunk(source, doc_cid, chunk_index, text, sha256, tuple(heading))


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [key for key, _ in pairs]
    if len(set(keys)) != len(keys):
        raise EvalDataError("a key appears twice in one object")
    return dict(pairs)


def _no_constant(name: str) -> NoReturn:
    raise EvalDataError(f"{name} is not a JSON number")


# -- statistics --------------------------------------------------------------------------------------------
def _check(scores: Sequence[float | None], labels: Sequence[int]) -> None:
    if len(scores) != len(labels):
        raise ValueError(f"{len(scores)} scores for {len(labels)} labels")


def accuracy(scores: Sequence[float], labels: Sequence[int], threshold: float) -> float | None:
    """The share of answers the threshold classifies right (score >= threshold means "correct")."""
    _check(scores, labels)
    if not scores:
        return None
    return sum((s >= threshold) == (y == 1) for s, y in zip(scores, labels, strict=True)) / len(scores)


def auroc(scores: Sequence[float], labels: Sequence[int]) -> float | None:
    """The chance a random correct answer outscores a random wrong one (ties count half); None without both."""
    _check(scores, labels)
    positives = sum(1 for y in labels if y == 1)
    negatives = len(labels) - positives
    if positives == 0 or negatives == 0:
        return None
    order = sorted(range(len(scores)), key=lambda i: scores[i])
    ranks = [0.0] * len(scores)
    start = 0
    while start < len(order):
        end = start
        while end + 1 < len(order) and scores[order[end + 1]] == scores[order[start]]:
            end += 1
        for i in order[start : end + 1]:
            ranks[i] = (start + end) / 2 + 1  # tied scores share their mean rank
        start = end + 1
    rank_sum = sum(r for r, y in zip(ranks, labels, strict=True) if y == 1)
    return (rank_sum - positives * (positives + 1) / 2) / (positives * negatives)


def ece(scores: Sequence[float], labels: Sequence[int], bins: int = ECE_BINS) -> float | None:
    """Expected calibration error: over equal-width score bins, the row-weighted gap between the mean score
    and the share of correct answers. A score of exactly 1 falls in the top bin."""
    _check(scores, labels)
    if not scores:
        return None
    totals = [[0.0, 0.0, 0] for _ in range(bins)]
    for s, y in zip(scores, labels, strict=True):
        b = min(int(s * bins), bins - 1)
        totals[b][0] += s
        totals[b][1] += y
        totals[b][2] += 1
    return sum(abs(conf - hits) for conf, hits, n in totals if n) / len(scores)


def brier(scores: Sequence[float], labels: Sequence[int]) -> float | None:
    """Mean squared gap between score and label."""
    _check(scores, labels)
    if not scores:
        return None
    return sum((s - y) ** 2 for s, y in zip(scores, labels, strict=True)) / len(scores)


@dataclass(frozen=True)
class BondOutcome:
    disputes: int
    won: int  # disputes of wrong answers
    lost: int  # disputes of correct answers
    missed: int  # wrong answers not disputed (undecided verdicts included)
    profit: float  # in bond currency units


def bond_outcome(
    scores: Sequence[float | None],
    labels: Sequence[int],
    threshold: float,
    bond: float,
    dispute_cost: float = 0.0,
) -> BondOutcome:
    """What disputing every answer scored below `threshold` would have earned, at UMA OOv3's economics.

    A disputer posts a bond equal to the asserter's, `bond`. The DVM resolves the assertion by its truth, taken
    to be the row's label. The loser's bond is split: half is burned (to the Store), half goes to the winner, who
    also gets its own bond back. So per dispute:

        wrong answer (label 0), dispute wins:   +0.5 * bond - dispute_cost
        correct answer (label 1), dispute loses:  -1.0 * bond - dispute_cost

    and 0 for an answer not disputed (an undecided verdict, score None, is never disputed). Disputing pays on
    average only when more than two in three disputes are right: 0.5 * p = 1 - p at p = 2/3.
    """
    _check(scores, labels)
    if not math.isfinite(bond) or bond < 0 or not math.isfinite(dispute_cost) or dispute_cost < 0:
        raise JudgeError(f"bond ({bond}) and dispute cost ({dispute_cost}) must be finite and not negative")
    won = lost = missed = 0
    for s, y in zip(scores, labels, strict=True):
        disputed = s is not None and s < threshold
        if disputed and y == 0:
            won += 1
        elif disputed:
            lost += 1
        elif y == 0:
            missed += 1
    disputes = won + lost
    profit = won * 0.5 * bond - lost * bond - disputes * dispute_cost
    return BondOutcome(disputes, won, lost, missed, profit)


def check_threshold(threshold: float) -> None:
    if not (math.isfinite(threshold) and 0 <= threshold <= 1):
        raise JudgeError(f"the dispute threshold is a score between 0 and 1, not {threshold}")


# -- a judge's report ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class EvalReport:
    judge: str
    rows: int
    decided: int
    threshold: float
    bond: float
    accuracy: float | None
    auroc: float | None
    ece: float | None
    brier: float | None
    disputes: int
    won: int
    lost: int
    missed: int
    profit: float
    mean_latency_ms: float

    @property
    def undecided(self) -> int:
        return self.rows - self.decided

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "undecided": self.undecided}


def report(
    judge: str,
    scores: Sequence[float | None],
    labels: Sequence[int],
    *,
    threshold: float,
    bond: float,
    dispute_cost: float = 0.0,
    latencies_ms: Sequence[float] = (),
) -> EvalReport:
    """The statistics for scores already given (None for undecided)."""
    _check(scores, labels)
    check_threshold(threshold)
    decided = [(s, y) for s, y in zip(scores, labels, strict=True) if s is not None]
    s_decided, y_decided = [s for s, _ in decided], [y for _, y in decided]
    outcome = bond_outcome(scores, labels, threshold, bond, dispute_cost)
    return EvalReport(
        judge=judge,
        rows=len(scores),
        decided=len(decided),
        threshold=threshold,
        bond=bond,
        accuracy=accuracy(s_decided, y_decided, threshold),
        auroc=auroc(s_decided, y_decided),
        ece=ece(s_decided, y_decided),
        brier=brier(s_decided, y_decided),
        disputes=outcome.disputes,
        won=outcome.won,
        lost=outcome.lost,
        missed=outcome.missed,
        profit=outcome.profit,
        mean_latency_ms=round(sum(latencies_ms) / len(latencies_ms), 3) if latencies_ms else 0.0,
    )


def evaluate(
    rows: Sequence[EvalRow], judge: Judge, threshold: float, bond: float, *, dispute_cost: float = 0.0
) -> EvalReport:
    """Judge every row, then report."""
    check_threshold(threshold)
    verdicts = [judge.judge(row.query, row.context, row.answer) for row in rows]
    return report(
        judge.label,
        [v.calibrated_score for v in verdicts],
        [row.label for row in rows],
        threshold=threshold,
        bond=bond,
        dispute_cost=dispute_cost,
        latencies_ms=[v.latency_ms for v in verdicts],
    )
