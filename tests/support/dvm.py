"""A real UMA VotingV2 (DVM) behind a real OptimisticOracleV3 on a throwaway anvil, shared by the voting tests.

`throwaway_anvil()` starts its own anvil (not the session devnet: VotingV2 needs time warped by whole rounds, which
would disturb every other test). `deploy_dvm` puts the full stack on it and stakes voting tokens; `Dvm` carries
the helpers the tests need (warp to a phase, assert and dispute, find a pending request, a daemon's
`ChainContext`); `deploy_voting_stack` is the VotingV2 deployer under it. Time moves with
`evm_setNextBlockTimestamp` + `evm_mine`, so a round takes no wall time.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass

from eth_account.signers.local import LocalAccount
from web3 import Web3
from web3.contract import Contract
from web3.types import RPCEndpoint

from attest.accounts import DEV_MNEMONIC
from attest.chain.artifacts import shipped, uma
from attest.chain.oov3 import OptimisticOracleV3, to_bytes32
from attest.chain.tx import Sender
from attest.chain.voting import PendingRequest, RoundPhase, VotingClient
from attest.config import NetworkConfig
from attest.connect import ChainContext
from attest.devnet import Deployment, StackParams, deploy_stack
from attest.errors import ChainError, ConfigError
from attest.localnet import HOST
from attest.networks import ASSERT_TRUTH2, Network, OracleKind
from attest.paths import anvil_executable
from tests.support.oov3 import assert_truth, dispute, sync_uma_params
from tests.support.ports import free_port

PHASE = 120  # seconds per vote phase; a round is two
# Role ids of UMA's MultiRole contracts (ExpandedERC20.Roles, Registry.Roles).
TOKEN_MINTER_ROLE = 1
REGISTRY_CONTRACT_CREATOR_ROLE = 1
LIVENESS = 3600


@dataclass(frozen=True)
class VotingParams:
    """A VotingV2 for devnets: short phases, no emissions; quorum and slashing shaped like mainnet's."""

    phase_length: int = 120  # seconds; mainnet uses 86400
    emission_rate: int = 0  # voting tokens per second shared by stakers
    unstake_cooldown: int = 0
    max_rolls: int = 4
    max_requests_per_round: int = 1000
    gat: int = 1_000_000 * 10**18  # more than this many staked tokens must reveal for a vote to resolve
    spat: int = 5 * 10**17  # more than this share of the stake must agree on the winning price
    base_slash: int = 10**15  # per staked token, for missed or wrong votes (FixedSlashSlashingLibrary)
    governance_slash: int = 0
    mint_amount: int = 10_000_000 * 10**18  # voting tokens minted to each account in `mint_to`


@dataclass(frozen=True)
class VotingDeployment:
    voting: str
    voting_token: str
    slashing_library: str
    uma_registry: str  # UMA's Registry of contracts allowed to request prices (not our AttestationRegistry)
    finder: str
    oov3: str
    phase_length: int
    block_number: int

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str) -> VotingDeployment:
        return cls(**json.loads(text))


def deploy_voting_stack(
    sender: Sender,
    base: Deployment,
    params: VotingParams = VotingParams(),
    *,
    mint_to: Iterable[str] = (),
) -> VotingDeployment:
    """Put a real VotingV2 behind `base`'s OptimisticOracleV3 (from `deploy_stack`), in place of MockOracleAncillary.

    Steps: VotingToken (deployer made minter, tokens minted to `mint_to`) → FixedSlashSlashingLibrary → VotingV2
    (made a minter too, for staking rewards) → UMA Registry with the OOv3 registered (VotingV2 serves registered
    contracts only) → Finder "Registry" and "Oracle" → `syncUmaParams` on the OOv3, which caches the oracle.
    Assertions disputed before the switch stay with the old oracle's request but settle against VotingV2, so switch
    before any dispute.
    """
    recipients = [Web3.to_checksum_address(a) for a in mint_to]
    supply = params.mint_amount * len(recipients)
    if supply <= params.gat:
        # VotingV2's constructor requires GAT < total supply, without a revert message.
        raise ConfigError(
            f"the GAT ({params.gat}) must be below the voting token supply ({supply}); mint to more accounts, "
            "raise mint_amount or lower gat"
        )
    w3 = sender.w3
    token = sender.deploy(uma("VotingToken"))
    sender.transact(token.functions.addMember(TOKEN_MINTER_ROLE, sender.address), "make deployer a minter")
    for account in recipients:
        sender.transact(token.functions.mint(account, params.mint_amount), "mint voting tokens")
    slashing = sender.deploy(uma("FixedSlashSlashingLibrary"), params.base_slash, params.governance_slash)
    finder = w3.eth.contract(address=Web3.to_checksum_address(base.finder), abi=shipped("Finder").abi)
    voting = sender.deploy(
        uma("VotingV2"),
        params.emission_rate,
        params.unstake_cooldown,
        params.phase_length,
        params.max_rolls,
        params.max_requests_per_round,
        params.gat,
        params.spat,
        token.address,
        finder.address,
        slashing.address,
        "0x0000000000000000000000000000000000000000",  # no previous voting contract to fall back on
    )
    sender.transact(token.functions.addMember(TOKEN_MINTER_ROLE, voting.address), "make VotingV2 a minter")
    registry = sender.deploy(uma("Registry"))
    sender.transact(
        registry.functions.addMember(REGISTRY_CONTRACT_CREATOR_ROLE, sender.address), "make deployer a creator"
    )
    oov3 = OptimisticOracleV3(w3, base.oov3)
    sender.transact(registry.functions.registerContract([], oov3.contract.address), "register OOv3 with UMA")
    for name, address in (("Registry", registry.address), ("Oracle", voting.address)):
        sender.transact(finder.functions.changeImplementationAddress(to_bytes32(name), address), f"register {name}")
    for identifier in base.params.get("identifiers") or (ASSERT_TRUTH2,):
        sync_uma_params(oov3, sender, identifier, base.currency)
    if oov3.contract.functions.cachedOracle().call() != voting.address:
        raise ChainError("OptimisticOracleV3 still caches the old oracle; call syncUmaParams on it and retry")
    return VotingDeployment(
        voting=voting.address,
        voting_token=token.address,
        slashing_library=slashing.address,
        uma_registry=registry.address,
        finder=finder.address,
        oov3=oov3.address,
        phase_length=params.phase_length,
        block_number=w3.eth.block_number,
    )


@contextmanager
def throwaway_anvil(chain_id: int | None = None) -> Iterator[Web3]:
    """An anvil of its own on a free port with the dev mnemonic (and `chain_id`: a public network rehearsed),
    stopped on exit."""
    port = free_port()
    chain = ["--chain-id", str(chain_id)] if chain_id is not None else []
    proc = subprocess.Popen(
        [str(anvil_executable()), "--host", HOST, "--port", str(port), "--mnemonic", DEV_MNEMONIC, "--silent", *chain],
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

    def warp_to_phase(self, round_id: int, phase: RoundPhase) -> None:
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
        made, _ = assert_truth(
            self.oov3,
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
        dispute(self.oov3, self.disputer, assertion_id, self.disputer.address)
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
