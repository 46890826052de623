"""Voting on a real UMA VotingV2 (from @uma/core) behind a real OptimisticOracleV3, on a throwaway anvil.

Time moves with `evm_setNextBlockTimestamp` + `evm_mine`, so a round of two phases takes no wall time.
"""

from __future__ import annotations

import sqlite3
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from eth_account.signers.local import LocalAccount
from web3 import Web3
from web3.contract import Contract

from attest.chain.artifacts import uma
from attest.chain.deploy import Deployment, StackParams, deploy_stack
from attest.chain.oov3 import NUMERICAL_TRUE, ZERO_ADDRESS, OptimisticOracleV3
from attest.chain.tx import Sender
from attest.chain.voting import (
    PendingRequest,
    VotePhase,
    VotingClient,
    VotingDeployment,
    VotingParams,
    deploy_voting_stack,
    new_salt,
    vote_hash,
)
from attest.devnet import DEV_MNEMONIC
from attest.errors import ChainError, ConfigError, TransactionRejected
from attest.localnet import HOST, free_port
from attest.networks import ASSERT_TRUTH2
from attest.paths import anvil_executable

PHASE = 120
BIG_STAKE = 4_000_000 * 10**18  # the disputer's: alone it passes the GAT and the SPAT (more than half of all stake)
SMALL_STAKE = 2_000_000 * 10**18
LIVENESS = 3600


@pytest.fixture(scope="module")
def w3() -> Iterator[Web3]:
    port = free_port()
    proc = subprocess.Popen(
        [str(anvil_executable()), "--host", HOST, "--port", str(port), "--mnemonic", DEV_MNEMONIC, "--silent"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    web3 = Web3(Web3.HTTPProvider(f"http://{HOST}:{port}", request_kwargs={"timeout": 10}))
    deadline = time.monotonic() + 15
    while not web3.is_connected():
        assert proc.poll() is None, "anvil exited at start"
        assert time.monotonic() < deadline, "anvil did not answer within 15 s"
        time.sleep(0.05)
    yield web3
    proc.terminate()
    proc.wait(timeout=10)


@dataclass
class Dvm:
    w3: Web3
    base: Deployment
    dvm: VotingDeployment
    oov3: OptimisticOracleV3
    voting: VotingClient
    currency: Contract
    deployer: Sender
    asserter: Sender
    disputer: Sender  # also the big staker: the disputer votes on its own dispute
    voter: Sender  # a second, smaller staker
    stranger: Sender

    def warp_to(self, timestamp: int) -> None:
        self.w3.provider.make_request("evm_setNextBlockTimestamp", [timestamp])  # type: ignore[arg-type]
        self.w3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]

    def warp_to_phase(self, round_id: int, phase: VotePhase) -> None:
        self.warp_to(round_id * 2 * PHASE + phase * PHASE + 1)

    def now(self) -> int:
        return int(self.w3.eth.get_block("latest")["timestamp"])

    def balance(self, address: str) -> int:
        return int(self.currency.functions.balanceOf(address).call())

    def assert_and_dispute(self, claim: bytes) -> tuple[bytes, int]:
        """A fresh assertion, disputed at once: (assertion id, the round its vote starts in)."""
        bond = self.oov3.minimum_bond(self.base.currency)
        for who in (self.asserter, self.disputer):
            who.transact(self.currency.functions.approve(self.oov3.address, bond), "approve bond")
        made, _ = self.oov3.assert_truth(
            self.asserter,
            claim=claim,
            asserter=self.asserter.address,
            callback_recipient=ZERO_ADDRESS,
            liveness=LIVENESS,
            currency=self.base.currency,
            bond=bond,
            identifier=ASSERT_TRUTH2,
            domain_id=b"\x11" * 32,
        )
        self.oov3.dispute(self.disputer, made.assertion_id, self.disputer.address)
        return made.assertion_id, self.voting.current_round_id() + 1

    def stamp(self, assertion_id: bytes) -> bytes:
        """The ancillary data OOv3 sends with its price request (design.md)."""
        return f"assertionId:{assertion_id.hex()},ooAsserter:{self.asserter.address.lower()[2:]}".encode()

    def request_for(self, assertion_id: bytes) -> PendingRequest:
        """The pending request OOv3 made for the assertion, found the way a voter finds it: by its ancillary data."""
        matches = [r for r in self.voting.pending_requests() if r.ancillary_data == self.stamp(assertion_id)]
        assert len(matches) == 1, f"expected one pending request for {assertion_id.hex()}, got {matches}"
        return matches[0]


@pytest.fixture(scope="module")
def dvm(w3: Web3, dev_keys: list[LocalAccount]) -> Dvm:
    deployer, asserter, disputer, voter, stranger = (Sender(w3, k) for k in dev_keys[:5])
    base = deploy_stack(deployer, StackParams(), mint_to=(asserter.address, disputer.address))
    dvm = deploy_voting_stack(
        deployer, base, VotingParams(phase_length=PHASE), mint_to=(disputer.address, voter.address)
    )
    voting = VotingClient(w3, dvm.voting)
    voting.stake(disputer, BIG_STAKE)
    voting.stake(voter, SMALL_STAKE)
    currency = w3.eth.contract(address=Web3.to_checksum_address(base.currency), abi=uma("TestnetERC20").abi)
    oov3 = OptimisticOracleV3(w3, base.oov3)
    return Dvm(w3, base, dvm, oov3, voting, currency, deployer, asserter, disputer, voter, stranger)


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
    assertion_id, vote_round = dvm.assert_and_dispute(b'{"title":"t","description":"a false claim"}')
    assertion = dvm.oov3.get_assertion(assertion_id)
    # The request waits for the next round: nothing to vote on yet.
    assert dvm.stamp(assertion_id) not in {r.ancillary_data for r in dvm.voting.pending_requests()}

    dvm.warp_to_phase(vote_round, VotePhase.COMMIT)
    assert dvm.voting.current_round_id() == vote_round
    assert dvm.voting.vote_phase() is VotePhase.COMMIT
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
        dvm.oov3.settle(dvm.stranger, assertion_id)

    dvm.warp_to_phase(vote_round, VotePhase.REVEAL)
    assert dvm.voting.vote_phase() is VotePhase.REVEAL
    for who in (dvm.disputer, dvm.voter):
        price, salt = _load_vote(db, request.request_id, who.address)
        dvm.voting.reveal(who, request.identifier, request.time, price, request.ancillary_data, salt)

    dvm.warp_to_phase(vote_round + 1, VotePhase.COMMIT)
    assert dvm.voting.has_price(request.identifier, request.time, request.ancillary_data, **oov3_view)
    assert dvm.voting.get_price(request.identifier, request.time, request.ancillary_data, **oov3_view) == 0
    assert request.request_id not in {r.request_id for r in dvm.voting.pending_requests()}

    disputer_before = dvm.balance(dvm.disputer.address)
    dvm.oov3.settle(dvm.stranger, assertion_id)
    settled = dvm.oov3.get_assertion(assertion_id)
    assert settled.settled and settled.settlement_resolution is False
    # The disputer wins: its bond back plus half of the asserter's (the other half is burned to the Store).
    assert dvm.balance(dvm.disputer.address) - disputer_before == assertion.bond + assertion.bond // 2


def test_a_wrong_salt_is_refused_before_sending_and_the_right_one_resolves_true(dvm: Dvm) -> None:
    assertion_id, vote_round = dvm.assert_and_dispute(b'{"title":"t","description":"a true claim"}')
    dvm.warp_to_phase(vote_round, VotePhase.COMMIT)
    request = dvm.request_for(assertion_id)
    who, ident, when, ancillary = dvm.disputer, request.identifier, request.time, request.ancillary_data
    salt = -new_salt()  # int256: a negative salt must hash as Solidity's two's complement
    dvm.voting.commit(
        who, ident, when, ancillary, vote_hash(NUMERICAL_TRUE, salt, who.address, when, ancillary, vote_round, ident)
    )
    with pytest.raises(TransactionRejected, match="Reveal phase has not started yet"):
        dvm.voting.reveal(who, ident, when, NUMERICAL_TRUE, ancillary, salt)

    dvm.warp_to_phase(vote_round, VotePhase.REVEAL)
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
    dvm.warp_to_phase(vote_round + 1, VotePhase.COMMIT)
    assert dvm.voting.get_price(ident, when, ancillary, requester=dvm.oov3.address) == NUMERICAL_TRUE
    dvm.oov3.settle(dvm.stranger, assertion_id)
    assert dvm.oov3.get_assertion(assertion_id).settlement_resolution is True


def test_prices_are_served_to_registered_contracts_only(dvm: Dvm) -> None:
    with pytest.raises(ChainError, match="Caller not registered"):
        dvm.voting.has_price(ASSERT_TRUTH2, 1, b"", requester=dvm.stranger.address)
