"""isAttestedInBatch against the real UMA contracts: a batch root asserted as `domainId`, record membership
proved on chain with proofs built by attest.batch.merkle (OpenZeppelin's StandardMerkleTree)."""

from __future__ import annotations

import hashlib

from attest.batch import merkle
from attest.chain.oov3 import AssertionMade
from tests.support.oov3 import settle

from .conftest import LIVENESS, Stack
from .test_registry import ATTESTED, REJECTED, attestation, dispute, make_assertion, push_price


def digests(label: str, n: int) -> list[bytes]:
    return [hashlib.sha256(f"{label} {i}".encode()).digest() for i in range(n)]


def in_batch(stack: Stack, digest: bytes, root: bytes, proof: list[bytes]) -> bool:
    return bool(stack.registry.functions.isAttestedInBatch(digest, root, proof).call())


def assert_batch(stack: Stack, tree: merkle.MerkleTree, **kwargs: int) -> AssertionMade:
    claim = b'{"title":"llm-attest batch","description":"root 0x' + tree.root.hex().encode() + b'"}'
    return make_assertion(stack, tree.root, claim=claim, **kwargs)


def test_every_record_of_an_attested_batch_proves_membership_and_forgeries_do_not(stack: Stack) -> None:
    values = digests("honest", 9)
    tree = merkle.build(values)
    made = assert_batch(stack, tree)
    # Pending: the proofs hold, but nothing is attested before the oracle says so.
    assert not any(in_batch(stack, d, tree.root, tree.proof(i)) for i, d in enumerate(values))

    stack.warp(LIVENESS)
    settle(stack.oov3, stack.stranger, made.assertion_id)
    assert attestation(stack, made.assertion_id)[2] == ATTESTED
    assert all(in_batch(stack, d, tree.root, tree.proof(i)) for i, d in enumerate(values))

    proof = tree.proof(4)
    forged = [*proof[:-1], hashlib.sha256(b"forged").digest()]
    assert not in_batch(stack, values[4], tree.root, forged)
    assert not in_batch(stack, values[4], tree.root, proof[:-1])
    assert not in_batch(stack, values[5], tree.root, proof)  # another record's proof
    assert not in_batch(stack, hashlib.sha256(b"outsider").digest(), tree.root, proof)
    # An inner node of the tree does not pass for a record: leaves are hashed twice.
    assert not in_batch(stack, tree.nodes[1], tree.root, [tree.nodes[2]])


def test_a_proof_for_another_root_fails_even_when_both_batches_are_attested(stack: Stack) -> None:
    first, second = merkle.build(digests("first", 4)), merkle.build(digests("second", 5))
    made = [assert_batch(stack, first), assert_batch(stack, second)]
    stack.warp(LIVENESS)
    for m in made:
        settle(stack.oov3, stack.stranger, m.assertion_id)
    second_record = second.digests[2]
    assert in_batch(stack, second_record, second.root, second.proof(2))
    assert not in_batch(stack, second_record, first.root, second.proof(2))
    assert not in_batch(stack, first.digests[2], second.root, first.proof(2))


def test_a_one_record_batch_proves_with_an_empty_proof(stack: Stack) -> None:
    [value] = digests("single", 1)
    tree = merkle.build([value])
    assert tree.root == merkle.leaf_hash(value) and tree.proof(0) == []
    made = assert_batch(stack, tree)
    stack.warp(LIVENESS)
    settle(stack.oov3, stack.stranger, made.assertion_id)
    assert in_batch(stack, value, tree.root, [])


def test_a_rejected_batch_proves_nothing(stack: Stack) -> None:
    values = digests("rejected", 6)
    tree = merkle.build(values)
    made = assert_batch(stack, tree)
    dispute(stack, made)
    push_price(stack, made, 0)
    settle(stack.oov3, stack.stranger, made.assertion_id)
    assert attestation(stack, made.assertion_id)[2] == REJECTED
    assert not any(in_batch(stack, d, tree.root, tree.proof(i)) for i, d in enumerate(values))


def test_an_ineligible_batch_proves_nothing(stack: Stack) -> None:
    minimum = stack.registry.functions.minLiveness().call()
    tree = merkle.build(digests("short", 3))
    made = assert_batch(stack, tree, liveness=minimum - 1)
    stack.warp(minimum)
    settle(stack.oov3, stack.stranger, made.assertion_id)
    assert attestation(stack, made.assertion_id)[2] == REJECTED
    assert not in_batch(stack, tree.digests[0], tree.root, tree.proof(0))


def test_proofs_from_a_ten_thousand_record_batch_hold_on_chain(stack: Stack) -> None:
    values = digests("large", 10_000)
    tree = merkle.build(values)
    made = assert_batch(stack, tree)
    stack.warp(LIVENESS)
    settle(stack.oov3, stack.stranger, made.assertion_id)
    for index in (0, 1, 4_999, 8_191, 9_999):
        assert len(tree.proof(index)) in (13, 14)
        assert in_batch(stack, values[index], tree.root, tree.proof(index))
    # Free as a view; inside a transaction (21,000 base + 14-node calldata) about 41k measured.
    gas = stack.registry.functions.isAttestedInBatch(values[0], tree.root, tree.proof(0)).estimate_gas()
    assert gas < 45_000, f"a membership check costs {gas:,} gas"


def test_anyone_may_publish_evidence_once_per_call_and_nothing_is_stored(stack: Stack) -> None:
    made = assert_batch(stack, merkle.build(digests("evidence", 3)))
    uri = "ipfs://bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy"
    receipt = stack.stranger.transact(stack.registry.functions.publishEvidence(made.assertion_id, uri), "evidence")
    (event,) = stack.registry.events.Evidence().process_receipt(receipt)
    assert event["args"]["assertionId"] == made.assertion_id and event["args"]["uri"] == uri
    assert event["args"]["by"] == stack.stranger.address
    # An event only, no storage slot written: 26,475 gas measured for this 66-character URI.
    assert receipt["gasUsed"] < 30_000
    assert attestation(stack, made.assertion_id)[2] != ATTESTED  # evidence changes no status
