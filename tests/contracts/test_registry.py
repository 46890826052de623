"""AttestationRegistry against the real UMA contracts (OptimisticOracleV3, MockOracleAncillary, Store, …)."""

from __future__ import annotations

import hashlib

import pytest
from web3 import Web3

from attest.chain.artifacts import uma
from attest.chain.oov3 import NUMERICAL_TRUE, ZERO_ADDRESS, AssertionMade, to_bytes32
from attest.errors import TransactionRejected
from tests.support import oov3 as oracle
from tests.support.oov3 import assert_truth, burned_bond_percentage, settle, sync_uma_params

from .conftest import LIVENESS, Stack

PENDING, DISPUTED, ATTESTED, REJECTED = 1, 2, 3, 4
CLAIM = b'{"title":"llm-attest test","description":"record ipfs://bafy... is correct"}'


def digest_of(label: str) -> bytes:
    return hashlib.sha256(label.encode()).digest()


def make_assertion(
    stack: Stack,
    digest: bytes,
    *,
    liveness: int = LIVENESS,
    escalation_manager: str = ZERO_ADDRESS,
    claim: bytes = CLAIM,
) -> AssertionMade:
    bond = stack.oov3.minimum_bond(stack.deployment.currency)
    stack.approve(stack.asserter, bond)
    made, _ = assert_truth(
        stack.oov3,
        stack.asserter,
        claim=claim,
        asserter=stack.asserter.address,
        callback_recipient=stack.registry.address,
        liveness=liveness,
        currency=stack.deployment.currency,
        bond=bond,
        identifier="ASSERT_TRUTH2",
        domain_id=digest,
        escalation_manager=escalation_manager,
    )
    return made


def attestation(stack: Stack, assertion_id: bytes) -> tuple[bytes, str, int, int]:
    digest, asserter, status, expiration = stack.registry.functions.attestationOf(assertion_id).call()
    return bytes(digest), asserter, status, expiration


def dispute(stack: Stack, made: AssertionMade) -> None:
    stack.approve(stack.disputer, made.bond)
    oracle.dispute(stack.oov3, stack.disputer, made.assertion_id, stack.disputer.address)


def push_price(stack: Stack, made: AssertionMade, price: int) -> None:
    assertion = stack.oov3.get_assertion(made.assertion_id)
    ancillary = stack.oov3.contract.functions.stampAssertion(made.assertion_id).call()
    call = stack.oracle.functions.pushPrice(assertion.identifier, assertion.assertion_time, ancillary, price)
    stack.stranger.transact(call, "pushPrice")


def registry_events(stack: Stack, name: str, receipt: dict) -> list[dict]:
    from web3.logs import DISCARD

    return [e["args"] for e in getattr(stack.registry.events, name)().process_receipt(receipt, errors=DISCARD)]


def test_undisputed_assertion_is_pending_then_attested_after_liveness(stack: Stack) -> None:
    digest = digest_of("undisputed")
    made = make_assertion(stack, digest)
    assert attestation(stack, made.assertion_id) == (digest, stack.asserter.address, PENDING, made.expiration_time)
    assert not stack.registry.functions.isAttested(digest).call()

    with pytest.raises(TransactionRejected, match="Assertion not expired"):
        settle(stack.oov3, stack.stranger, made.assertion_id)

    before = stack.balance(stack.asserter.address)
    stack.warp(LIVENESS)
    receipt = settle(stack.oov3, stack.stranger, made.assertion_id)

    assert attestation(stack, made.assertion_id)[2] == ATTESTED
    assert stack.registry.functions.isAttested(digest).call()
    assert bytes(stack.registry.functions.attestedBy(digest).call()) == made.assertion_id
    assert stack.balance(stack.asserter.address) - before == made.bond
    [event] = registry_events(stack, "AttestationResolved", receipt)
    assert (bytes(event["digest"]), event["asserter"], event["status"]) == (digest, stack.asserter.address, ATTESTED)


def test_disputed_then_oracle_says_true_attests_and_pays_the_asserter(stack: Stack) -> None:
    digest = digest_of("disputed-true")
    made = make_assertion(stack, digest)
    dispute(stack, made)
    assert attestation(stack, made.assertion_id)[2] == DISPUTED

    # The DVM request carries the ancillary data voters read: assertionId and asserter, lowercase hex.
    ancillary = stack.oov3.contract.functions.stampAssertion(made.assertion_id).call()
    assert ancillary == (
        f"assertionId:{made.assertion_id.hex()},ooAsserter:{stack.asserter.address[2:].lower()}".encode()
    )

    with pytest.raises(TransactionRejected):  # no price yet: settlement must wait for the oracle
        settle(stack.oov3, stack.stranger, made.assertion_id)

    push_price(stack, made, NUMERICAL_TRUE)
    before = stack.balance(stack.asserter.address)
    settle(stack.oov3, stack.stranger, made.assertion_id)

    assert attestation(stack, made.assertion_id)[2] == ATTESTED
    assert stack.registry.functions.isAttested(digest).call()
    burned = made.bond * burned_bond_percentage(stack.oov3) // 10**18
    assert stack.balance(stack.asserter.address) - before == 2 * made.bond - burned  # 1.5x with 50% burned


@pytest.mark.parametrize("price", [0, NUMERICAL_TRUE - 1, -1])
def test_disputed_then_oracle_says_anything_but_1e18_rejects_and_pays_the_disputer(stack: Stack, price: int) -> None:
    digest = digest_of(f"disputed-false-{price}")
    made = make_assertion(stack, digest)
    dispute(stack, made)
    push_price(stack, made, price)
    before = stack.balance(stack.disputer.address)
    store_before = stack.balance(stack.deployment.store)
    settle(stack.oov3, stack.stranger, made.assertion_id)

    assert attestation(stack, made.assertion_id)[2] == REJECTED
    assert not stack.registry.functions.isAttested(digest).call()
    burned = made.bond * burned_bond_percentage(stack.oov3) // 10**18
    assert stack.balance(stack.disputer.address) - before == 2 * made.bond - burned
    assert stack.balance(stack.deployment.store) - store_before == burned


@pytest.mark.parametrize("callback", ["assertionResolvedCallback", "assertionDisputedCallback"])
def test_callbacks_from_anyone_but_the_oracle_are_rejected(stack: Stack, callback: str) -> None:
    digest = digest_of(f"forged-{callback}")
    made = make_assertion(stack, digest)
    args = (made.assertion_id, True) if callback == "assertionResolvedCallback" else (made.assertion_id,)
    call = getattr(stack.registry.functions, callback)(*args)
    for caller in (stack.stranger, stack.asserter, stack.deployer):
        with pytest.raises(TransactionRejected, match=rf"NotOracle\({caller.address}\)"):
            caller.transact(call, callback)
    assert attestation(stack, made.assertion_id)[2] == PENDING
    assert not stack.registry.functions.isAttested(digest).call()


def test_assertion_with_escalation_manager_settles_but_does_not_attest(stack: Stack) -> None:
    """An escalation manager could arbitrate or block disputes itself, so the registry will not count it."""
    manager = stack.deployer.deploy(uma("BaseEscalationManager"), stack.oov3.address)
    digest = digest_of("escalation-manager")
    made = make_assertion(stack, digest, escalation_manager=manager.address)
    stack.warp(LIVENESS)
    receipt = settle(stack.oov3, stack.stranger, made.assertion_id)

    assert receipt["status"] == 1
    assert stack.oov3.get_assertion(made.assertion_id).settlement_resolution  # true for UMA ...
    assert attestation(stack, made.assertion_id)[2] == REJECTED  # ... but not an attestation
    assert not stack.registry.functions.isAttested(digest).call()
    [event] = registry_events(stack, "AttestationIneligible", receipt)
    assert event["reason"] == "escalation manager"


def test_liveness_below_the_registry_minimum_settles_but_does_not_attest(stack: Stack) -> None:
    minimum = stack.registry.functions.minLiveness().call()
    digest = digest_of("short-liveness")
    made = make_assertion(stack, digest, liveness=minimum - 1)
    stack.warp(minimum)
    receipt = settle(stack.oov3, stack.stranger, made.assertion_id)
    assert attestation(stack, made.assertion_id)[2] == REJECTED
    [event] = registry_events(stack, "AttestationIneligible", receipt)
    assert event["reason"] == "liveness below minimum"


def test_callbacks_never_block_settlement(stack: Stack) -> None:
    """Every path through both callbacks: repeated digests, zero digest, dispute then either outcome."""
    digest = digest_of("shared")
    first = make_assertion(stack, digest, claim=CLAIM + b" 1")
    second = make_assertion(stack, digest, claim=CLAIM + b" 2")
    zero = make_assertion(stack, b"\0" * 32, claim=CLAIM + b" 3")
    rejected = make_assertion(stack, digest, claim=CLAIM + b" 4")
    dispute(stack, rejected)
    push_price(stack, rejected, 0)
    stack.warp(LIVENESS)
    for made in (second, first, zero, rejected):
        assert settle(stack.oov3, stack.stranger, made.assertion_id)["status"] == 1
        assert stack.oov3.get_assertion(made.assertion_id).settled

    # The first assertion to resolve true is the one a digest points at; a later rejection does not undo it.
    assert bytes(stack.registry.functions.attestedBy(digest).call()) == second.assertion_id
    assert stack.registry.functions.isAttested(digest).call()
    assert [attestation(stack, m.assertion_id)[2] for m in (first, second, zero, rejected)] == [
        ATTESTED,
        ATTESTED,
        ATTESTED,
        REJECTED,
    ]


def test_attestation_of_unknown_or_foreign_assertions_is_empty(stack: Stack) -> None:
    unknown = b"\x42" * 32
    assert attestation(stack, unknown) == (b"\0" * 32, ZERO_ADDRESS, 0, 0)

    bond = stack.oov3.minimum_bond(stack.deployment.currency)
    stack.approve(stack.asserter, bond)
    foreign, _ = assert_truth(
        stack.oov3,
        stack.asserter,
        claim=CLAIM,
        asserter=stack.asserter.address,
        callback_recipient=ZERO_ADDRESS,
        liveness=LIVENESS,
        currency=stack.deployment.currency,
        bond=bond,
        identifier="ASSERT_TRUTH2",
        domain_id=digest_of("foreign"),
    )
    assert attestation(stack, foreign.assertion_id)[2] == 0


def test_assertion_made_event_decodes_what_was_sent(stack: Stack) -> None:
    digest = digest_of("event")
    made = make_assertion(stack, digest)
    assert made.domain_id == digest
    assert made.claim == CLAIM
    assert made.callback_recipient == stack.registry.address
    assert made.identifier == to_bytes32("ASSERT_TRUTH2")
    assert made.asserter == made.caller == stack.asserter.address
    assert made.expiration_time - LIVENESS == stack.oov3.get_assertion(made.assertion_id).assertion_time
    # assertionId = keccak256(abi.encode(claim, bond, time, liveness, currency, callbackRecipient,
    #                                    escalationManager, identifier, msg.sender))
    from eth_abi import encode

    assertion = stack.oov3.get_assertion(made.assertion_id)
    expected = Web3.keccak(
        encode(
            ["bytes", "uint256", "uint64", "uint64", "address", "address", "address", "bytes32", "address"],
            [
                CLAIM,
                made.bond,
                assertion.assertion_time,
                LIVENESS,
                made.currency,
                made.callback_recipient,
                ZERO_ADDRESS,
                made.identifier,
                made.caller,
            ],
        )
    )
    assert bytes(expected) == made.assertion_id


def test_bond_below_minimum_is_refused_before_sending(stack: Stack) -> None:
    minimum = stack.oov3.minimum_bond(stack.deployment.currency)
    stack.approve(stack.asserter, minimum)
    nonce = stack.w3.eth.get_transaction_count(stack.asserter.address)
    with pytest.raises(TransactionRejected, match="Bond amount too low"):
        assert_truth(
            stack.oov3,
            stack.asserter,
            claim=CLAIM,
            asserter=stack.asserter.address,
            callback_recipient=stack.registry.address,
            liveness=LIVENESS,
            currency=stack.deployment.currency,
            bond=minimum - 1,
            identifier="ASSERT_TRUTH2",
            domain_id=digest_of("low bond"),
        )
    assert stack.w3.eth.get_transaction_count(stack.asserter.address) == nonce  # nothing was sent


def test_whitelists_are_read_from_uma_and_a_stale_oracle_cache_is_detected(stack: Stack) -> None:
    currency = stack.deployment.currency
    assert stack.oov3.is_identifier_supported("ASSERT_TRUTH2")
    assert not stack.oov3.is_identifier_supported("ASSERT_TRUTH")  # deprecated, not whitelisted here
    assert stack.oov3.is_currency_whitelisted(currency)
    assert not stack.oov3.is_currency_whitelisted(stack.registry.address)
    make_assertion(stack, digest_of("caches the identifier and currency"))
    assert not stack.oov3.cache_is_stale("ASSERT_TRUTH2", currency)

    store = stack.w3.eth.contract(address=stack.deployment.store, abi=uma("Store").abi)
    new_fee = 2 * stack.oov3.final_fee(currency)
    stack.deployer.transact(store.functions.setFinalFee(currency, (new_fee,)), "setFinalFee")
    assert stack.oov3.cache_is_stale("ASSERT_TRUTH2", currency)
    assert stack.oov3.minimum_bond(currency) == new_fee  # still the old fee x 2: the cache is behind

    sync_uma_params(stack.oov3, stack.stranger, "ASSERT_TRUTH2", currency)
    assert not stack.oov3.cache_is_stale("ASSERT_TRUTH2", currency)
    assert stack.oov3.minimum_bond(currency) == 2 * new_fee

    whitelist = stack.w3.eth.contract(address=stack.deployment.identifier_whitelist, abi=uma("IdentifierWhitelist").abi)
    stack.deployer.transact(whitelist.functions.removeSupportedIdentifier(to_bytes32("ASSERT_TRUTH2")), "remove")
    assert stack.oov3.cache_is_stale("ASSERT_TRUTH2", currency)


def test_a_sender_without_gas_money_is_refused_before_signing(stack: Stack) -> None:
    from eth_account import Account

    from attest.chain.tx import Sender
    from attest.errors import ChainError

    broke = Sender(stack.w3, Account.create())
    with pytest.raises(ChainError, match=r"needs .* for gas; fund it"):
        broke.transact(stack.currency.functions.approve(stack.oov3.address, 1), "approve")
    assert stack.w3.eth.get_transaction_count(broke.address) == 0


def test_oracle_events_are_decoded_in_chain_order(stack: Stack) -> None:
    from attest.chain.oov3 import AssertionDisputed, AssertionSettled

    start = stack.w3.eth.block_number + 1
    honest = make_assertion(stack, digest_of("events honest"), claim=CLAIM + b" honest")
    wrong = make_assertion(stack, digest_of("events wrong"), claim=CLAIM + b" wrong")
    dispute(stack, wrong)
    push_price(stack, wrong, 0)
    stack.warp(LIVENESS)
    settle(stack.oov3, stack.stranger, wrong.assertion_id)
    settle(stack.oov3, stack.stranger, honest.assertion_id)

    events = stack.oov3.events_between(start, stack.w3.eth.block_number)
    assert [type(e).__name__ for e in events] == [
        "AssertionMade",
        "AssertionMade",
        "AssertionDisputed",
        "AssertionSettled",
        "AssertionSettled",
    ]
    assert events[0] == honest and events[1] == wrong
    disputed, settled_wrong, settled_honest = events[2:]
    assert isinstance(disputed, AssertionDisputed)
    assert (disputed.assertion_id, disputed.disputer, disputed.caller) == (
        wrong.assertion_id,
        stack.disputer.address,
        stack.disputer.address,
    )
    assert isinstance(settled_wrong, AssertionSettled) and isinstance(settled_honest, AssertionSettled)
    assert (settled_wrong.disputed, settled_wrong.settlement_resolution, settled_wrong.bond_recipient) == (
        True,
        False,
        stack.disputer.address,
    )
    assert (settled_honest.disputed, settled_honest.settlement_resolution, settled_honest.bond_recipient) == (
        False,
        True,
        stack.asserter.address,
    )
    assert [e.block_number for e in events] == sorted(e.block_number for e in events)
