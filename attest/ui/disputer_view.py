"""What the dashboard shows of a disputer installed beside attest: its verdicts on an assertion, its decisions over
time and its latest `disputer eval` in this ATTEST_HOME, and its Dispute action.

The library never imports the disputer: a package that judges registers a factory under the
`attest.disputer_view` entry point group (pyproject.toml), `(home) -> DisputerView`. An installed disputer gives a
view even where it kept nothing yet (its reads are then empty, and it can still dispute); no view means none is
installed. The shapes it returns are defined here, so the dashboard depends on them and not on it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from importlib.metadata import entry_points
from pathlib import Path
from typing import Protocol

from attest.paths import attest_home

DISPUTER_VIEW_GROUP = "attest.disputer_view"


@dataclass(frozen=True)
class CheckResult:
    """One deterministic check the disputer ran on the record (schema, signature, digest, context, claim...)."""

    name: str
    status: str  # pass, fail or skip (not checked: a cited document could not be fetched)
    detail: str


@dataclass(frozen=True)
class DisputerVerdict:
    """What the disputer decided about one assertion, and on what evidence."""

    assertion_id: str  # 0x and 64 lowercase hex digits
    decided_at: str  # as the disputer stored it (UTC, ISO 8601)
    action: str  # none, dispute, vote, undecided or skip
    reason: str
    score: float | None  # the judge's raw score, 0 wrong .. 1 correct; None when not judged or undecided
    calibrated: float | None  # the score the policy compared with its threshold
    rationale: str
    judge: str  # the judge and its model: "openai:gpt-4.1-mini", "grounding-v2"
    template: str | None  # the prompt (id@version) an LLM judge was given
    samples: tuple[float, ...]  # an LLM judge's sampled scores; `score` is their median
    checks: tuple[CheckResult, ...]
    unavailable: str | None  # why the record could not be fetched (the decision is then undecided)
    dry_run: bool
    superseded: bool  # a dry run's preview that a real decision replaced


@dataclass(frozen=True)
class DecisionEvent:
    """One decision, for the decisions-over-time chart."""

    at: datetime  # UTC
    action: str
    chain_id: int
    dry_run: bool


@dataclass(frozen=True)
class EvalResult:
    """The latest `disputer eval` run kept in this home: its report and the labelled scores behind its ROC curve
    and calibration diagram (undecided verdicts left out)."""

    at: str
    dataset: str
    judge: str
    report: dict[str, float | int | str | None]  # accuracy, auroc, ece, brier, disputes, won, lost, missed, profit...
    scores: tuple[float, ...]
    labels: tuple[int, ...]  # 1 correct, 0 wrong


class DisputerView(Protocol):
    def verdicts(self, assertion_id: str) -> list[DisputerVerdict]:
        """The decision on this assertion (0x hex, any case), then the dry-run previews it replaced; [] when none."""
        ...

    def decisions(self, chain_id: int | None = None) -> list[DecisionEvent]:
        """Every decision (on `chain_id`), oldest first; dry-run previews a real decision replaced are left out."""
        ...

    def latest_eval(self) -> EvalResult | None:
        """The latest `disputer eval` kept in this home; None when none ran here."""
        ...

    def dispute(self, assertion_id: str, network: str) -> str:
        """Judge the assertion and dispute it when the disputer's policy says so (its checks, budget and outbox);
        what happened, in one line."""
        ...


ViewFactory = Callable[[Path], "DisputerView | None"]


def disputer_view(home: Path | None = None) -> DisputerView | None:
    """The disputer's view of this ATTEST_HOME, or None when no disputer is installed beside attest."""
    for entry in entry_points(group=DISPUTER_VIEW_GROUP):
        factory: ViewFactory = entry.load()
        view = factory(home or attest_home())
        if view is not None:
            return view
    return None
