"""One place that turns a network name into a live connection: node, OOv3, our registry, the oracle behind it.

`local` is the devnet this project runs (started on demand); every other network comes from the built-in
registry in attest.networks plus the user's `[networks.<name>]` settings (RPC URL, registry address, ...).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import cached_property

from eth_account.signers.local import LocalAccount
from web3 import Web3
from web3.middleware import ExtraDataToPOAMiddleware

from attest.chain.oov3 import Assertion, OptimisticOracleV3
from attest.chain.registry import attestation_of, ineligibility, read_registry
from attest.chain.rpc import http_provider
from attest.chain.tx import FeePolicy, Sender
from attest.config import Config, NetworkConfig, load_config
from attest.devnet import Deployment, Devnet
from attest.errors import BondError, ChainError, ConfigError
from attest.locks import SigningLock
from attest.networks import Network

RPC_TIMEOUT_S = 20.0
RPC_URL_ENV = "ATTEST_RPC_URL"  # overrides the chosen network's RPC URL (handy for forks and proxies)


@dataclass(frozen=True)
class Standing:
    """What our registry makes of an assertion: the only outcome llm-attest shows or exports."""

    status: str  # the registry's: none, pending, disputed, attested, rejected
    reason: str  # why it is (or, still open, will be) rejected; "" when it counts

    @property
    def outcome(self) -> str:
        """The ledger's outcome once settled: attested only when the registry counts it."""
        return "attested" if self.status == "attested" else "rejected"


@dataclass(frozen=True)
class ChainContext:
    network: Network
    settings: NetworkConfig
    w3: Web3
    oov3: OptimisticOracleV3
    registry: str | None  # our AttestationRegistry; None where none is configured
    deployment: Deployment | None  # the devnet's deployment file, on `local`
    started_devnet: bool  # `local` only: this call started the node

    @property
    def chain_id(self) -> int:
        return self.network.chain_id

    @cached_property
    def genesis_hash(self) -> str:
        """Block 0's hash: with the chain id, it names one chain's history. A devnet reset keeps the chain id and
        the addresses but starts a new history, so what the ledger made on the old one is told apart by this."""
        if self.deployment is not None:
            return self.deployment.genesis_hash
        return self.w3.eth.get_block(0)["hash"].to_0x_hex()

    def sender(self, account: LocalAccount) -> Sender:
        """A sender for this network: its gas margin, fee cap and replacement time apply to every transaction, and
        it signs under the account's signing lock where the ledger is (other processes sharing it may sign for
        the same account)."""
        lock = SigningLock.configured(self.chain_id, account.address)
        fees = FeePolicy.of(self.network.name, self.settings.max_fee_gwei, self.settings.replace_after_s)
        return Sender(self.w3, account, gas_margin_pct=self.settings.gas_margin_pct, lock=lock, fees=fees)

    def require_oov3(self) -> None:
        """Refuse a network whose OOv3 address has no contract behind it (a wrong `oov3` or RPC), before any
        call to it ends in an undecodable empty answer."""
        if not self.w3.eth.get_code(Web3.to_checksum_address(self.oov3.address)):
            name = self.network.name
            raise ChainError(
                f"there is no contract at the OOv3 address {self.oov3.address} on {name}; point [networks.{name}] "
                "oov3 (or the RPC URL) at UMA's OptimisticOracleV3 on this chain"
            )

    def require_registry(self) -> str:
        if self.registry is None:
            raise ConfigError(
                f"no AttestationRegistry is configured for {self.network.name}; deploy one "
                f"(`attest registry deploy --network {self.network.name}`) and set [networks.{self.network.name}] "
                "registry in the config file"
            )
        return self.registry

    def standing(self, assertion: Assertion, registry: str | None = None) -> Standing:
        """The registry's view of `assertion` (`attestationOf`), with the reason when it does not count: OOv3 may
        resolve an assertion true (and return the bond) that the registry still rejects as ineligible."""
        registry = registry or self.require_registry()
        status = attestation_of(self.w3, registry, assertion.assertion_id).status
        if status == "none":
            return Standing(status, f"the registry {registry} was not this assertion's callback recipient")
        if status == "attested":
            return Standing(status, "")
        if status == "rejected" and not assertion.settlement_resolution:
            return Standing(status, "the oracle resolved it false")
        minimum = read_registry(self.w3, registry).min_liveness
        why = ineligibility(assertion.escalation_manager, assertion.assertion_time, assertion.expiration_time, minimum)
        if why is None:
            return Standing(status, "")
        if status == "rejected":
            why += " (OOv3 resolved it true and returned the bond, but the registry does not count it)"
        else:
            why += " (the registry will resolve it Rejected)"
        return Standing(status, why)

    @property
    def kb_registry(self) -> str | None:
        """The governed knowledge base's KnowledgeRegistry: the configured one, else the devnet's; None if neither."""
        chosen = self.settings.kb_registry or (self.deployment.kb_registry if self.deployment else "")
        return Web3.to_checksum_address(chosen) if chosen else None

    @property
    def kb_governor(self) -> str | None:
        """The DAO's Governor that governs `kb_registry` (through its timelock); None: an account governs it."""
        if self.settings.kb_registry:  # a registry of one's own: its DAO (if any) is configured beside it
            chosen = self.settings.kb_governor or ""
        else:
            chosen = self.settings.kb_governor or (self.deployment.governor if self.deployment else "")
        return Web3.to_checksum_address(chosen) if chosen else None

    def identifier(self, override: str | None = None) -> str:
        return override or self.settings.identifier or self.network.default_identifier

    def currency(self, override: str | None = None) -> str:
        if override is not None and not Web3.is_address(override):
            raise BondError(f"--currency {override!r} is not an address; give the token's 0x address (40 hex digits)")
        chosen = override or self.settings.currency or self.network.default_currency
        return Web3.to_checksum_address(chosen) if chosen else self.oov3.default_currency()


def connect(
    network: str | None = None,
    *,
    config: Config | None = None,
    start_devnet: bool = True,
) -> ChainContext:
    """Connect to `network` (default: the config's `[defaults] network`, else `local`)."""
    config = config or load_config()
    net = config.resolve_network(network or config.defaults.network)
    settings = config.network(net.name)
    if net.name == "local":
        return _connect_local(net, settings, start_devnet)
    url = os.environ.get(RPC_URL_ENV) or settings.resolved_rpc_url(net.name)
    if not url:
        raise ConfigError(
            f"no RPC URL for {net.name}; set [networks.{net.name}] rpc_url_env (a variable holding the URL) "
            f"in the config file, or export {RPC_URL_ENV}"
        )
    w3 = Web3(http_provider(url, RPC_TIMEOUT_S))
    w3.middleware_onion.inject(ExtraDataToPOAMiddleware, layer=0)
    try:
        chain_id = int(w3.eth.chain_id)
    except Exception as err:  # any transport failure means the same thing to the user
        raise ChainError(
            f"cannot reach the {net.name} RPC endpoint ({type(err).__name__}); check the URL and your connection"
        ) from None
    if chain_id != net.chain_id:
        raise ChainError(f"the RPC endpoint for {net.name} serves chain {chain_id}, not {net.chain_id}; fix the URL")
    assert net.oov3 is not None  # every non-local network names its OOv3
    registry = Web3.to_checksum_address(settings.registry) if settings.registry else None
    return ChainContext(net, settings, w3, OptimisticOracleV3(w3, net.oov3), registry, None, False)


def _connect_local(net: Network, settings: NetworkConfig, start: bool) -> ChainContext:
    devnet = Devnet()
    started = False
    if devnet.running_node() is None:
        if not start:
            raise ChainError("the local devnet is not running; start it with `attest devnet up`")
        _, already_up = devnet.up()
        started = not already_up
    deployment = devnet.deployment()
    if deployment is None:
        raise ChainError("the local devnet has no deployment; run `attest devnet reset` and retry")
    w3 = devnet.web3()
    return ChainContext(
        net, settings, w3, OptimisticOracleV3(w3, deployment.oov3), deployment.registry, deployment, started
    )
