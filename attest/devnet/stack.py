"""Deploy the real UMA stack (from @uma/core's artifacts) plus our AttestationRegistry.

Shared by `attest devnet` and the contract tests, so both run exactly the same contracts the same way.
Order matters: OptimisticOracleV3 caches the Finder's Store, whitelists and Oracle in its constructor, so
they are registered first.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

from web3 import Web3

from attest.chain.artifacts import Artifact, shipped, uma
from attest.chain.oov3 import ZERO_ADDRESS, to_bytes32
from attest.chain.tx import Sender
from attest.errors import DevnetError
from attest.networks import ASSERT_TRUTH2

MAX_DECIMALS = 36  # more than any real token has; 10**36 times a million still fits a uint256 easily


@dataclass(frozen=True)
class StackParams:
    identifiers: tuple[str, ...] = (ASSERT_TRUTH2,)
    currency_name: str = "USD Coin (devnet)"
    currency_symbol: str = "USDC"
    currency_decimals: int = 6
    final_fee: int = 100 * 10**6  # minimum bond = 2 x final fee = 200 USDC, as order of magnitude on mainnet
    default_liveness: int = 7200  # seconds, OOv3's mainnet default
    registry_min_liveness: int = 60  # an assertion with less cannot be watched; the registry will not count it
    mint_amount: int = 1_000_000 * 10**6

    @classmethod
    def with_decimals(cls, decimals: int) -> StackParams:
        """The same amounts (final fee 100, minimum bond 200, a million minted) for a currency of `decimals`."""
        if not 0 <= decimals <= MAX_DECIMALS:
            raise DevnetError(f"a bond token has 0 to {MAX_DECIMALS} decimals, not {decimals}")
        return cls(currency_decimals=decimals, final_fee=100 * 10**decimals, mint_amount=1_000_000 * 10**decimals)


@dataclass(frozen=True)
class Deployment:
    chain_id: int
    genesis_hash: str  # block 0: ties the deployment to one chain's history
    deployer: str
    finder: str
    identifier_whitelist: str
    collateral_whitelist: str
    store: str
    oracle: str  # MockOracleAncillary
    currency: str
    oov3: str
    registry: str
    block_number: int
    params: dict[str, Any] = field(default_factory=dict)
    # The governed knowledge base (attest/devnet/governance.py); "" on a devnet deployed before it had one.
    kb_registry: str = ""
    governor: str = ""
    timelock: str = ""
    votes_token: str = ""

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str) -> Deployment:
        return cls(**json.loads(text))

    def contract_addresses(self) -> dict[str, str]:
        return {
            "OptimisticOracleV3": self.oov3,
            "AttestationRegistry": self.registry,
            "MockOracleAncillary": self.oracle,
            "Finder": self.finder,
            "IdentifierWhitelist": self.identifier_whitelist,
            "CollateralWhitelist": self.collateral_whitelist,
            "Store": self.store,
            f"Currency ({self.params.get('currency_symbol', '?')})": self.currency,
            **{
                name: address
                for name, address in (
                    ("KnowledgeRegistry", self.kb_registry),
                    ("KnowledgeGovernor", self.governor),
                    ("KnowledgeTimelock", self.timelock),
                    ("KnowledgeVotes", self.votes_token),
                )
                if address
            },
        }


def deploy_stack(
    sender: Sender,
    params: StackParams = StackParams(),
    *,
    mint_to: tuple[str, ...] = (),
    registry_artifact: Artifact | None = None,
) -> Deployment:
    """Deploy Finder → whitelists → Store → MockOracleAncillary → currency → OOv3 → AttestationRegistry."""
    w3 = sender.w3
    finder = sender.deploy(uma("Finder"))
    identifiers = sender.deploy(uma("IdentifierWhitelist"))
    for identifier in params.identifiers:
        sender.transact(identifiers.functions.addSupportedIdentifier(to_bytes32(identifier)), "whitelist identifier")
    collateral = sender.deploy(uma("AddressWhitelist"))
    # Store(fixedOracleFeePerSecondPerPfc, weeklyDelayFeePerSecondPerPfc, timer): FixedPoint args are 1-tuples.
    store = sender.deploy(uma("Store"), (0,), (0,), ZERO_ADDRESS)
    oracle = sender.deploy(uma("MockOracleAncillary"), finder.address, ZERO_ADDRESS)
    currency = sender.deploy(
        uma("TestnetERC20"), params.currency_name, params.currency_symbol, params.currency_decimals
    )
    sender.transact(collateral.functions.addToWhitelist(currency.address), "whitelist currency")
    sender.transact(store.functions.setFinalFee(currency.address, (params.final_fee,)), "set final fee")
    for name, contract in (
        ("IdentifierWhitelist", identifiers),
        ("CollateralWhitelist", collateral),
        ("Store", store),
        ("Oracle", oracle),
    ):
        sender.transact(
            finder.functions.changeImplementationAddress(to_bytes32(name), contract.address), f"register {name}"
        )
    oov3 = sender.deploy(uma("OptimisticOracleV3"), finder.address, currency.address, params.default_liveness)
    registry = sender.deploy(
        registry_artifact or shipped("AttestationRegistry"), oov3.address, params.registry_min_liveness
    )
    for account in mint_to:
        sender.transact(
            currency.functions.allocateTo(Web3.to_checksum_address(account), params.mint_amount), "mint bond tokens"
        )
    return Deployment(
        chain_id=w3.eth.chain_id,
        genesis_hash=w3.eth.get_block(0)["hash"].to_0x_hex(),
        deployer=sender.address,
        finder=finder.address,
        identifier_whitelist=identifiers.address,
        collateral_whitelist=collateral.address,
        store=store.address,
        oracle=oracle.address,
        currency=currency.address,
        oov3=oov3.address,
        registry=registry.address,
        block_number=w3.eth.block_number,
        params=asdict(params),
    )
