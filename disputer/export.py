"""The disputer's side of `attest export`: its decision per assertion, registered in pyproject.toml as an
`attest.judge_data` entry point so the attest library reads judge data without importing the disputer."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from disputer.store import DisputerStore, kept_state


def judge_data(assertion_ids: Sequence[str], home: Path) -> dict[str, dict[str, Any]]:
    """The decision per assertion id (lowercase), when a disputer kept its state in this ATTEST_HOME, or on the
    configured PostgreSQL server."""
    where = kept_state(home)
    if where is None:
        return {}
    found: dict[str, dict[str, Any]] = {}
    with DisputerStore(where) as store:
        for assertion_id in assertion_ids:
            decision = store.decision(bytes.fromhex(assertion_id.removeprefix("0x")))
            if decision is not None:
                found[assertion_id.lower()] = {
                    "score": decision.calibrated if decision.calibrated is not None else decision.score,
                    "rationale": decision.rationale,
                    "judge": decision.judge,
                    "action": decision.action,
                }
    return found
