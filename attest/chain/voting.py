"""UMA's DVM (VotingV2): a typed vote client and the commit hash.

Disputes on Ethereum mainnet go to VotingV2, where stakers vote in rounds of two phases: commit a hash of
(price, salt, …) in the commit phase, reveal price and salt in the reveal phase. A request is voted on in the
round after it was made, and resolves once the round ends with enough participation (GAT) and agreement (SPAT).
The salt is the only secret: lose it between commit and reveal and the vote is lost (and slashed), so callers
persist it before `commit` sends anything.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from enum import IntEnum
from functools import cached_property
from typing import Any

from eth_abi.abi import encode as abi_encode
from eth_abi.packed import encode_packed
from web3 import Web3
from web3.contract import Contract
from web3.contract.contract import ContractFunction
from web3.exceptions import ContractLogicError
from web3.types import TxReceipt

from attest.chain.artifacts import shipped
from attest.chain.oov3 import to_bytes32
from attest.chain.tx import Sender, revert_reason
from attest.errors import ChainError

Identifier = bytes | str  # a raw bytes32, or its ASCII name such as "ASSERT_TRUTH2"


class RoundPhase(IntEnum):
    COMMIT = 0
    REVEAL = 1


def _identifier(identifier: Identifier) -> bytes:
    if isinstance(identifier, str):
        return to_bytes32(identifier)
    if len(identifier) != 32:
        raise ValueError(f"an identifier is 32 bytes, got {len(identifier)}")
    return bytes(identifier)


def vote_hash(
    price: int, salt: int, voter: str, time: int, ancillary: bytes, round_id: int, identifier: Identifier
) -> bytes:
    """The commit hash VotingV2.revealVote checks: keccak256(abi.encodePacked(int256 price, int256 salt, address
    voter, uint256 time, bytes ancillaryData, uint256 roundId, bytes32 identifier)). `voter` is the staker, also
    when a delegate sends the vote."""
    packed = encode_packed(
        ["int256", "int256", "address", "uint256", "bytes", "uint256", "bytes32"],
        [price, salt, Web3.to_checksum_address(voter), time, ancillary, round_id, _identifier(identifier)],
    )
    return bytes(Web3.keccak(packed))


def new_salt() -> int:
    """A fresh random int256 salt. Never reuse one: a reused salt lets others read a vote before its reveal."""
    return secrets.randbits(255)


def request_id(identifier: Identifier, time: int, ancillary: bytes) -> bytes:
    """VotingV2's key for a price request: keccak256(abi.encode(identifier, time, ancillaryData))."""
    return bytes(Web3.keccak(abi_encode(["bytes32", "uint256", "bytes"], [_identifier(identifier), time, ancillary])))


@dataclass(frozen=True)
class PendingRequest:
    """One entry of `getPendingRequests()`: a request being voted on in the current round."""

    last_voting_round: int
    is_governance: bool
    time: int
    roll_count: int
    identifier: bytes
    ancillary_data: bytes

    @property
    def request_id(self) -> bytes:
        return request_id(self.identifier, self.time, self.ancillary_data)


class VotingClient:
    """Reads and votes on one VotingV2. Every send goes through `Sender` (static call first)."""

    def __init__(self, w3: Web3, address: str) -> None:
        self.w3 = w3
        self.contract: Contract = w3.eth.contract(
            address=Web3.to_checksum_address(address), abi=shipped("VotingV2").abi
        )

    @property
    def address(self) -> str:
        return str(self.contract.address)

    @cached_property
    def token(self) -> Contract:
        """The voting token (UMA on mainnet) that is staked."""
        address = self.contract.functions.votingToken().call()
        return self.w3.eth.contract(address=Web3.to_checksum_address(address), abi=shipped("VotingToken").abi)

    # -- timing ----------------------------------------------------------------------------------------
    # Reads see the latest block's timestamp; a transaction lands in a later block, so callers leave a margin
    # before a phase ends (see `seconds_left_in_phase`).
    def vote_phase(self) -> RoundPhase:
        return RoundPhase(int(self.contract.functions.getVotePhase().call()))

    def current_round_id(self) -> int:
        return int(self.contract.functions.getCurrentRoundId().call())

    def phase_length(self) -> int:
        return int(self.contract.functions.voteTiming().call())

    def round_end_time(self, round_id: int) -> int:
        return int(self.contract.functions.getRoundEndTime(round_id).call())

    def seconds_left_in_phase(self, now: int) -> int:
        """Seconds from `now` (a block timestamp) to the end of the phase `now` falls in."""
        length = self.phase_length()
        return length - now % length

    # -- requests and prices ---------------------------------------------------------------------------
    def pending_requests(self) -> list[PendingRequest]:
        """The requests open for voting in the current round (already rolled or resolved ones are left out)."""
        return [
            PendingRequest(
                last_voting_round=int(r[0]),
                is_governance=bool(r[1]),
                time=int(r[2]),
                roll_count=int(r[3]),
                identifier=bytes(r[4]),
                ancillary_data=bytes(r[5]),
            )
            for r in self.contract.functions.getPendingRequests().call()
        ]

    def has_price(self, identifier: Identifier, time: int, ancillary: bytes, *, requester: str) -> bool:
        """Whether the vote has resolved, as `requester` sees it. VotingV2 answers registered contracts only, so
        pass the OptimisticOracleV3 that asked: then True means its settleAssertion can go through."""
        fn = self.contract.get_function_by_signature("hasPrice(bytes32,uint256,bytes)")
        call = fn(_identifier(identifier), time, ancillary)
        return bool(self._read(call, requester, "hasPrice"))

    def get_price(self, identifier: Identifier, time: int, ancillary: bytes, *, requester: str) -> int:
        """The resolved price (1e18 = true for ASSERT_TRUTH2), as `requester` (a registered contract) gets it."""
        fn = self.contract.get_function_by_signature("getPrice(bytes32,uint256,bytes)")
        call = fn(_identifier(identifier), time, ancillary)
        return int(self._read(call, requester, "getPrice"))

    def _read(self, call: ContractFunction, requester: str, name: str) -> Any:
        try:
            return call.call({"from": Web3.to_checksum_address(requester)})
        except ContractLogicError as err:
            reason = revert_reason(err, shipped("VotingV2").abi)
            raise ChainError(
                f"VotingV2.{name} for {requester} failed: {reason}; check the vote has resolved (has_price) and that "
                "the requester is the registered contract that asked"
            ) from None

    # -- staking ---------------------------------------------------------------------------------------
    def voter_for(self, sender: str) -> str:
        """Whose stake `sender`'s votes count for: its delegator when the delegation is set up on both sides,
        else itself. VotingV2 puts this address, not the sender's, into the commit hash."""
        return str(self.contract.functions.getVoterFromDelegate(Web3.to_checksum_address(sender)).call())

    def stake_of(self, voter: str) -> int:
        """The voter's active stake (tokens that vote and can be slashed)."""
        return int(self.contract.functions.voterStakes(Web3.to_checksum_address(voter)).call()[0])

    def stake(self, sender: Sender, amount: int) -> TxReceipt:
        """Approve and stake `amount` of the voting token from the sender's wallet."""
        balance = int(self.token.functions.balanceOf(sender.address).call())
        if balance < amount:
            raise ChainError(
                f"stake: {sender.address} holds {balance} voting-token units but tries to stake {amount}; "
                "get more tokens or stake less"
            )
        sender.transact(self.token.functions.approve(self.contract.address, amount), "approve stake")
        return sender.transact(self.contract.functions.stake(amount), "stake")

    # -- voting ----------------------------------------------------------------------------------------
    def commit(self, sender: Sender, identifier: Identifier, time: int, ancillary: bytes, hash_: bytes) -> TxReceipt:
        """Commit `hash_` (from `vote_hash`, with the current round id) in the commit phase. A later commit for
        the same request in the same round replaces the earlier one."""
        return sender.transact(self.commit_call(identifier, time, ancillary, hash_), "commitVote")

    def commit_call(self, identifier: Identifier, time: int, ancillary: bytes, hash_: bytes) -> ContractFunction:
        """The commitVote call, unsent (for `Sender.prepare` when a ledger records the signed bytes first)."""
        return self.contract.functions.commitVote(_identifier(identifier), time, ancillary, hash_)

    def reveal(
        self, sender: Sender, identifier: Identifier, time: int, price: int, ancillary: bytes, salt: int
    ) -> TxReceipt:
        """Reveal in the reveal phase of the round the commit was made in, with the price and salt committed."""
        return sender.transact(self.reveal_call(identifier, time, price, ancillary, salt), "revealVote")

    def reveal_call(
        self, identifier: Identifier, time: int, price: int, ancillary: bytes, salt: int
    ) -> ContractFunction:
        """The revealVote call, unsent."""
        return self.contract.functions.revealVote(_identifier(identifier), time, price, ancillary, salt)
