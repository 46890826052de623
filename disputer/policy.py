"""The dispute policy: facts in, one decision with its reason out. Pure: no chain, no clock, no store.

Disputing costs a bond that is lost (and half burned) when the answer was right, so every condition must hold:
a decisive failed check or a calibrated score below the threshold, time left before expiration beyond a safety
margin, the bond within the per-dispute cap and the budget, enough balance (and allowance, or leave to approve),
a static call that passes, and nobody having disputed it already. A verdict the judge could not reach never
disputes: it is retried a few times while time allows (a record no source serves: until the safety margin),
then recorded as undecided.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from attest.chain.oov3 import NUMERICAL_TRUE
from attest.units import format_units

PolicyAction = Literal["dispute", "none", "skip", "undecided", "retry"]


@dataclass(frozen=True)
class Facts:
    """Everything the policy looks at for one assertion. Amounts are in the bond currency's smallest unit."""

    failed_checks: tuple[str, ...]  # "name: detail" of each failed deterministic check (decisive on its own)
    score: float | None  # the calibrated score, None when undecided
    undecided_reason: str | None  # why there is no score (judge fault, record not fetched)
    threshold: float
    now: int  # the latest block's timestamp
    expiration_time: int
    safety_margin_s: int
    bond: int
    max_bond_per_dispute: int | None
    budget_left: int | None  # of the total budget, after the bonds of open disputes
    balance: int
    allowance: int
    auto_approve: bool
    disputed_by: str | None  # on chain, now
    settled: bool
    attempts: int  # evaluations of this assertion so far, this one included
    max_attempts: int
    static_call_error: str | None = None  # from disputeAssertion's static call, when it was run
    dry_run: bool = False
    unavailable: bool = False  # no verdict because the record could not be fetched (not a judge fault)
    out_of_time: str | None = None  # a batch not judged: judging its N records would not end before the margin
    decimals: int | None = None  # the bond currency's, to show amounts in its units (None: shown as integers)
    symbol: str = ""

    def show(self, amount: int) -> str:
        """An amount in the currency's own units ("250.5 USDC"), as a person reads it in a reason."""
        if self.decimals is None:
            return str(amount)
        return f"{format_units(amount, self.decimals)} {self.symbol}".rstrip()


@dataclass(frozen=True)
class PolicyDecision:
    action: PolicyAction
    reason: str
    approve_first: bool = False  # the allowance is short: approve the bond before the dispute

    @property
    def final(self) -> bool:
        """Whether this is the assertion's decision (a retry records nothing)."""
        return self.action != "retry"


def wants_dispute(facts: Facts) -> bool:
    """Whether the evaluation alone says the answer is wrong (before money and time are considered)."""
    if facts.failed_checks:
        return True
    return facts.score is not None and facts.score < facts.threshold


def decide(facts: Facts) -> PolicyDecision:
    if facts.settled:
        return PolicyDecision("skip", "the assertion is already settled")
    left = facts.expiration_time - facts.now
    if facts.out_of_time is not None:
        return PolicyDecision("skip", facts.out_of_time)
    if facts.failed_checks:
        why = "failed check " + "; ".join(facts.failed_checks)
    elif facts.score is None:
        reason = facts.undecided_reason or "the judge reached no verdict"
        # An outage of IPFS says nothing about the answer and may outlast a few polls: fetch again until the
        # safety margin. Only judge faults, which repeat, use up attempts.
        if left > facts.safety_margin_s and facts.unavailable:
            return PolicyDecision(
                "retry",
                f"record unavailable ({reason}); fetched {facts.attempts} time(s), fetched again each poll until "
                f"{facts.safety_margin_s}s before expiry",
            )
        if left > facts.safety_margin_s and facts.attempts < facts.max_attempts:
            return PolicyDecision("retry", f"undecided ({reason}); attempt {facts.attempts} of {facts.max_attempts}")
        return PolicyDecision("undecided", f"undecided after {facts.attempts} attempt(s): {reason}; never disputed")
    elif facts.score >= facts.threshold:
        return PolicyDecision("none", f"score {facts.score:.3f} >= threshold {facts.threshold:.3f}")
    else:
        why = f"score {facts.score:.3f} < threshold {facts.threshold:.3f}"
    if facts.disputed_by is not None:
        return PolicyDecision("skip", f"{why}, but {facts.disputed_by} already disputed it")
    if left <= facts.safety_margin_s:
        return PolicyDecision(
            "skip", f"{why}, but it expires in {max(left, 0)}s, within the {facts.safety_margin_s}s safety margin"
        )
    if facts.max_bond_per_dispute is not None and facts.bond > facts.max_bond_per_dispute:
        cap = facts.show(facts.max_bond_per_dispute)
        return PolicyDecision("skip", f"{why}, but its bond {facts.show(facts.bond)} is over the cap {cap}")
    if facts.budget_left is not None and facts.bond > facts.budget_left:
        budget = facts.show(facts.budget_left)
        return PolicyDecision("skip", f"{why}, but its bond {facts.show(facts.bond)} is over the budget left {budget}")
    if facts.balance < facts.bond:
        balance = facts.show(facts.balance)
        return PolicyDecision("skip", f"{why}, but the balance {balance} is below the bond {facts.show(facts.bond)}")
    approve = facts.allowance < facts.bond
    if approve and not facts.auto_approve:
        return PolicyDecision(
            "skip",
            f"{why}, but the allowance {facts.show(facts.allowance)} is below the bond {facts.show(facts.bond)} and "
            "auto_approve is off",
        )
    if facts.static_call_error is not None:
        return PolicyDecision("skip", f"{why}, but disputeAssertion would revert: {facts.static_call_error}")
    if facts.dry_run:
        return PolicyDecision("dispute", f"{why} (dry run: nothing sent)", approve_first=approve)
    return PolicyDecision("dispute", why, approve_first=approve)


def judging_time_s(records: int, concurrency: int, record_judge_s: float) -> float:
    """Seconds to judge `records` records, `concurrency` at a time, each taking `record_judge_s`."""
    return math.ceil(records / concurrency) * record_judge_s


def batch_out_of_time(
    records: int, *, left_s: int, safety_margin_s: int, concurrency: int, record_judge_s: float
) -> str | None:
    """Why a batch of `records` must not be judged now (judging, then disputing, would not end before the safety
    margin), or None when it fits. A dispute is only worth starting when it can be sent in time: judging N
    records is the batch's share of the single record's margin."""
    needed = judging_time_s(records, concurrency, record_judge_s)
    if left_s - needed > safety_margin_s:
        return None
    return (
        f"not judged: judging its {records:,} records takes about {needed:,.0f}s ({concurrency} at a time, "
        f"{record_judge_s:g}s each) but it expires in {max(left_s, 0):,}s, and the last {safety_margin_s:,}s are the "
        "safety margin; never disputed (raise concurrency or lower record_judge_s if judging is faster)"
    )


def vote_price(failed_checks: tuple[str, ...] | list[str], score: float | None, threshold: float) -> int | None:
    """The price to vote from a verdict: 0 (false) for a failed check or a score below the threshold, 1e18
    (true) otherwise, None (no vote) when undecided."""
    if failed_checks:
        return 0
    if score is None:
        return None
    return 0 if score < threshold else NUMERICAL_TRUE
