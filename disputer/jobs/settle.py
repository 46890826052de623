"""The settle job: our assertions whose liveness ended, or whose dispute the oracle resolved, settled."""

from __future__ import annotations

from attest.chain.oov3 import OptimisticOracleV3
from attest.oracle import Oracle
from disputer.actions import Actor, SendResult, ancillary_data
from disputer.store import DisputerStore


def settle_due(
    store: DisputerStore, actor: Actor, oracle: Oracle, oov3: OptimisticOracleV3, *, chain_id: int, now: int
) -> dict[bytes, SendResult]:
    """settleAssertion for each assertion of ours that is due at chain time `now`; what was sent, by assertion."""
    sent: dict[bytes, SendResult] = {}
    for stored in store.assertions(chain_id, statuses=("evaluated", "disputed"), ours=True):
        if stored.status == "evaluated" and stored.expiration_time > now:
            continue
        aid = stored.assertion_id
        chain = oov3.get_assertion(aid)
        if chain.settled:
            continue
        if chain.disputed:
            ancillary = ancillary_data(aid, stored.asserter)
            if not oracle.has_price(stored.identifier, chain.assertion_time, ancillary, requester=oov3.address):
                continue
        elif chain.expiration_time > now:
            continue
        sent[aid] = actor.settle(aid)
    return sent
