"""Contract tests run under ape on anvil (ape-foundry); the stack is deployed once per session and every
test starts from that snapshot (ape's isolation fixtures)."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from ape import chain, project
from eth_account.signers.local import LocalAccount
from web3 import Web3
from web3.contract import Contract

from attest.chain.artifacts import Artifact, uma
from attest.chain.oov3 import OptimisticOracleV3
from attest.chain.tx import Sender
from attest.devnet import Deployment, StackParams, deploy_stack

LIVENESS = 3600


@dataclass
class Stack:
    w3: Web3
    deployment: Deployment
    oov3: OptimisticOracleV3
    registry: Contract
    currency: Contract
    oracle: Contract
    deployer: Sender
    asserter: Sender
    disputer: Sender
    stranger: Sender

    def approve(self, who: Sender, amount: int) -> None:
        who.transact(self.currency.functions.approve(self.oov3.address, amount), "approve")

    def balance(self, address: str) -> int:
        return int(self.currency.functions.balanceOf(address).call())

    def warp(self, seconds: int) -> None:
        chain.mine(1, timestamp=chain.pending_timestamp + seconds)


def compiled_registry() -> Artifact:
    """The registry compiled from contracts/ right now, so the tests exercise the current source."""
    ct = project.AttestationRegistry.contract_type
    abi = [entry.model_dump(by_alias=True, mode="json") for entry in ct.abi]
    return Artifact("AttestationRegistry", abi, str(ct.deployment_bytecode.bytecode))


@pytest.fixture(scope="session")
def stack(dev_keys: list[LocalAccount]) -> Stack:
    w3 = chain.provider.web3
    deployer, asserter, disputer, stranger = (Sender(w3, k) for k in dev_keys[:4])
    deployment = deploy_stack(
        deployer,
        StackParams(),
        mint_to=(asserter.address, disputer.address, stranger.address),
        registry_artifact=compiled_registry(),
    )
    registry = w3.eth.contract(address=deployment.registry, abi=compiled_registry().abi)
    currency = w3.eth.contract(address=deployment.currency, abi=uma("TestnetERC20").abi)
    oracle = w3.eth.contract(address=deployment.oracle, abi=uma("MockOracleAncillary").abi)
    return Stack(
        w3,
        deployment,
        OptimisticOracleV3(w3, deployment.oov3),
        registry,
        currency,
        oracle,
        deployer,
        asserter,
        disputer,
        stranger,
    )
