"""KnowledgeRegistry, compiled from contracts/ now: approvals by its governor only, their events, the views at
blocks before and after a change, re-approval after a revocation, handing governance over, and the gas of approve
and revoke."""

from __future__ import annotations

import pytest
from ape import chain, project
from eth_account.signers.local import LocalAccount

from attest.chain.artifacts import Artifact
from attest.chain.knowledge import KnowledgeRegistry, canonical_cid
from attest.chain.tx import Sender
from attest.errors import TransactionRejected

CID_V0 = "QmYwAPJzv5CZsnA625s3Xf2nemtYgPpHdWEz79ojWnPbdG"
CID = canonical_cid(CID_V0)  # the same document, as CIDv1 base32
OTHER = "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy"
# Measured on this source (the first approval of a CID writes two fresh slots and the array length).
APPROVE_GAS_MAX = 100_000
REVOKE_GAS_MAX = 40_000


def compiled(name: str) -> Artifact:
    ct = getattr(project, name).contract_type
    abi = [entry.model_dump(by_alias=True, mode="json") for entry in ct.abi]
    return Artifact(name, abi, str(ct.deployment_bytecode.bytecode))


@pytest.fixture
def parts(dev_keys: list[LocalAccount]) -> tuple[KnowledgeRegistry, Sender, Sender, str, str]:
    w3 = chain.provider.web3
    governor, stranger = Sender(w3, dev_keys[0]), Sender(w3, dev_keys[3])
    contract = governor.deploy(compiled("KnowledgeRegistry"), governor.address)
    return KnowledgeRegistry(w3, contract.address), governor, stranger, dev_keys[1].address, dev_keys[2].address


def send(sender: Sender, registry: KnowledgeRegistry, data: bytes) -> dict:
    return dict(sender.transact(registry.call(data), "kb change"))  # type: ignore[arg-type]


def test_only_the_governor_approves_and_revokes(parts) -> None:
    registry, governor, stranger, alice, _bob = parts
    with pytest.raises(TransactionRejected, match=rf"NotGovernor\({stranger.address}\)"):
        send(stranger, registry, registry.approve_data(alice, CID))
    send(governor, registry, registry.approve_data(alice, CID))
    with pytest.raises(TransactionRejected, match="NotGovernor"):
        send(stranger, registry, registry.revoke_data(alice, CID))
    with pytest.raises(TransactionRejected, match="AlreadyApproved"):
        send(governor, registry, registry.approve_data(alice, CID))
    send(governor, registry, registry.revoke_data(alice, CID))
    with pytest.raises(TransactionRejected, match="NotApproved"):
        send(governor, registry, registry.revoke_data(alice, CID))


def test_events_carry_the_cid_and_block(parts) -> None:
    registry, governor, _stranger, alice, _bob = parts
    start = chain.blocks.head.number
    approved = send(governor, registry, registry.approve_data(alice, CID_V0))  # any spelling: stored canonical
    revoked = send(governor, registry, registry.revoke_data(alice, CID))
    changes = registry.changes(start)
    assert [(c.kind, c.contributor, c.cid, c.block_number) for c in changes] == [
        ("approved", alice, CID, approved["blockNumber"]),
        ("revoked", alice, CID, revoked["blockNumber"]),
    ]


def test_views_before_during_and_after_an_approval(parts) -> None:
    registry, governor, _stranger, alice, bob = parts
    before = chain.blocks.head.number
    a = send(governor, registry, registry.approve_data(alice, CID))["blockNumber"]
    assert registry.is_approved(alice, CID) and registry.is_approved(alice, CID_V0)
    assert not registry.is_approved(bob, CID)
    assert registry.approved_at(alice, CID) == a
    chain.mine(3)
    r = send(governor, registry, registry.revoke_data(alice, CID))["blockNumber"]
    assert not registry.is_approved(alice, CID) and registry.approved_at(alice, CID) is None
    assert not registry.was_approved_at(CID, before)
    assert registry.was_approved_at(CID, a) and registry.was_approved_at(CID, r - 1)
    assert not registry.was_approved_at(CID, r)
    assert not registry.was_approved_at(OTHER, a)


def test_re_approval_after_revocation_keeps_the_history(parts) -> None:
    registry, governor, _stranger, alice, bob = parts
    a1 = send(governor, registry, registry.approve_data(alice, CID))["blockNumber"]
    r1 = send(governor, registry, registry.revoke_data(alice, CID))["blockNumber"]
    chain.mine(2)
    gap = chain.blocks.head.number
    a2 = send(governor, registry, registry.approve_data(alice, CID))["blockNumber"]
    b = send(governor, registry, registry.approve_data(bob, CID))["blockNumber"]
    assert [(x.contributor, x.approved_at, x.revoked_at) for x in registry.approvals_of(CID)] == [
        (alice, a1, r1),
        (alice, a2, None),
        (bob, b, None),
    ]
    assert registry.was_approved_at(CID, a1) and not registry.was_approved_at(CID, gap)
    assert registry.was_approved_at(CID, a2)
    # One contributor's revocation leaves another's approval of the same document in force.
    send(governor, registry, registry.revoke_data(alice, CID))
    assert registry.is_approved(bob, CID) and registry.was_approved_at(CID, chain.blocks.head.number)


def test_governance_is_handed_over_by_the_governor_only(parts) -> None:
    registry, governor, stranger, alice, _bob = parts
    with pytest.raises(TransactionRejected, match="NotGovernor"):
        send(stranger, registry, registry.set_governor_data(stranger.address))
    send(governor, registry, registry.set_governor_data(stranger.address))
    assert registry.governor() == stranger.address
    with pytest.raises(TransactionRejected, match="NotGovernor"):
        send(governor, registry, registry.approve_data(alice, CID))
    send(stranger, registry, registry.approve_data(alice, CID))


def test_zero_contributor_and_empty_cid_are_refused(parts) -> None:
    registry, governor, _stranger, _alice, _bob = parts
    from attest.chain.abi import method

    empty = method("KnowledgeRegistry", "approve").encode(governor.address, "")
    with pytest.raises(TransactionRejected, match="EmptyCid"):
        send(governor, registry, empty)
    zero = method("KnowledgeRegistry", "approve").encode("0x" + "00" * 20, CID)
    with pytest.raises(TransactionRejected, match="ZeroAddress"):
        send(governor, registry, zero)


def test_gas_of_approve_and_revoke(parts) -> None:
    registry, governor, _stranger, alice, bob = parts
    first = send(governor, registry, registry.approve_data(alice, CID))["gasUsed"]
    second = send(governor, registry, registry.approve_data(bob, CID))["gasUsed"]
    revoke = send(governor, registry, registry.revoke_data(alice, CID))["gasUsed"]
    again = send(governor, registry, registry.approve_data(alice, CID))["gasUsed"]
    assert first < APPROVE_GAS_MAX and second < first and again < APPROVE_GAS_MAX, (first, second, again)
    assert revoke < REVOKE_GAS_MAX, revoke
