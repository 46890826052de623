"""The dispute job: the policy's facts for a batch of verdicts, the disputes it decides sent as one pipeline, and
decisions to dispute whose transaction never landed sent again."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace

from attest.chain.oov3 import OptimisticOracleV3
from disputer.actions import Actor, SendResult
from disputer.config import DisputerConfig
from disputer.evaluate import Evaluation
from disputer.policy import Facts, PolicyDecision, decide, wants_dispute
from disputer.store import DisputerStore, StoredAssertion
from disputer.wallet import Funds, Wallet

Judged = tuple[StoredAssertion, Evaluation]


def known_facts(stored: StoredAssertion, evaluation: Evaluation, config: DisputerConfig, *, attempts: int,
                now: int) -> Facts:  # fmt: skip
    """The facts the store and the verdict know; the money fields are placeholders for verdicts that stand."""
    return Facts(
        failed_checks=evaluation.failed_checks,
        score=evaluation.score,
        undecided_reason=evaluation.undecided_reason,
        unavailable=evaluation.unavailable is not None,
        out_of_time=evaluation.out_of_time,
        threshold=config.threshold,
        now=now,
        expiration_time=stored.expiration_time,
        safety_margin_s=config.safety_margin_s,
        bond=stored.bond,
        max_bond_per_dispute=None,
        budget_left=None,
        balance=0,
        allowance=0,
        auto_approve=config.auto_approve,
        disputed_by=stored.disputed_by,
        settled=stored.status == "settled",
        attempts=attempts,
        max_attempts=config.attempts,
        dry_run=config.dry_run,
    )


def decide_batch(
    judged: list[Judged],
    *,
    config: DisputerConfig,
    attempts: Mapping[bytes, int],
    recent_now: int,
    read_now: Callable[[], int],
    wallet: Wallet,
    oov3: OptimisticOracleV3,
    actor: Actor,
) -> list[tuple[Facts, PolicyDecision]]:
    """The facts of each evaluation and the policy's decision on them, in order.

    The chain and the wallet are read only for evaluations that want a dispute: for any other verdict the
    policy stops at whether the assertion is settled and how long it has left, and the store knows both (as
    of the last poll; the expiration never changes). That spares the reads for each of the many answers that
    stand; on that path the money fields are placeholders the policy never reaches, and `recent_now` is a chain
    time read at most a second ago. For those that want one, the wallet's funds are read once per currency, and
    each decision to dispute takes its bond off them before the next is made, so a batch never commits more than
    the wallet holds."""
    out: list[tuple[Facts, PolicyDecision]] = []
    committed: dict[str, int] = {}  # bond currency -> bonds of this batch's disputes so far
    funds: dict[str, Funds] = {}
    now: int | None = None
    for stored, evaluation in judged:
        known = known_facts(stored, evaluation, config, attempts=attempts.get(stored.assertion_id, 1), now=recent_now)
        if not wants_dispute(known):
            out.append((known, decide(known)))
            continue
        key = stored.currency.lower()
        if key not in funds:
            funds[key] = wallet.funds(stored.currency)
        held = funds[key]
        spent = committed.get(key, 0)
        now = read_now() if now is None else now
        chain = oov3.get_assertion(stored.assertion_id)
        facts = replace(
            known,
            now=now,
            expiration_time=chain.expiration_time if chain.exists else stored.expiration_time,
            max_bond_per_dispute=held.max_bond,
            budget_left=None if held.budget_left is None else held.budget_left - spent,
            balance=held.balance - spent,
            allowance=max(0, held.allowance - spent),
            disputed_by=chain.disputer if chain.disputed else None,
            settled=chain.settled,
            decimals=held.decimals,
            symbol=held.symbol,
        )
        if facts.allowance >= stored.bond and not chain.disputed and not chain.settled:
            error = actor.dispute_static_error(stored.assertion_id)
            if error is not None:
                facts = replace(facts, static_call_error=error)
        decision = decide(facts)
        if decision.action == "dispute":
            committed[key] = spent + stored.bond
        out.append((facts, decision))
    return out


def send_disputes(actor: Actor, decided: list[tuple[StoredAssertion, PolicyDecision]]) -> dict[bytes, SendResult]:
    """Send recorded decisions to dispute, one pipeline per bond currency (`Actor.dispute_many`)."""
    groups: dict[str, list[tuple[StoredAssertion, PolicyDecision]]] = {}
    for stored, decision in decided:
        groups.setdefault(stored.currency.lower(), []).append((stored, decision))
    sent: dict[bytes, SendResult] = {}
    for group in groups.values():
        sent |= actor.dispute_many(
            [(s.assertion_id, s.bond) for s, _d in group],
            currency=group[0][0].currency,
            approve=any(d.approve_first for _s, d in group),
        )
    return sent


def resume_disputes(
    store: DisputerStore,
    actor: Actor,
    wallet: Wallet,
    oov3: OptimisticOracleV3,
    *,
    chain_id: int,
    now: int,
    skip: frozenset[bytes] = frozenset(),
) -> dict[bytes, SendResult]:
    """Decisions to dispute whose transaction has not landed (a crash, a timeout): act on them again.

    Dry-run decisions are left alone (a real run re-judges and replaces them: acting on a stale preview could
    dispute what the judge no longer finds wrong), and so are the assertions in `skip` (sent this step)."""
    sent: dict[bytes, SendResult] = {}
    for stored in store.assertions(chain_id, statuses=("evaluated",), ours=None):
        aid = stored.assertion_id
        decision = store.decision(aid)
        if decision is None or decision.action != "dispute" or decision.dry_run or aid in skip:
            continue
        # No shortcut on a "mined" row: a reorg may have removed that dispute before the watcher saw it. The
        # chain says whether it stands; the outbox reopens a mined row whose receipt is gone.
        chain = oov3.get_assertion(aid)
        if chain.disputed or chain.settled or chain.expiration_time <= now:
            continue
        approve_first = wallet.allowance(stored.currency) < stored.bond
        sent[aid] = actor.dispute(aid, currency=stored.currency, bond=stored.bond, approve_first=approve_first)
    return sent
