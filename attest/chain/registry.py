"""Our AttestationRegistry on chain: reading what a deployed one enforces, and building the deployment."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from eth_abi.exceptions import DecodingError
from web3 import Web3
from web3.contract.contract import ContractConstructor
from web3.exceptions import BadFunctionCallOutput, ContractLogicError

from attest.chain.abi import method
from attest.chain.artifacts import shipped
from attest.chain.rpc import call_read
from attest.errors import RegistryError

ARTIFACT = "AttestationRegistry"


@dataclass(frozen=True)
class RegistryInfo:
    address: str
    oracle: str  # the OOv3 whose callbacks it accepts
    min_liveness: int  # seconds; an assertion with less resolves Rejected


def read_registry(w3: Web3, address: str) -> RegistryInfo:
    """What the registry at `address` enforces; `RegistryError` when no AttestationRegistry answers there."""
    address = Web3.to_checksum_address(address)
    if not w3.eth.get_code(address):
        raise RegistryError(
            f"there is no contract at the registry address {address}; fix [networks.*] registry in the config file "
            "or deploy one (`attest registry deploy`)"
        )
    try:
        (oracle,) = method(ARTIFACT, "oracle").call(w3, address)
        (min_liveness,) = method(ARTIFACT, "minLiveness").call(w3, address)
    except (BadFunctionCallOutput, ContractLogicError, DecodingError, ValueError):
        raise RegistryError(
            f"the contract at {address} is not an AttestationRegistry; fix [networks.*] registry in the config file"
        ) from None
    return RegistryInfo(address, Web3.to_checksum_address(oracle), int(min_liveness))


def registry_reads(address: str) -> list[tuple[str, Any]]:
    """The requests `read_registry` makes, for `attest.chain.rpc.prefetch`."""
    calls = [call_read(address, "0x" + method(ARTIFACT, name).selector.hex()) for name in ("oracle", "minLiveness")]
    return [("eth_getCode", [Web3.to_checksum_address(address), "latest"]), *calls]


def deploy_call(w3: Web3, oov3: str, min_liveness: int) -> ContractConstructor:
    artifact = shipped(ARTIFACT)
    factory = w3.eth.contract(abi=artifact.abi, bytecode=artifact.bytecode)
    return factory.constructor(Web3.to_checksum_address(oov3), min_liveness)
