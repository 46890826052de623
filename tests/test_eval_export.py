"""`disputer eval` reads what `attest export` writes: JSONL, CSV and TSV, labelled by the outcome on chain (or a
`label` column), with rows not settled yet skipped and counted. Real asks, disputes and settles on the devnet."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from disputer.cli import cli as disputer_cli
from tests.conftest import LocalChain
from tests.test_ask import ask_json, chain, dispute_and_resolve, ok

__all__ = ["chain"]  # the fixture, used by name
WRONG = "Replace the lamp with an electric bulb yearly."


def evaluate(dataset: Path) -> dict[str, object]:
    result = CliRunner().invoke(disputer_cli, ["eval", "--dataset", str(dataset), "--json"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    data: dict[str, object] = json.loads(result.output)
    return data


def test_disputer_eval_reads_attest_export(chain: LocalChain, tmp_path: Path) -> None:
    honest = ask_json()
    wrong = ask_json("--answer", WRONG)
    dispute_and_resolve(chain, str(wrong["assertion_id"]), 0)
    chain.advance(7300)
    assert "settled - attested" in ok("settle", "--all")
    ask_json("--no-assert")  # pinned only: no outcome, so no label
    for fmt in ("jsonl", "csv", "tsv"):
        path = tmp_path / f"export.{fmt}"
        ok("export", "--format", fmt, "-o", str(path))
        data = evaluate(path)
        raw = data["raw"]
        assert isinstance(raw, dict) and data["unlabelled"] == 1, fmt
        assert raw["judge"] == "grounding-v2" and raw["rows"] == 2 and raw["undecided"] == 0, fmt
        assert raw["auroc"] == 1.0 and raw["accuracy"] == 1.0 and raw["won"] == 1 and raw["lost"] == 0, fmt
    # A label column wins over the outcome: here the pinned answer, labelled by hand.
    rows = [json.loads(line) for line in (tmp_path / "export.jsonl").read_text().splitlines()]
    assert [r["outcome"] for r in rows] == ["attested", "rejected", None] and rows[0]["id"] == honest["id"]
    rows[2]["label"] = 1
    labelled = tmp_path / "labelled.jsonl"
    labelled.write_text("".join(json.dumps(r) + "\n" for r in rows))
    data = evaluate(labelled)
    assert data["unlabelled"] == 0 and isinstance(data["raw"], dict) and data["raw"]["rows"] == 3


def test_an_exported_row_with_an_unknown_outcome_is_refused(tmp_path: Path) -> None:
    row = {"query": "q", "answer": "a", "context": ["a"], "outcome": "maybe", "record_cid": "bafk"}
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps(row) + "\n")
    result = CliRunner().invoke(disputer_cli, ["eval", "--dataset", str(path)])
    assert "'outcome' must be attested or rejected" in str(result.exception)
    assert "add a 'label' column" in str(result.exception)
