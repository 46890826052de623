"""What the dashboard (`attest ui`) reads of the disputer: its verdicts, decisions over time and latest evaluation,
in the shapes of attest/ui/disputer_view.py, without state read as none. disputer/dashboard.py adds the Dispute
action and is the `attest.disputer_view` entry point.

The state is where the disputer keeps it: the configured `[storage] url` server, else the home's SQLite file. Each
call opens it for its own read: the dashboard serves requests from several threads, and a connection belongs to one.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from attest.storage import parse_time, utc_now
from attest.ui.disputer_view import CheckResult, DecisionEvent, DisputerVerdict, EvalResult
from disputer.store import Decision, DisputerStore, kept_state

LATEST_EVAL = "disputer-eval.json"  # the latest `disputer eval` run, kept for the dashboard


class StoreView:
    """A disputer's data in one ATTEST_HOME."""

    def __init__(self, home: Path) -> None:
        self.home = home

    def verdicts(self, assertion_id: str) -> list[DisputerVerdict]:
        key = assertion_id.lower().removeprefix("0x")
        where = kept_state(self.home)
        if len(key) != 64 or not all(c in "0123456789abcdef" for c in key) or where is None:
            return []
        aid = bytes.fromhex(key)
        with DisputerStore(where) as store:
            current = store.decision(aid)
            previews = store.superseded_decisions(aid)
        found = [] if current is None else [_verdict(current, superseded=False)]
        return found + [_verdict(d, superseded=True) for d in reversed(previews)]

    def decisions(self, chain_id: int | None = None) -> list[DecisionEvent]:
        where = kept_state(self.home)
        if where is None:
            return []
        with DisputerStore(where) as store:
            rows = store.decision_times(chain_id)
        return [DecisionEvent(parse_time(at), action, chain, dry) for at, action, chain, dry in rows]

    def latest_eval(self) -> EvalResult | None:
        try:
            data = json.loads((self.home / LATEST_EVAL).read_text(encoding="utf-8"))
            return EvalResult(
                at=str(data["at"]), dataset=str(data["dataset"]), judge=str(data["judge"]), report=dict(data["report"]),
                scores=tuple(float(s) for s in data["scores"]), labels=tuple(int(y) for y in data["labels"]),
            )  # fmt: skip
        except (OSError, ValueError, KeyError, TypeError):
            return None  # none kept, or a file from another version: the dashboard shows no evaluation


def keep_eval(home: Path, dataset: Path, report: dict[str, Any], scores: list[float], labels: list[int]) -> bool:
    """Keep an evaluation as the home's latest for the dashboard (whole or not at all); False when the home is not
    a writable folder (an auditor's read-only copy): the evaluation itself does not depend on it."""
    if not home.is_dir() or not os.access(home, os.W_OK):
        return False
    data = {"at": utc_now(), "dataset": str(dataset), "judge": report["judge"], "report": report,
            "scores": scores, "labels": labels}  # fmt: skip
    fd, tmp = tempfile.mkstemp(dir=home, prefix=f".{LATEST_EVAL}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump(data, out)
        os.replace(tmp, home / LATEST_EVAL)
    except OSError:
        Path(tmp).unlink(missing_ok=True)
        return False
    return True


def _verdict(d: Decision, *, superseded: bool) -> DisputerVerdict:
    verdict = d.checks.get("verdict") or {}
    checks = tuple(
        CheckResult(str(c.get("name", "")), str(c.get("status", "")), str(c.get("detail", "")))
        for c in d.checks.get("checks", [])
        if isinstance(c, dict)
    )
    return DisputerVerdict(
        assertion_id="0x" + d.assertion_id.hex(), decided_at=d.created_at, action=d.action, reason=d.reason,
        score=d.score, calibrated=d.calibrated, rationale=d.rationale, judge=d.judge,
        template=verdict.get("template"), samples=tuple(float(s) for s in verdict.get("samples", [])),
        checks=checks, unavailable=d.checks.get("unavailable"), dry_run=d.dry_run, superseded=superseded,
    )  # fmt: skip
