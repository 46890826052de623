"""The oracle that resolves disputed assertions, one object per kind, obtained one way: `oracle_for(ctx)`.

OOv3 hands a disputed assertion to whatever its Finder names "Oracle" (or the network's configured `oracle`):
- `MockOracle`: MockOracleAncillary (the devnet, UMA's testnets): anyone pushes the price;
- `DvmOracle`: VotingV2 on Ethereum: stakers commit and reveal votes in rounds;
- `SpokeOracle`: an L2's OracleSpoke: the request is bridged to Ethereum and voted there, not here.

Each tells whether the oracle has a price for a request yet (so `settleAssertion` can go through); how each is
voted on is the voter's business (the disputer matches on the kind once).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar

from web3 import Web3
from web3.contract import Contract
from web3.contract.contract import ContractFunction

from attest.chain.artifacts import shipped
from attest.chain.voting import Identifier, VotingClient
from attest.connect import ChainContext
from attest.errors import AttestError
from attest.networks import OracleKind


class Oracle(ABC):
    kind: ClassVar[OracleKind]

    @abstractmethod
    def has_price(self, identifier: bytes, time: int, ancillary: bytes, *, requester: str) -> bool:
        """Whether the request (of `requester`, OOv3) is resolved; True where only a static call can tell."""


class MockOracle(Oracle):
    kind = OracleKind.MOCK

    def __init__(self, w3: Web3, address: str) -> None:
        self.address = Web3.to_checksum_address(address)
        self.contract: Contract = w3.eth.contract(address=self.address, abi=shipped("MockOracleAncillary").abi)

    def has_price(self, identifier: bytes, time: int, ancillary: bytes, *, requester: str) -> bool:
        return bool(self.contract.functions.hasPrice(identifier, time, ancillary).call())

    def push_price_call(self, identifier: bytes, time: int, ancillary: bytes, price: int) -> ContractFunction:
        return self.contract.functions.pushPrice(identifier, time, ancillary, price)


class DvmOracle(Oracle):
    kind = OracleKind.DVM

    def __init__(self, w3: Web3, address: str) -> None:
        self.voting = VotingClient(w3, address)
        self.address = self.voting.address

    def has_price(self, identifier: Identifier, time: int, ancillary: bytes, *, requester: str) -> bool:
        try:
            return self.voting.has_price(identifier, time, ancillary, requester=requester)
        except AttestError:  # VotingV2 reverts on a request it is still voting on
            return False


class SpokeOracle(Oracle):
    kind = OracleKind.SPOKE

    def has_price(self, identifier: bytes, time: int, ancillary: bytes, *, requester: str) -> bool:
        return True  # the spoke learns the price from Ethereum; the static call of settleAssertion decides


def oracle_for(ctx: ChainContext) -> Oracle:
    """The oracle behind `ctx`'s OOv3, of the kind its network names: the network's configured `oracle`, else
    what OOv3's Finder names "Oracle" (a spoke needs neither: it is voted on elsewhere)."""
    kind = ctx.network.oracle_kind
    if kind is OracleKind.SPOKE:
        return SpokeOracle()
    address = ctx.settings.oracle or _finder_oracle(ctx, kind)
    return MockOracle(ctx.w3, address) if kind is OracleKind.MOCK else DvmOracle(ctx.w3, address)


def _finder_oracle(ctx: ChainContext, kind: OracleKind) -> str:
    # OOv3's own Finder lookup (cached for a while: governance can re-point it), not a second Finder client.
    abi = "MockOracleAncillary" if kind is OracleKind.MOCK else "VotingV2"
    return str(ctx.oov3.finder_lookup("Oracle", abi).address)
