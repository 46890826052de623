"""A real UMA VotingV2 (DVM) behind a real OptimisticOracleV3 on a throwaway anvil, shared by the voting tests.

`throwaway_anvil()` starts its own anvil (not the session devnet: VotingV2 needs time warped by whole rounds, which
would disturb every other test). `deploy_dvm` puts the full stack on it and stakes voting tokens; `Dvm` carries
the helpers the tests need (warp to a phase, assert and dispute, find a pending request, a daemon's
`ChainContext`). Time moves with `evm_setNextBlockTimestamp` + `evm_mine`, so a round takes no wall time.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass

from eth_account.signers.local import LocalAccount
from web3 import Web3
from web3.contract import Contract
from web3.types import RPCEndpoint

from attest.chain.artifacts import uma
from attest.chain.connect import ChainContext
from attest.chain.deploy import Deployment, StackParams, deploy_stack
from attest.chain.oov3 import OptimisticOracleV3
from attest.chain.tx import Sender
from attest.chain.voting import (
    PendingRequest,
    VotePhase,
    VotingClient,
    VotingDeployment,
    VotingParams,
    deploy_voting_stack,
)
from attest.config import NetworkConfig
from attest.devnet import DEV_MNEMONIC
from attest.localnet import HOST, free_port
from attest.networks import ASSERT_TRUTH2, Network, OracleKind
from attest.paths import anvil_executable

PHASE = 120  # seconds per vote phase; a round is two
LIVENESS = 3600


@contextmanager
def throwaway_anvil() -> Iterator[Web3]:
    """An anvil of its own on a free port with the dev mnemonic, stopped on exit."""
    port = free_port()
    proc = subprocess.Popen(
        [str(anvil_executable()), "--host", HOST, "--port", str(port), "--mnemonic", DEV_MNEMONIC, "--silent"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        web3 = Web3(Web3.HTTPProvider(f"http://{HOST}:{port}", request_kwargs={"timeout": 10}))
        deadline = time.monotonic() + 60  # a loaded CI host can take a while to start a process
        while not web3.is_connected():
            assert proc.poll() is None, "anvil exited at start"
            assert time.monotonic() < deadline, "anvil did not answer within 60 s"
            time.sleep(0.05)
        yield web3
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def warp(w3: Web3, timestamp: int) -> None:
    w3.provider.make_request(RPCEndpoint("evm_setNextBlockTimestamp"), [timestamp])
    w3.provider.make_request(RPCEndpoint("evm_mine"), [])


@dataclass
class Dvm:
    """One deployed stack and the dev accounts around it (0 deploys, 1 asserts, 2 disputes, 3 and 4 vote)."""

    w3: Web3
    base: Deployment
    dvm: VotingDeployment
    oov3: OptimisticOracleV3
    voting: VotingClient
    currency: Contract
    deployer: Sender
    asserter: Sender
    disputer: Sender
    voter: Sender
    stranger: Sender

    def warp_to(self, timestamp: int) -> None:
        warp(self.w3, timestamp)

    def warp_to_phase(self, round_id: int, phase: VotePhase) -> None:
        self.warp_to(round_id * 2 * PHASE + phase * PHASE + 1)

    def now(self) -> int:
        return int(self.w3.eth.get_block("latest")["timestamp"])

    def balance(self, address: str) -> int:
        return int(self.currency.functions.balanceOf(address).call())

    def assert_claim(
        self, claim: bytes, *, callback_recipient: str | None = None, domain_id: bytes = b"\x11" * 32
    ) -> bytes:
        """A fresh assertion by the asserter (bond approved first): its id. The callback recipient defaults to
        the stack's AttestationRegistry, the one the disputer watches."""
        bond = self.oov3.minimum_bond(self.base.currency)
        self.asserter.transact(self.currency.functions.approve(self.oov3.address, bond), "approve bond")
        made, _ = self.oov3.assert_truth(
            self.asserter,
            claim=claim,
            asserter=self.asserter.address,
            callback_recipient=self.base.registry if callback_recipient is None else callback_recipient,
            liveness=LIVENESS,
            currency=self.base.currency,
            bond=bond,
            identifier=ASSERT_TRUTH2,
            domain_id=domain_id,
        )
        return made.assertion_id

    def assert_and_dispute(self, claim: bytes, *, callback_recipient: str | None = None) -> tuple[bytes, int]:
        """A fresh assertion, disputed at once by the disputer: (assertion id, the round its vote starts in)."""
        assertion_id = self.assert_claim(claim, callback_recipient=callback_recipient)
        bond = self.oov3.minimum_bond(self.base.currency)
        self.disputer.transact(self.currency.functions.approve(self.oov3.address, bond), "approve bond")
        self.oov3.dispute(self.disputer, assertion_id, self.disputer.address)
        return assertion_id, self.voting.current_round_id() + 1

    def stamp(self, assertion_id: bytes) -> bytes:
        """The ancillary data OOv3 sends with its price request (design.md)."""
        return f"assertionId:{assertion_id.hex()},ooAsserter:{self.asserter.address.lower()[2:]}".encode()

    def request_for(self, assertion_id: bytes) -> PendingRequest:
        """The pending request OOv3 made for the assertion, found the way a voter finds it: by its ancillary data."""
        matches = [r for r in self.voting.pending_requests() if r.ancillary_data == self.stamp(assertion_id)]
        assert len(matches) == 1, f"expected one pending request for {assertion_id.hex()}, got {matches}"
        return matches[0]

    def delegate(self, staker: Sender, delegate: Sender) -> None:
        """The two-way delegation VotingV2 needs: the staker names the delegate, the delegate accepts the staker."""
        functions = self.voting.contract.functions
        staker.transact(functions.setDelegate(delegate.address), "setDelegate")
        delegate.transact(functions.setDelegator(staker.address), "setDelegator")

    def chain_context(self) -> ChainContext:
        """What `connect` would give a daemon on a DVM network with this stack."""
        network = Network("dvm-test", int(self.w3.eth.chain_id), self.base.oov3, OracleKind.DVM, None)
        return ChainContext(
            network,
            NetworkConfig(oracle=self.dvm.voting),
            self.w3,
            OptimisticOracleV3(self.w3, self.base.oov3),
            self.base.registry,
            self.base,
            False,
        )


def deploy_dvm(w3: Web3, keys: list[LocalAccount], stakes: Mapping[int, int]) -> Dvm:
    """The whole stack on `w3`: currency minted to the asserter and disputer, voting tokens minted to and staked
    by the dev accounts in `stakes` (dev index -> amount)."""
    deployer, asserter, disputer, voter, stranger = (Sender(w3, k) for k in keys[:5])
    senders = (deployer, asserter, disputer, voter, stranger)
    base = deploy_stack(deployer, StackParams(), mint_to=(asserter.address, disputer.address))
    stakers = [senders[i] for i in stakes]
    dvm = deploy_voting_stack(
        deployer, base, VotingParams(phase_length=PHASE), mint_to=tuple(s.address for s in stakers)
    )
    voting = VotingClient(w3, dvm.voting)
    for index, amount in stakes.items():
        voting.stake(senders[index], amount)
    currency = w3.eth.contract(address=Web3.to_checksum_address(base.currency), abi=uma("TestnetERC20").abi)
    oov3 = OptimisticOracleV3(w3, base.oov3)
    return Dvm(w3, base, dvm, oov3, voting, currency, deployer, asserter, disputer, voter, stranger)
