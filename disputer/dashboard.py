"""What the disputer adds to `attest ui`, found through the `attest.dashboard` entry point (the library never
imports the disputer): its verdicts on an assertion, and the dashboard's Dispute button, which runs `disputer
score --dispute` (the same judge, policy, budget checks, jobs and outbox; it disputes only when the policy says so).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from attest.config import load_config
from attest.paths import attest_home
from attest.storage import parse_time
from disputer.cli import score_one
from disputer.store import DisputerStore


def verdicts(assertion_id: str, network: str) -> list[dict[str, Any]]:
    """The decision this home's disputer recorded (and the dry runs it replaced), oldest first; none without a
    disputer state here."""
    path = attest_home() / "disputer.sqlite"
    if not path.exists():
        return []
    aid = bytes.fromhex(assertion_id[2:])
    with DisputerStore(path) as store:
        latest = store.decision(aid)
        found = [*store.superseded_decisions(aid), *([latest] if latest is not None else [])]
    return [
        {
            "action": ("dry run: " if d.dry_run else "") + d.action, "reason": d.reason, "score": d.calibrated,
            "judge": d.judge, "rationale": d.rationale, "created_at": d.created_at,
        }
        for d in found
    ]  # fmt: skip


def decisions(network: str) -> list[tuple[datetime, str]]:
    """When the disputer decided what on `network` (a dry run's decisions marked as such), for a chart over time."""
    path = attest_home() / "disputer.sqlite"
    if not path.exists():
        return []
    with DisputerStore(path) as store:
        found = store.decision_times(load_config().resolve_network(network).chain_id)
    return [(parse_time(at), ("dry run: " if dry else "") + action) for at, action, _, dry in found]


def dispute(assertion_id: str, network: str) -> str:
    """Judge and, when the policy says so, dispute; what happened, in one line."""
    data = score_one(assertion_id, network, None, dispute=True)
    sent = [f"{t['kind']} {t['status']} {t['tx'] or ''}".rstrip() for txs in data["txs"].values() for t in txs]
    decision = data["decision"]
    return f"{decision['action']}: {decision['reason']}" + (f" ({'; '.join(sent)})" if sent else "")
