"""`attest export` gets the disputer's judge data through the `attest.judge_data` entry point group, so the
library never imports the disputer."""

from __future__ import annotations

from importlib.metadata import entry_points
from pathlib import Path

from attest.flow.export import JUDGE_DATA_GROUP, judge_data
from disputer.store import DisputerStore
from tests.test_disputer_store import CHAIN, OOV3, made


def test_the_disputer_registers_its_judge_data_source() -> None:
    assert [e.value for e in entry_points(group=JUDGE_DATA_GROUP)] == ["disputer.export:judge_data"]


def test_judge_data_is_the_disputers_decision_per_assertion(tmp_path: Path) -> None:
    event, other = made(7), made(8)
    with DisputerStore(tmp_path / "disputer.sqlite") as store:
        store.upsert_made(CHAIN, event, b"\x01" * 32, True, oov3=OOV3)
        store.record_decision(
            event.assertion_id, action="dispute", reason="wrong", score=0.1, calibrated=0.05,
            rationale="contradicts [1]", judge="grounding-v1",
        )  # fmt: skip
    found = judge_data(["0x" + event.assertion_id.hex().upper(), "0x" + other.assertion_id.hex()], tmp_path)
    assert found == {
        "0x" + event.assertion_id.hex(): {
            "score": 0.05, "rationale": "contradicts [1]", "judge": "grounding-v1", "action": "dispute"
        }
    }  # fmt: skip


def test_without_a_disputer_store_there_is_no_judge_data(tmp_path: Path) -> None:
    assert judge_data(["0x" + made(1).assertion_id.hex()], tmp_path) == {}
