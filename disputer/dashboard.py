"""The disputer's side of `attest ui`, registered in pyproject.toml as the `attest.disputer_view` entry point (the
library never imports the disputer): its verdicts, decisions and latest evaluation (disputer/view.py), and the
dashboard's Dispute button, which runs `disputer score --dispute` (the same judge, policy, budget checks, jobs and
outbox; it disputes only when the policy says so). It sits above disputer/cli, whose `score_one` it calls.
"""

from __future__ import annotations

from pathlib import Path

from disputer.cli import score_one
from disputer.view import StoreView


class DashboardView(StoreView):
    """What the dashboard reads of the disputer in one ATTEST_HOME, and the one action it takes there."""

    def dispute(self, assertion_id: str, network: str) -> str:
        """Judge and, when the policy says so, dispute (with the configured account of the home the dashboard runs
        in, which is `self.home`); what happened, in one line."""
        data = score_one(assertion_id, network, None, dispute=True)
        sent = [f"{t['kind']} {t['status']} {t['tx'] or ''}".rstrip() for txs in data["txs"].values() for t in txs]
        decision = data["decision"]
        return f"{decision['action']}: {decision['reason']}" + (f" ({'; '.join(sent)})" if sent else "")


def open_view(home: Path) -> DashboardView:
    """The entry point: the disputer is installed, so there is a view, even before it kept any state in `home` (the
    Dispute button needs none); its reads are then empty."""
    return DashboardView(home)
