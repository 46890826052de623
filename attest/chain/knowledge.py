"""A governed knowledge base's KnowledgeRegistry on chain (contracts/KnowledgeRegistry.sol): which documents each
contributor may put into the knowledge base, approved and revoked by one governor (a DAO's timelock, or an
account).

A CID is one document whatever its spelling (CIDv0 `Qm…` and CIDv1 `bafy…` of the same dag-pb node), but the
contract keys it by the hash of its string: every CID crosses this module in one canonical form, CIDv1 base32
(`canonical_cid`), so an approval made from one spelling answers a question asked in the other.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from eth_abi.exceptions import DecodingError
from hexbytes import HexBytes
from web3 import Web3
from web3.contract.contract import ContractConstructor
from web3.exceptions import BadFunctionCallOutput, ContractLogicError

from attest.chain.abi import EncodedCall, event, method
from attest.chain.artifacts import shipped
from attest.errors import GovernanceError
from attest.ipfs.cid import CID
from attest.kb.governed import ApprovedAt, Governance

ARTIFACT = "KnowledgeRegistry"


def canonical_cid(text: str) -> str:
    """The CID's CIDv1 base32 string (`InvalidCid` when it is not a CID): the one spelling the registry sees."""
    cid = CID.parse(text.strip())
    return str(CID(1, cid.codec, cid.digest))


def cid_key(cid: str) -> bytes:
    """The registry's key (and the events' `cidHash` topic) for a canonical CID string."""
    return bytes(Web3.keccak(text=cid))


@dataclass(frozen=True)
class Approval:
    """One approval of a CID: in force from block `approved_at` until block `revoked_at` (None: still in force)."""

    contributor: str
    approved_at: int
    revoked_at: int | None

    def in_force_at(self, block: int) -> bool:
        return self.approved_at <= block and (self.revoked_at is None or block < self.revoked_at)


@dataclass(frozen=True)
class Change:
    """An `Approved` or `Revoked` event, in chain order."""

    kind: Literal["approved", "revoked"]
    contributor: str
    cid: str
    block_number: int
    log_index: int
    tx_hash: str


class KnowledgeRegistry:
    """Reads of a deployed KnowledgeRegistry, and the calls its governor makes (for the outbox or a proposal)."""

    def __init__(self, w3: Web3, address: str) -> None:
        self.w3 = w3
        self.address = Web3.to_checksum_address(address)

    @classmethod
    def at(cls, w3: Web3, address: str) -> KnowledgeRegistry:
        """The registry at `address`, checked to answer as one; `GovernanceError` otherwise."""
        registry = cls(w3, address)
        if not w3.eth.get_code(registry.address):
            raise GovernanceError(
                f"there is no contract at the knowledge registry address {registry.address}; fix [kb] registry in "
                "the config file or deploy one (`attest devnet up` on the devnet)"
            )
        try:
            registry.governor()
        except (BadFunctionCallOutput, ContractLogicError, DecodingError, ValueError):
            raise GovernanceError(
                f"the contract at {registry.address} is not a KnowledgeRegistry; fix [kb] registry in the config file"
            ) from None
        return registry

    # -- reads -----------------------------------------------------------------------------------------------
    def governor(self, block: int | str = "latest") -> str:
        (governor,) = method(ARTIFACT, "governor").call(self.w3, self.address, block=block)
        return str(Web3.to_checksum_address(governor))

    def is_approved(self, contributor: str, cid: str, block: int | str = "latest") -> bool:
        """Is `contributor`'s approval of `cid` in force (now, or at `block` on a node that keeps that state)?"""
        args = (Web3.to_checksum_address(contributor), canonical_cid(cid))
        (approved,) = method(ARTIFACT, "isApproved").call(self.w3, self.address, *args, block=block)
        return bool(approved)

    def approved_at(self, contributor: str, cid: str) -> int | None:
        """The block `contributor`'s approval of `cid` in force began at; None when none is in force."""
        args = (Web3.to_checksum_address(contributor), canonical_cid(cid))
        (block,) = method(ARTIFACT, "approvedAt").call(self.w3, self.address, *args)
        return int(block) or None

    def was_approved_at(self, cid: str, block_number: int) -> bool:
        """Was some contributor's approval of `cid` in force at `block_number`? Answered from today's state, so
        any node can tell (no archive needed)."""
        (approved,) = method(ARTIFACT, "wasApprovedAt").call(self.w3, self.address, canonical_cid(cid), block_number)
        return bool(approved)

    def approvals_of(self, cid: str) -> list[Approval]:
        """Every approval of `cid`, in the order made."""
        (entries,) = method(ARTIFACT, "approvalsOf").call(self.w3, self.address, canonical_cid(cid))
        return [
            Approval(str(Web3.to_checksum_address(who)), int(start), int(end) or None) for who, start, end in entries
        ]

    def changes(self, from_block: int, to_block: int | None = None) -> list[Change]:
        """Every approval and revocation logged in [from_block, to_block (None: the latest block)], in chain order."""
        kinds = {event(ARTIFACT, name).topic: (name, event(ARTIFACT, name)) for name in ("Approved", "Revoked")}
        logs = self.w3.eth.get_logs(
            {
                "address": self.address,
                "fromBlock": from_block,
                "toBlock": "latest" if to_block is None else to_block,
                "topics": [[HexBytes(topic).to_0x_hex() for topic in kinds]],
            }
        )
        out: list[Change] = []
        for log in sorted(logs, key=lambda entry: (entry["blockNumber"], entry["logIndex"])):
            name, decoder = kinds[bytes(log["topics"][0])]
            args = decoder.decode(log)["args"]
            out.append(
                Change(
                    "approved" if name == "Approved" else "revoked",
                    str(args["contributor"]),
                    str(args["cid"]),
                    int(args["blockNumber"]),
                    int(log["logIndex"]),
                    HexBytes(log["transactionHash"]).to_0x_hex(),
                )
            )
        return out

    # -- the governor's calls ----------------------------------------------------------------------------------
    def approve_data(self, contributor: str, cid: str) -> bytes:
        """The calldata of `approve(contributor, cid)`: what a DAO proposal asks its timelock to call."""
        return method(ARTIFACT, "approve").encode(Web3.to_checksum_address(contributor), canonical_cid(cid))

    def revoke_data(self, contributor: str, cid: str) -> bytes:
        return method(ARTIFACT, "revoke").encode(Web3.to_checksum_address(contributor), canonical_cid(cid))

    def set_governor_data(self, governor: str) -> bytes:
        return method(ARTIFACT, "setGovernor").encode(Web3.to_checksum_address(governor))

    def call(self, data: bytes) -> EncodedCall:
        """A transaction to the registry with `data`, for the outbox (an account governor sends it itself)."""
        return EncodedCall(self.w3, self.address, data, abi())


def abi() -> list[dict[str, Any]]:
    return shipped(ARTIFACT).abi


def deploy_call(w3: Web3, governor: str) -> ContractConstructor:
    artifact = shipped(ARTIFACT)
    factory = w3.eth.contract(abi=artifact.abi, bytecode=artifact.bytecode)
    return factory.constructor(Web3.to_checksum_address(governor))


def approval_reader(w3: Web3, chain_id: int) -> ApprovedAt:
    """`wasApprovedAt` of a governed corpus's KnowledgeRegistry at its block, when that registry is on this chain
    (a GovernanceError, meaning "not checked", otherwise or when the call fails)."""

    def approved_at(gov: Governance, cid: str) -> bool:
        if gov.chain_id != chain_id:
            raise GovernanceError(f"this network is chain {chain_id}; verify with chain {gov.chain_id}'s network")
        try:
            return KnowledgeRegistry(w3, gov.registry).was_approved_at(cid, gov.block)
        except Exception as err:  # no contract there, or the RPC failed: nothing is concluded
            raise GovernanceError(f"wasApprovedAt failed ({type(err).__name__})") from None

    return approved_at
