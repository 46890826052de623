"""The vote job: our verdict on a disputed assertion of ours, given to the oracle that resolves it."""

from __future__ import annotations

from dataclasses import dataclass

from attest.chain.oov3 import OptimisticOracleV3
from attest.errors import ChainError
from attest.oracle import DvmOracle, MockOracle, Oracle, SpokeOracle
from disputer.actions import Actor, SendResult, ancillary_data
from disputer.policy import vote_price
from disputer.store import DisputerStore, StoredAssertion

VOTED_ELSEWHERE = "voted on Ethereum"


@dataclass(frozen=True)
class VoteOutcome:
    text: str  # what happened, for the log and `disputer score --vote`
    cast: bool = False  # the oracle was asked (a push, a commit or reveal tried or found done)
    price: int | None = None  # the price voted for, when cast
    sent: SendResult | None = None  # the price push, on a mock oracle


def vote_on(
    stored: StoredAssertion,
    *,
    store: DisputerStore,
    actor: Actor,
    oracle: Oracle,
    oov3: OptimisticOracleV3,
    threshold: float,
) -> VoteOutcome:
    aid = stored.assertion_id
    decision = store.decision(aid)
    if decision is None or decision.dry_run:  # a dry run's verdict is re-judged before anything is staked on it
        return VoteOutcome("not decided yet")
    price = vote_price(decision.checks.get("failed", []), decision.calibrated, threshold)
    if price is None:
        return VoteOutcome("undecided: no vote")
    if isinstance(oracle, SpokeOracle):
        return VoteOutcome(VOTED_ELSEWHERE)
    chain = oov3.get_assertion(aid)
    if chain.settled:
        return VoteOutcome("settled")
    if isinstance(oracle, DvmOracle):
        return VoteOutcome(actor.dvm_vote(chain, price, oracle.voting), cast=True, price=price)
    assert isinstance(oracle, MockOracle)
    request = (chain.identifier, chain.assertion_time, ancillary_data(aid, chain.asserter))
    if oracle.has_price(*request, requester=oov3.address):
        return VoteOutcome("a price is already pushed", cast=True, price=price)
    result = actor.send(aid, "vote_push", lambda: oracle.push_price_call(*request, price), "pushPrice")
    if result.row.status in ("failed", "dropped") and _pushed(oracle, request, oov3.address):
        # Another process (a second daemon with this key) pushed first: the price is there, nothing failed.
        pushed = SendResult(result.row, already=True)
        return VoteOutcome("a price is already pushed", cast=True, price=price, sent=pushed)
    text = f"pushed {price}" if result.mined else f"push failed: {result.error}"
    return VoteOutcome(text, cast=True, price=price, sent=result)


def _pushed(oracle: MockOracle, request: tuple[bytes, int, bytes], requester: str) -> bool:
    try:
        return oracle.has_price(*request, requester=requester)
    except ChainError:  # the node is out of reach: the next step looks again
        return False
