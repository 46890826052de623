"""The DAO that governs a knowledge base (contracts/governance/): an OpenZeppelin 4.9 Governor with simple counting,
ERC20Votes votes, a quorum fraction and a TimelockController that executes what passed.

A proposal is known by its id, a uint256 hash of what it calls; its contents (targets, calldata, description),
which queueing and executing must repeat, are read back from the Governor's `ProposalCreated` log. Timepoints of
the vote (snapshot, deadline) are block numbers (the token's clock); the timelock's ETA is a timestamp.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hexbytes import HexBytes
from web3 import Web3

from attest.chain.abi import EncodedCall, event, method
from attest.chain.artifacts import shipped

GOVERNOR = "KnowledgeGovernor"
TIMELOCK = "KnowledgeTimelock"
VOTES = "KnowledgeVotes"

# IGovernor.ProposalState, by its index.
STATES = ("pending", "active", "canceled", "defeated", "succeeded", "queued", "expired", "executed")
# GovernorCountingSimple's `support` values.
SUPPORT = {"against": 0, "for": 1, "abstain": 2}


@dataclass(frozen=True)
class Proposal:
    """A proposal as its `ProposalCreated` log tells it."""

    id: int
    proposer: str
    targets: tuple[str, ...]
    values: tuple[int, ...]
    calldatas: tuple[bytes, ...]
    vote_start: int  # the snapshot block: votes are counted as delegated then
    vote_end: int  # the last block of the vote
    description: str
    block_number: int  # where it was made

    @property
    def description_hash(self) -> bytes:
        return bytes(Web3.keccak(text=self.description))

    @property
    def hex_id(self) -> str:
        return f"0x{self.id:064x}"


@dataclass(frozen=True)
class Tally:
    against: int
    for_: int
    abstain: int


class Governor:
    """Reads of a deployed KnowledgeGovernor and the calls a voter or anyone sends to it (for the outbox)."""

    def __init__(self, w3: Web3, address: str) -> None:
        self.w3 = w3
        self.address = Web3.to_checksum_address(address)

    def _read(self, name: str, *args: Any, block: int | str = "latest") -> Any:
        (value,) = method(GOVERNOR, name).call(self.w3, self.address, *args, block=block)
        return value

    # -- reads -----------------------------------------------------------------------------------------------
    def timelock(self) -> str:
        return str(Web3.to_checksum_address(self._read("timelock")))

    def token(self) -> str:
        return str(Web3.to_checksum_address(self._read("token")))

    def state(self, proposal_id: int) -> str:
        return STATES[int(self._read("state", proposal_id))]

    def snapshot(self, proposal_id: int) -> int:
        """The block whose delegated votes count; 0 for an id no proposal has."""
        return int(self._read("proposalSnapshot", proposal_id))

    def deadline(self, proposal_id: int) -> int:
        return int(self._read("proposalDeadline", proposal_id))

    def eta(self, proposal_id: int) -> int:
        """The timestamp from which the timelock executes a queued proposal; 0 when it is not queued."""
        return int(self._read("proposalEta", proposal_id))

    def quorum(self, block: int) -> int:
        return int(self._read("quorum", block))

    def tally(self, proposal_id: int) -> Tally:
        (against, for_, abstain) = method(GOVERNOR, "proposalVotes").call(self.w3, self.address, proposal_id)
        return Tally(int(against), int(for_), int(abstain))

    def has_voted(self, proposal_id: int, account: str) -> bool:
        return bool(self._read("hasVoted", proposal_id, Web3.to_checksum_address(account)))

    def votes_at(self, account: str, block: int) -> int:
        """`account`'s delegated votes at `block` (which must be in the past)."""
        return int(self._read("getVotes", Web3.to_checksum_address(account), block))

    def voting_delay(self) -> int:
        return int(self._read("votingDelay"))

    def voting_period(self) -> int:
        return int(self._read("votingPeriod"))

    def proposal_id(self, targets: list[str], values: list[int], calldatas: list[bytes], description: str) -> int:
        """The id `propose` would give these contents (the Governor's `hashProposal`)."""
        description_hash = bytes(Web3.keccak(text=description))
        return int(self._read("hashProposal", _checksummed(targets), values, calldatas, description_hash))

    def proposals(self, from_block: int = 0) -> list[Proposal]:
        """Every proposal made since `from_block`, oldest first."""
        created = event(GOVERNOR, "ProposalCreated")
        logs = self.w3.eth.get_logs(
            {
                "address": self.address,
                "fromBlock": from_block,
                "toBlock": "latest",
                "topics": [HexBytes(created.topic).to_0x_hex()],
            }
        )
        out = []
        for log in sorted(logs, key=lambda entry: (entry["blockNumber"], entry["logIndex"])):
            a = created.decode(log)["args"]
            out.append(
                Proposal(
                    int(a["proposalId"]),
                    str(a["proposer"]),
                    tuple(str(Web3.to_checksum_address(t)) for t in a["targets"]),
                    tuple(int(v) for v in a["values"]),
                    tuple(bytes(c) for c in a["calldatas"]),
                    int(a["voteStart"]),
                    int(a["voteEnd"]),
                    str(a["description"]),
                    int(log["blockNumber"]),
                )
            )
        return out

    # -- the calls -------------------------------------------------------------------------------------------
    def propose_call(
        self, targets: list[str], values: list[int], calldatas: list[bytes], description: str
    ) -> EncodedCall:
        data = method(GOVERNOR, "propose").encode(_checksummed(targets), values, calldatas, description)
        return self._call(data)

    def vote_call(self, proposal_id: int, support: str) -> EncodedCall:
        return self._call(method(GOVERNOR, "castVote").encode(proposal_id, SUPPORT[support]))

    def queue_call(self, proposal: Proposal) -> EncodedCall:
        return self._call(method(GOVERNOR, "queue").encode(*_contents(proposal)))

    def execute_call(self, proposal: Proposal) -> EncodedCall:
        return self._call(method(GOVERNOR, "execute").encode(*_contents(proposal)))

    def _call(self, data: bytes) -> EncodedCall:
        return EncodedCall(self.w3, self.address, data, shipped(GOVERNOR).abi)


def timelock_delay(w3: Web3, timelock: str) -> int:
    """The timelock's minimum delay, in seconds."""
    (delay,) = method(TIMELOCK, "getMinDelay").call(w3, timelock)
    return int(delay)


def _checksummed(addresses: list[str]) -> list[str]:
    return [str(Web3.to_checksum_address(a)) for a in addresses]


def _contents(p: Proposal) -> tuple[list[str], list[int], list[bytes], bytes]:
    return list(p.targets), list(p.values), list(p.calldatas), p.description_hash
