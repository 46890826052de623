"""The networks llm-attest knows: where UMA's OptimisticOracleV3 lives and how disputes resolve there.

Pure data; no I/O. Addresses are from UMA's deployments (../shared/docs/design.md). The default bond currency
is read from the oracle's `defaultCurrency()` on chain rather than copied here, so it cannot go stale.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import StrEnum

from attest.errors import UnknownNetwork


class OracleKind(StrEnum):
    """Who answers a disputed assertion's price request."""

    MOCK = "mock"  # MockOracleAncillary: anyone pushes the price (local devnet and UMA testnets)
    DVM = "dvm"  # VotingV2 on this chain: stakers commit and reveal votes
    SPOKE = "spoke"  # OracleSpoke: the request is bridged to and voted on Ethereum's DVM


ASSERT_TRUTH2 = "ASSERT_TRUTH2"
LOCAL_CHAIN_ID = 31337
DEVNET_PORT = 8545  # the local devnet's default RPC port (anvil's own default)

# The shortest liveness our registry counts, by default, when `attest registry deploy` deploys one. An assertion
# is worth something only if a watcher can see it, judge it and get a dispute mined before it expires, and the
# disputer never disputes one expiring within its 600 s safety margin. Mainnets and L2s: one hour (congestion,
# confirmations, a human glance). Testnets: 15 minutes, over the safety margin yet short enough to rehearse in
# one sitting. The devnet: 60 s, so tests and demos settle quickly.
MAINNET_MIN_LIVENESS = 3600
TESTNET_MIN_LIVENESS = 900
DEVNET_MIN_LIVENESS = 60


@dataclass(frozen=True)
class Network:
    name: str
    chain_id: int
    oov3: str | None  # None for `local`: the devnet's deployment file says where it is
    oracle_kind: OracleKind
    ui_base: str | None  # UMA Oracle UI for this chain, or None where the UI does not cover it
    default_identifier: str = ASSERT_TRUTH2
    default_currency: str | None = None  # None: use the oracle's defaultCurrency()
    default_min_liveness: int = MAINNET_MIN_LIVENESS  # for a registry deployed here (see above)
    native_symbol: str = "ETH"  # what gas is paid in

    def with_overrides(self, *, oov3: str | None = None, ui_base: str | None = None) -> Network:
        """This network with a configured OOv3 or Oracle UI base: a new UMA deployment needs no release."""
        return replace(self, oov3=oov3 or self.oov3, ui_base=ui_base or self.ui_base)

    def oracle_ui_link(self, tx_hash: str, log_index: int) -> str | None:
        """Deep link to an assertion in the UMA Oracle UI, or None where the UI does not list this chain."""
        if self.ui_base is None:
            return None
        return (
            f"{self.ui_base}/?transactionHash={tx_hash}&eventIndex={log_index}"
            f"&chainId={self.chain_id}&oracleType=Optimistic+Oracle+V3"
        )

    def ui_note(self) -> str:
        return self.ui_base or f"the UMA Oracle UI does not list {self.name} (chain {self.chain_id})"


_MAINNET_UI = "https://oracle.uma.xyz"
_TESTNET_UI = "https://testnet.oracle.uma.xyz"

NETWORKS: tuple[Network, ...] = (
    Network("local", LOCAL_CHAIN_ID, None, OracleKind.MOCK, None, default_min_liveness=DEVNET_MIN_LIVENESS),
    Network("ethereum", 1, "0xfb55F43fB9F48F63f9269DB7Dde3BbBe1ebDC0dE", OracleKind.DVM, _MAINNET_UI),
    Network(
        "sepolia",
        11155111,
        "0xFd9e2642a170aDD10F53Ee14a93FcF2F31924944",
        OracleKind.MOCK,
        _TESTNET_UI,
        default_min_liveness=TESTNET_MIN_LIVENESS,
    ),
    Network(
        "polygon", 137, "0x5953f2538F613E05bAED8A5AeFa8e6622467AD3D", OracleKind.SPOKE, _MAINNET_UI, native_symbol="POL"
    ),
    Network(
        "amoy",
        80002,
        "0xd8866E76441df243fc98B892362Fc6264dC3ca80",
        OracleKind.MOCK,
        _TESTNET_UI,
        default_min_liveness=TESTNET_MIN_LIVENESS,
        native_symbol="POL",
    ),
    Network("base", 8453, "0x2aBf1Bd76655de80eDB3086114315Eec75AF500c", OracleKind.SPOKE, _MAINNET_UI),
    Network(
        "base-sepolia",
        84532,
        "0x0F7fC5E6482f096380db6158f978167b57388deE",
        OracleKind.MOCK,
        None,
        default_min_liveness=TESTNET_MIN_LIVENESS,
    ),
    Network("arbitrum", 42161, "0xa6147867264374F324524E30C02C331cF28aa879", OracleKind.SPOKE, _MAINNET_UI),
    Network("optimism", 10, "0x072819Bb43B50E7A251c64411e7aA362ce82803B", OracleKind.SPOKE, _MAINNET_UI),
)

_BY_NAME = {n.name: n for n in NETWORKS}
_BY_CHAIN_ID = {n.chain_id: n for n in NETWORKS}


def _known() -> str:
    return ", ".join(f"{n.name} ({n.chain_id})" for n in NETWORKS)


def by_chain_id(chain_id: int) -> Network:
    try:
        return _BY_CHAIN_ID[chain_id]
    except KeyError:
        raise UnknownNetwork(f"chain id {chain_id} is not in the network registry; use one of: {_known()}") from None


def get_network(name_or_chain_id: str | int) -> Network:
    """Look a network up by name (`sepolia`) or chain id (`11155111`)."""
    key = str(name_or_chain_id).strip().lower()
    if key.isdigit():
        return by_chain_id(int(key))
    try:
        return _BY_NAME[key]
    except KeyError:
        raise UnknownNetwork(f"unknown network {name_or_chain_id!r}; use one of: {_known()}") from None
