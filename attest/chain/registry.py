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


# AttestationRegistry.Status, by its index.
STATUSES = ("none", "pending", "disputed", "attested", "rejected")


@dataclass(frozen=True)
class Standing:
    """`attestationOf(assertionId)`: what the registry says of one assertion."""

    status: str  # one of STATUSES; "none" when the assertion was not made with this registry
    digest: bytes
    asserter: str
    expiration: int


def attestation_of(w3: Web3, registry: str, assertion_id: bytes) -> Standing:
    ((digest, asserter, status, expiration),) = method(ARTIFACT, "attestationOf").call(w3, registry, assertion_id)
    return Standing(STATUSES[int(status)], bytes(digest), Web3.to_checksum_address(asserter), int(expiration))


def is_attested(w3: Web3, registry: str, digest: bytes) -> bool:
    (attested,) = method(ARTIFACT, "isAttested").call(w3, registry, digest)
    return bool(attested)


def ineligibility(escalation_manager: str, assertion_time: int, expiration_time: int, min_liveness: int) -> str | None:
    """Why the registry would not count an assertion even if it resolved true (the contract's `_ineligibility`,
    in words a user can act on); None when it would."""
    if int(escalation_manager, 16) != 0:
        return f"it names the escalation manager {escalation_manager}"
    liveness = expiration_time - assertion_time
    if liveness < min_liveness:
        return f"its liveness of {liveness} s is below the registry's minimum of {min_liveness} s"
    return None


def registry_reads(address: str) -> list[tuple[str, Any]]:
    """The requests `read_registry` makes, for `attest.chain.rpc.prefetch`."""
    calls = [call_read(address, "0x" + method(ARTIFACT, name).selector.hex()) for name in ("oracle", "minLiveness")]
    return [("eth_getCode", [Web3.to_checksum_address(address), "latest"]), *calls]


def deploy_call(w3: Web3, oov3: str, min_liveness: int) -> ContractConstructor:
    artifact = shipped(ARTIFACT)
    factory = w3.eth.contract(abi=artifact.abi, bytecode=artifact.bytecode)
    return factory.constructor(Web3.to_checksum_address(oov3), min_liveness)
