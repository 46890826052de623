"""The network registry: pure lookups and Oracle UI links."""

from __future__ import annotations

import pytest
from web3 import Web3

from attest.errors import AttestError, UnknownNetwork
from attest.networks import ASSERT_TRUTH2, NETWORKS, OracleKind, by_chain_id, get_network


def test_every_network_has_a_checksummed_oracle_and_a_unique_name_and_chain_id() -> None:
    assert len({n.name for n in NETWORKS}) == len({n.chain_id for n in NETWORKS}) == len(NETWORKS)
    for network in NETWORKS:
        if network.name != "local":
            assert network.oov3 is not None and Web3.is_checksum_address(network.oov3), network.name
        assert network.default_identifier == ASSERT_TRUTH2


@pytest.mark.parametrize("key", ["sepolia", "SEPOLIA", " sepolia ", "11155111", 11155111])
def test_lookup_by_name_or_chain_id(key: str | int) -> None:
    network = get_network(key)
    assert (network.name, network.oracle_kind) == ("sepolia", OracleKind.MOCK)


def test_testnets_resolve_through_the_mock_oracle_and_mainnets_through_the_dvm() -> None:
    assert {n.name for n in NETWORKS if n.oracle_kind is OracleKind.MOCK} == {
        "local",
        "sepolia",
        "amoy",
        "base-sepolia",
    }
    assert get_network("ethereum").oracle_kind is OracleKind.DVM
    assert {get_network(n).oracle_kind for n in ("polygon", "base", "arbitrum", "optimism")} == {OracleKind.SPOKE}


def test_oracle_ui_deep_link_matches_the_ui_query_format() -> None:
    link = get_network("sepolia").oracle_ui_link("0xabc", 3)
    assert link == (
        "https://testnet.oracle.uma.xyz/?transactionHash=0xabc&eventIndex=3&chainId=11155111"
        "&oracleType=Optimistic+Oracle+V3"
    )
    assert get_network("polygon").oracle_ui_link("0xdef", 0).startswith("https://oracle.uma.xyz/?")
    assert get_network("amoy").ui_base == "https://testnet.oracle.uma.xyz"


@pytest.mark.parametrize("name", ["local", "base-sepolia"])
def test_chains_without_the_ui_say_so_instead_of_a_dead_link(name: str) -> None:
    network = get_network(name)
    assert network.oracle_ui_link("0xabc", 0) is None
    assert "does not list" in network.ui_note()


@pytest.mark.parametrize("key", ["424242", "goerli", ""])
def test_unknown_networks_raise_one_error_type_naming_the_known_ones(key: str) -> None:
    with pytest.raises(UnknownNetwork) as err:
        get_network(key)
    assert isinstance(err.value, AttestError) and isinstance(err.value, LookupError)
    assert "sepolia (11155111)" in str(err.value)


def test_by_chain_id() -> None:
    assert by_chain_id(8453).name == "base"
    with pytest.raises(UnknownNetwork, match="chain id 5 is not in the network registry"):
        by_chain_id(5)
