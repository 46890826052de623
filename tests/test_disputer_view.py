"""The dashboard reads the disputer's verdicts, decisions over time and latest evaluation through the
`attest.disputer_view` entry point (attest/ui/disputer_view.py), never by importing the disputer."""

from __future__ import annotations

import tomllib
from datetime import UTC, datetime
from pathlib import Path

from attest.context import RetrievedChunk
from attest.ui.disputer_view import DISPUTER_VIEW_GROUP, CheckResult, disputer_view
from attest.ui.series import bucket_counts
from attest.verify import Check
from disputer.evaluate import Evaluation
from disputer.grounding import GroundingJudge
from disputer.store import DisputerStore
from tests.test_disputer_store import CHAIN, OOV3, made

QUERY = "How often should the wick be trimmed?"
PASSAGE = "Trim the wick every four hours so the flame stays bright and does not smoke the lens."


def test_pyproject_registers_the_disputers_view() -> None:
    declared = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())
    assert declared["project"]["entry-points"][DISPUTER_VIEW_GROUP] == {"disputer": "disputer.dashboard:open_view"}


def test_the_view_returns_a_disputer_stores_verdicts(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    empty = disputer_view(home)  # installed, nothing kept here yet: a view that reads nothing (and could dispute)
    assert empty is not None and empty.verdicts("0x" + "ab" * 32) == [] and empty.decisions() == []
    assert empty.latest_eval() is None and not (home / "disputer.sqlite").exists()  # reading creates no state
    judge = GroundingJudge()
    chunk = RetrievedChunk("lamp.md", "bafkdoc", 0, PASSAGE, "0" * 64)
    wrong = judge.judge(QUERY, [chunk], "Replace the lamp with an electric bulb yearly.")
    checks = (Check("schema", True, "valid"), Check("signature", True, "signed by the asserter"),
              Check("context", None, "not checked: document missing"))  # fmt: skip
    event, other = made(7), made(8)
    evaluation = Evaluation(event.assertion_id, "bafyrecord", checks, wrong)
    with DisputerStore(home / "disputer.sqlite") as store:
        store.upsert_made(CHAIN, event, b"\x01" * 32, True, oov3=OOV3)
        store.upsert_made(CHAIN, other, b"\x01" * 32, True, oov3=OOV3)
        for dry_run in (True, False):  # a dry run's preview, then the real decision replacing it
            store.record_decision(
                event.assertion_id, action="dispute", reason="score below the threshold", score=wrong.score,
                calibrated=wrong.calibrated_score, rationale=wrong.rationale, judge=wrong.judge,
                checks=evaluation.as_dict(), dry_run=dry_run,
            )  # fmt: skip
        store.record_decision(other.assertion_id, action="undecided", reason="record unavailable",
                              checks={"unavailable": "not found on any gateway"})  # fmt: skip
    view = disputer_view(home)
    assert view is not None
    found = view.verdicts("0x" + event.assertion_id.hex().upper())
    assert [(v.dry_run, v.superseded) for v in found] == [(False, False), (True, True)]
    first = found[0]
    assert first.assertion_id == "0x" + event.assertion_id.hex() and first.action == "dispute"
    assert first.score == wrong.score and first.score is not None and first.score < 0.5
    assert first.rationale == wrong.rationale and first.judge == "grounding-v1" and first.template is None
    assert first.checks == (
        CheckResult("schema", "pass", "valid"),
        CheckResult("signature", "pass", "signed by the asserter"),
        CheckResult("context", "skip", "not checked: document missing"),
    )
    assert view.verdicts("0x" + other.assertion_id.hex())[0].unavailable == "not found on any gateway"
    assert view.verdicts("0x" + "ab" * 32) == [] and view.verdicts("not an id") == []

    events = view.decisions(CHAIN)
    assert [(e.action, e.dry_run, e.chain_id) for e in events] == [
        ("dispute", False, CHAIN),
        ("undecided", False, CHAIN),
    ]
    assert all(e.at.tzinfo is not None and e.at <= datetime.now(UTC) for e in events)
    assert view.decisions(CHAIN + 1) == []
    counts = bucket_counts([(e.at, e.action) for e in events], kinds=["none", "dispute", "undecided"]).counts
    assert sum(counts["dispute"]) == 1 and sum(counts["undecided"]) == 1 and sum(counts["none"]) == 0
    assert view.latest_eval() is None  # no `disputer eval` ran in this home


def test_the_view_reads_the_configured_postgres_store(postgres_url: str, attest_home: str) -> None:
    """With `[storage] url` set the disputer keeps its state on the server, and the dashboard reads it there."""
    Path(attest_home, "config.toml").write_text(f'[storage]\nurl = "{postgres_url}"\n')
    event = made(9)
    with DisputerStore() as store:
        store.upsert_made(CHAIN, event, b"\x01" * 32, True, oov3=OOV3)
        store.record_decision(event.assertion_id, action="dispute", reason="score below the threshold", score=0.1,
                              rationale="contradicts the passage", judge="grounding-v1")  # fmt: skip
    view = disputer_view()
    assert view is not None
    (found,) = view.verdicts("0x" + event.assertion_id.hex())
    assert (found.action, found.score, found.rationale, found.superseded) == (
        "dispute", 0.1, "contradicts the passage", False,
    )  # fmt: skip
    assert [(e.action, e.chain_id) for e in view.decisions(CHAIN)] == [("dispute", CHAIN)]
    assert not Path(attest_home, "disputer.sqlite").exists()
