"""anchor(root): the Anchored event a preference's anchor is, its gas, and that it stores nothing."""

from __future__ import annotations

from attest.batch import merkle

from .conftest import Stack
from .test_registry_batch import digests

# The event alone: 21,000 base + calldata + a LOG3 with no data, no storage slot written; the same for any N (a
# root with no zero byte, the worst case for calldata, was measured).
ANCHOR_GAS = 23_391


def test_anyone_anchors_a_root_and_the_event_names_them_and_the_root(stack: Stack) -> None:
    tree = merkle.build(digests("preference", 3))
    receipt = stack.stranger.transact(stack.registry.functions.anchor(tree.root), "anchor")
    (event,) = stack.registry.events.Anchored().process_receipt(receipt)
    assert event["args"]["by"] == stack.stranger.address and event["args"]["root"] == tree.root
    # Both arguments are indexed: a verifier finds the anchor by log query on either.
    logs = stack.registry.events.Anchored().get_logs(
        from_block=receipt["blockNumber"], argument_filters={"by": stack.stranger.address, "root": tree.root}
    )
    assert [log["transactionHash"] for log in logs] == [receipt["transactionHash"]]
    assert stack.w3.eth.get_storage_at(stack.registry.address, 0) == b"\0" * 32  # the only mapping is untouched


def test_an_anchor_costs_the_same_gas_for_one_preference_and_for_a_thousand(stack: Stack) -> None:
    roots = [merkle.build(digests("g", n)).root for n in (1, 1_000)]
    gas = [int(stack.asserter.transact(stack.registry.functions.anchor(root), "anchor")["gasUsed"]) for root in roots]
    assert gas[0] == gas[1], gas
    assert gas[0] <= ANCHOR_GAS, f"an anchor costs {gas[0]:,} gas"
