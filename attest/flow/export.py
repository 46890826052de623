"""The ledger as a dataset: one row per attestation with what was asked, answered and cited, and how it ended.

This is the evaluation / RLHF export: the outcome on chain is the label the market produced, and the
disputer's judge data (when a disputer ran on this machine) sits beside it, found through `judge_data`. The
rankings of `attest rank` export as preference data (attest/flow/dataset.py).
"""

from __future__ import annotations

import csv
import io
import json
import os
import tempfile
from collections.abc import Callable, Iterable, Sequence
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, TextIO

from attest.batch.store import Batch, BatchBook
from attest.claim import governed_rules
from attest.errors import AttestError, LedgerError
from attest.flow.dataset import PREFERENCE_FORMATS, preference_rows, render_preferences
from attest.kb.governed import Governance
from attest.ledger import Attestation, Ledger
from attest.paths import attest_home
from attest.record.codec import decode_record

COLUMNS = (
    "id", "network", "status", "outcome", "created_at", "query", "answer", "context", "corpus", "provider",
    "requested_model", "returned_model", "prompt_template", "record_cid", "digest", "asserter", "assertion_id",
    "bond", "currency", "disputed", "disputer", "judge_score", "judge_rationale", "judge", "judge_action",
    "bond_amount", "bond_symbol", "batch_root", "leaf_index", "governance",
)  # fmt: skip


def rows(
    attestations: Iterable[Attestation],
    judged: dict[str, dict[str, Any]],
    batches: dict[int, Batch] | None = None,
    governed: dict[str, Governance] | None = None,
) -> list[dict[str, Any]]:
    """One row per record; a batched record carries its batch's root, its leaf index and the batch's assertion.
    `governed`: corpus manifest CID -> the governance it names (the registry, chain and block its documents were
    approved at), for the `governance` column; `claimed` says whether the claim's rules (v3) assert it."""
    out = []
    for a in attestations:
        record = decode_record(a.record)
        batch = None if a.batch_id is None else (batches or {}).get(a.batch_id)
        assertion_id = a.assertion_id if batch is None else batch.assertion_id
        judge = judged.get((assertion_id or "").lower(), {})
        out.append(
            {
                "id": a.id,
                "network": a.network,
                "status": a.status,
                "outcome": a.outcome,
                "created_at": record.created_at,
                "query": record.query,
                "answer": record.answer,
                "context": [
                    {"source": c.source, "doc_cid": c.doc_cid, "chunk_index": c.chunk_index, "text": c.text}
                    for c in record.context
                ],
                "corpus": record.corpus,
                "provider": record.model.provider,
                "requested_model": record.model.requested_model,
                "returned_model": record.model.returned_model,
                "prompt_template": record.prompt.template if record.prompt else None,
                "record_cid": a.cid,
                "digest": a.digest,
                "asserter": a.asserter,
                "assertion_id": assertion_id,
                "bond": None if a.bond is None else str(a.bond),
                "currency": a.currency,
                "disputed": (a.disputer if batch is None else batch.disputer) is not None,
                "disputer": a.disputer if batch is None else batch.disputer,
                "judge_score": judge.get("score"),
                "judge_rationale": judge.get("rationale"),
                "judge": judge.get("judge"),
                "judge_action": judge.get("action"),
                # `bond` is the integer the contract counts; `bond_amount` the same in the currency's own units.
                "bond_amount": a.bond_amount,
                "bond_symbol": a.bond_symbol,
                "batch_root": None if batch is None else batch.root,
                "leaf_index": a.leaf_index,
                "governance": _governance(record.corpus, a.rules_cid, governed or {}),
            }
        )
    return out


def _governance(corpus: str | None, rules: str | None, governed: dict[str, Governance]) -> dict[str, Any] | None:
    gov = governed.get(corpus or "")
    if gov is None:
        return None
    return {**gov.as_dict(), "claimed": rules is not None and governed_rules(rules)}


def governance_of(corpora: Iterable[str | None]) -> dict[str, Governance]:
    """The governance each corpus manifest names, read from the local store (where `ask` pinned it)."""
    from attest.ipfs.cid import CID
    from attest.ipfs.local import LocalStore
    from attest.kb.governed import parse_manifest

    store = LocalStore()
    found: dict[str, Governance] = {}
    for corpus in {c for c in corpora if c}:
        try:
            gov = parse_manifest(store.get(CID.parse(corpus))).governance
        except (AttestError, ValueError):  # not here, or not a manifest: the column stays empty
            continue
        if gov is not None:
            found[corpus] = gov
    return found


def render(data: Sequence[dict[str, Any]], fmt: str) -> str:
    if fmt == "jsonl":
        return "".join(json.dumps(row, ensure_ascii=False, sort_keys=False) + "\n" for row in data)
    if fmt == "tsv":
        lines = ["\t".join(COLUMNS), *("\t".join(_tsv_cell(row[k]) for k in COLUMNS) for row in data)]
        return "".join(line + "\n" for line in lines)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS, lineterminator="\n", extrasaction="raise")
    writer.writeheader()
    for row in data:
        writer.writerow(
            {k: json.dumps(v, ensure_ascii=False) if isinstance(v, list | dict) else v for k, v in row.items()}
        )
    return buffer.getvalue()


def _tsv_cell(value: Any) -> str:
    """TSV has no quoting, so a tab or newline inside a cell is escaped as `\\t`, `\\n`, `\\r` (and a backslash as
    `\\\\`), the convention of PostgreSQL's text COPY and of `mlr --tsv`: nothing of the cell is lost."""
    if value is None:
        return ""
    text = json.dumps(value, ensure_ascii=False) if isinstance(value, list | dict) else str(value)
    return text.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")


JUDGE_DATA_GROUP = "attest.judge_data"
# A judge-data source: (assertion ids, ATTEST_HOME) -> {lowercase assertion id: {score, rationale, judge, action}}.
JudgeData = Callable[[Sequence[str], Path], dict[str, dict[str, Any]]]


def judge_data(assertion_ids: Iterable[str], home: Path | None = None) -> dict[str, dict[str, Any]]:
    """What judges kept in this ATTEST_HOME about these assertions. The library does not know who judges: a
    package that does (the disputer) registers a source under the `attest.judge_data` entry point group."""
    ids = list(assertion_ids)
    found: dict[str, dict[str, Any]] = {}
    for entry in entry_points(group=JUDGE_DATA_GROUP):
        source: JudgeData = entry.load()
        found.update(source(ids, home or attest_home()))
    return found


def write_export(target: TextIO | Path, fmt: str, statuses: Sequence[str] = ()) -> int:
    """Write the dataset; a file is written whole or not at all (temp file, then rename)."""
    if fmt in PREFERENCE_FORMATS:
        with Ledger() as ledger:
            text, count = render_preferences(preference_rows(ledger), fmt)
    elif fmt in ("jsonl", "csv", "tsv"):
        with Ledger() as ledger:
            selected = ledger.select(statuses=statuses)
            batches = {b.id: b for b in BatchBook(ledger.database).select()}
        assertion_ids = [a.assertion_id for a in selected if a.assertion_id]
        assertion_ids += [b.assertion_id for b in batches.values() if b.assertion_id]
        governed = governance_of(decode_record(a.record).corpus for a in selected)
        data = rows(selected, judge_data(assertion_ids), batches, governed)
        text, count = render(data, fmt), len(data)
    else:
        raise LedgerError(f"unknown export format {fmt!r}; use jsonl, csv, tsv, dpo, tt-tsv or tt-json")
    if isinstance(target, Path):
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
        try:
            with os.fdopen(fd, "w", encoding="utf-8", newline="") as out:
                out.write(text)
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    else:
        target.write(text)
    return count
