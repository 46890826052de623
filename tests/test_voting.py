"""Voting on a real UMA VotingV2 (from @uma/core) behind a real OptimisticOracleV3, on a throwaway anvil.

Time moves with `evm_setNextBlockTimestamp` + `evm_mine`, so a round of two phases takes no wall time.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from eth_account.signers.local import LocalAccount
from web3 import Web3

from attest.chain.oov3 import NUMERICAL_TRUE, ZERO_ADDRESS
from attest.chain.voting import RoundPhase, new_salt, vote_hash
from attest.errors import ChainError, ConfigError, TransactionRejected
from attest.networks import ASSERT_TRUTH2
from tests.support.dvm import (
    PHASE,
    Dvm,
    VotingDeployment,
    VotingParams,
    deploy_dvm,
    deploy_voting_stack,
    throwaway_anvil,
)
from tests.support.oov3 import settle

BIG_STAKE = 4_000_000 * 10**18  # the disputer's: alone it passes the GAT and the SPAT (more than half of all stake)
SMALL_STAKE = 2_000_000 * 10**18


@pytest.fixture(scope="module")
def w3() -> Iterator[Web3]:
    with throwaway_anvil() as web3:
        yield web3


@pytest.fixture(scope="module")
def dvm(w3: Web3, dev_keys: list[LocalAccount]) -> Dvm:
    # The disputer (dev 2) is also the big staker: it votes on its own dispute; dev 3 is a second, smaller staker.
    return deploy_dvm(w3, dev_keys, {2: BIG_STAKE, 3: SMALL_STAKE})


def _persist_salt(db: Path, request_id: bytes, voter: str, price: int, salt: int) -> None:
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS votes (request BLOB, voter TEXT, price TEXT, salt TEXT)")
        conn.execute("INSERT INTO votes VALUES (?, ?, ?, ?)", (request_id, voter, str(price), str(salt)))


def _load_vote(db: Path, request_id: bytes, voter: str) -> tuple[int, int]:
    with sqlite3.connect(db) as conn:
        row = conn.execute("SELECT price, salt FROM votes WHERE request = ? AND voter = ?", (request_id, voter))
        price, salt = row.fetchone()
    return int(price), int(salt)


def test_deployment_routes_oov3_disputes_to_voting_v2(dvm: Dvm) -> None:
    assert dvm.oov3.contract.functions.cachedOracle().call() == dvm.dvm.voting
    assert dvm.voting.phase_length() == PHASE
    assert dvm.voting.stake_of(dvm.disputer.address) == BIG_STAKE
    assert dvm.voting.stake_of(dvm.voter.address) == SMALL_STAKE
    assert dvm.voting.round_end_time(7) == 8 * 2 * PHASE
    assert VotingDeployment.from_json(dvm.dvm.to_json()) == dvm.dvm


def test_deploy_refuses_a_gat_above_the_token_supply(dvm: Dvm) -> None:
    nonce = dvm.w3.eth.get_transaction_count(dvm.deployer.address)
    with pytest.raises(ConfigError, match="GAT"):
        deploy_voting_stack(dvm.deployer, dvm.base, VotingParams(gat=10**30), mint_to=(dvm.voter.address,))
    assert dvm.w3.eth.get_transaction_count(dvm.deployer.address) == nonce


def test_commit_reveal_resolves_the_dispute_and_settles_the_assertion(dvm: Dvm, tmp_path: Path) -> None:
    assertion_id, vote_round = dvm.assert_and_dispute(
        b'{"title":"t","description":"a false claim"}', callback_recipient=ZERO_ADDRESS
    )
    assertion = dvm.oov3.get_assertion(assertion_id)
    # The request waits for the next round: nothing to vote on yet.
    assert dvm.stamp(assertion_id) not in {r.ancillary_data for r in dvm.voting.pending_requests()}

    dvm.warp_to_phase(vote_round, RoundPhase.COMMIT)
    assert dvm.voting.current_round_id() == vote_round
    assert dvm.voting.vote_phase() is RoundPhase.COMMIT
    assert dvm.voting.seconds_left_in_phase(dvm.now()) == PHASE - 1
    request = dvm.request_for(assertion_id)
    assert (request.identifier, request.time) == (assertion.identifier, assertion.assertion_time)
    assert request.last_voting_round == vote_round and not request.is_governance

    # The disputer votes "false" (0) with the larger stake, the other voter "true": the mode wins.
    db = tmp_path / "votes.sqlite"
    for who, price in ((dvm.disputer, 0), (dvm.voter, NUMERICAL_TRUE)):
        salt = new_salt()
        _persist_salt(db, request.request_id, who.address, price, salt)  # before anything is sent
        digest = vote_hash(
            price, salt, who.address, request.time, request.ancillary_data, vote_round, request.identifier
        )
        dvm.voting.commit(who, request.identifier, request.time, request.ancillary_data, digest)

    oov3_view = {"requester": dvm.oov3.address}
    assert not dvm.voting.has_price(request.identifier, request.time, request.ancillary_data, **oov3_view)
    with pytest.raises(ChainError, match="Current voting round not ended"):
        dvm.voting.get_price(request.identifier, request.time, request.ancillary_data, **oov3_view)
    with pytest.raises(TransactionRejected, match="settleAssertion"):
        settle(dvm.oov3, dvm.stranger, assertion_id)

    dvm.warp_to_phase(vote_round, RoundPhase.REVEAL)
    assert dvm.voting.vote_phase() is RoundPhase.REVEAL
    for who in (dvm.disputer, dvm.voter):
        price, salt = _load_vote(db, request.request_id, who.address)
        dvm.voting.reveal(who, request.identifier, request.time, price, request.ancillary_data, salt)

    dvm.warp_to_phase(vote_round + 1, RoundPhase.COMMIT)
    assert dvm.voting.has_price(request.identifier, request.time, request.ancillary_data, **oov3_view)
    assert dvm.voting.get_price(request.identifier, request.time, request.ancillary_data, **oov3_view) == 0
    assert request.request_id not in {r.request_id for r in dvm.voting.pending_requests()}

    disputer_before = dvm.balance(dvm.disputer.address)
    settle(dvm.oov3, dvm.stranger, assertion_id)
    settled = dvm.oov3.get_assertion(assertion_id)
    assert settled.settled and settled.settlement_resolution is False
    # The disputer wins: its bond back plus half of the asserter's (the other half is burned to the Store).
    assert dvm.balance(dvm.disputer.address) - disputer_before == assertion.bond + assertion.bond // 2


def test_a_wrong_salt_is_refused_before_sending_and_the_right_one_resolves_true(dvm: Dvm) -> None:
    assertion_id, vote_round = dvm.assert_and_dispute(
        b'{"title":"t","description":"a true claim"}', callback_recipient=ZERO_ADDRESS
    )
    dvm.warp_to_phase(vote_round, RoundPhase.COMMIT)
    request = dvm.request_for(assertion_id)
    who, ident, when, ancillary = dvm.disputer, request.identifier, request.time, request.ancillary_data
    salt = -new_salt()  # int256: a negative salt must hash as Solidity's two's complement
    dvm.voting.commit(
        who, ident, when, ancillary, vote_hash(NUMERICAL_TRUE, salt, who.address, when, ancillary, vote_round, ident)
    )
    with pytest.raises(TransactionRejected, match="Reveal phase has not started yet"):
        dvm.voting.reveal(who, ident, when, NUMERICAL_TRUE, ancillary, salt)

    dvm.warp_to_phase(vote_round, RoundPhase.REVEAL)
    nonce = dvm.w3.eth.get_transaction_count(who.address)
    for wrong_price, wrong_salt in ((NUMERICAL_TRUE, salt + 1), (0, salt)):
        with pytest.raises(TransactionRejected, match="Revealed data != commit hash"):
            dvm.voting.reveal(who, ident, when, wrong_price, ancillary, wrong_salt)
    assert dvm.w3.eth.get_transaction_count(who.address) == nonce  # refused by the static call: nothing was sent
    with pytest.raises(TransactionRejected, match="Cannot commit in reveal phase"):
        dvm.voting.commit(who, ident, when, ancillary, b"\x01" * 32)
    dvm.voting.reveal(who, ident, when, NUMERICAL_TRUE, ancillary, salt)
    with pytest.raises(TransactionRejected, match="Invalid hash reveal"):  # a commit reveals once
        dvm.voting.reveal(who, ident, when, NUMERICAL_TRUE, ancillary, salt)

    # Only the disputer voted; its stake alone passes the GAT and more than half of all stake agrees.
    dvm.warp_to_phase(vote_round + 1, RoundPhase.COMMIT)
    assert dvm.voting.get_price(ident, when, ancillary, requester=dvm.oov3.address) == NUMERICAL_TRUE
    settle(dvm.oov3, dvm.stranger, assertion_id)
    assert dvm.oov3.get_assertion(assertion_id).settlement_resolution is True


def test_prices_are_served_to_registered_contracts_only(dvm: Dvm) -> None:
    with pytest.raises(ChainError, match="Caller not registered"):
        dvm.voting.has_price(ASSERT_TRUTH2, 1, b"", requester=dvm.stranger.address)
