"""A typed client for UMA's OptimisticOracleV3 and the UMA contracts it consults.

Writes are returned as unsent calls (`assert_truth_call`, `settle_call`, ...): the outboxes sign each once and
send it. Tests send them directly through tests/support/oov3.py.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from eth_typing import ChecksumAddress
from hexbytes import HexBytes
from web3 import Web3
from web3.contract import Contract
from web3.contract.contract import ContractFunction
from web3.logs import DISCARD
from web3.types import TxReceipt

from attest.chain.abi import Event, checksum, event, method
from attest.chain.artifacts import shipped
from attest.chain.rpc import call_read, prefetch
from attest.errors import ChainError

ZERO_ADDRESS = "0x0000000000000000000000000000000000000000"
FINDER_CACHE_S = 300.0
NUMERICAL_TRUE = 10**18  # the only oracle price that resolves an assertion as true


def to_bytes32(text: str) -> bytes:
    """An UMA identifier such as ASSERT_TRUTH2 as the right-padded bytes32 the contracts use."""
    raw = text.encode("ascii")
    if len(raw) > 32:
        raise ValueError(f"identifier {text!r} is longer than 32 bytes")
    return raw.ljust(32, b"\0")


@dataclass(frozen=True)
class Assertion:
    """`OptimisticOracleV3.getAssertion` with the escalation-manager settings flattened."""

    assertion_id: bytes
    asserter: str
    asserting_caller: str
    escalation_manager: str
    assertion_time: int
    settled: bool
    currency: str
    expiration_time: int
    settlement_resolution: bool
    domain_id: bytes
    identifier: bytes
    bond: int
    callback_recipient: str
    disputer: str

    @property
    def exists(self) -> bool:
        return self.asserter != ZERO_ADDRESS

    @property
    def disputed(self) -> bool:
        return self.disputer != ZERO_ADDRESS


@dataclass(frozen=True)
class AssertionMade:
    assertion_id: bytes
    domain_id: bytes
    claim: bytes
    asserter: str
    callback_recipient: str
    escalation_manager: str
    caller: str
    expiration_time: int
    currency: str
    bond: int
    identifier: bytes
    tx_hash: bytes
    log_index: int
    block_number: int
    block_hash: bytes | None = None  # of the block the log was read from; None when not read from a log


@dataclass(frozen=True)
class AssertionDisputed:
    assertion_id: bytes
    caller: str
    disputer: str
    tx_hash: bytes
    log_index: int
    block_number: int
    block_hash: bytes | None = None  # of the block the log was read from; None when not read from a log


@dataclass(frozen=True)
class AssertionSettled:
    assertion_id: bytes
    bond_recipient: str
    disputed: bool
    settlement_resolution: bool
    settle_caller: str
    tx_hash: bytes
    log_index: int
    block_number: int
    block_hash: bytes | None = None  # of the block the log was read from; None when not read from a log


OracleEvent = AssertionMade | AssertionDisputed | AssertionSettled


OOV3 = "OptimisticOracleV3"
_LOOKUPS = ("IdentifierWhitelist", "CollateralWhitelist", "Store")  # what an assertion's checks look up


class OptimisticOracleV3:
    def __init__(self, w3: Web3, address: str) -> None:
        self.w3 = w3
        self.contract: Contract = w3.eth.contract(
            address=Web3.to_checksum_address(address), abi=shipped("OptimisticOracleV3").abi
        )
        self._lookups: dict[str, tuple[float, Contract]] = {}

    @property
    def address(self) -> str:
        return str(self.contract.address)

    # -- reads -----------------------------------------------------------------------------------------
    def get_assertion(self, assertion_id: bytes) -> Assertion:
        ((em, asserter, time, settled, currency, expiration, resolution, domain, ident, bond, cb, disputer),) = method(
            "OptimisticOracleV3", "getAssertion"
        ).call(self.w3, self.address, bytes(assertion_id))
        return Assertion(
            assertion_id=bytes(assertion_id),
            asserter=checksum(asserter),
            asserting_caller=checksum(em[3]),
            escalation_manager=checksum(em[4]),
            assertion_time=int(time),
            settled=bool(settled),
            currency=checksum(currency),
            expiration_time=int(expiration),
            settlement_resolution=bool(resolution),
            domain_id=bytes(domain),
            identifier=bytes(ident),
            bond=int(bond),
            callback_recipient=checksum(cb),
            disputer=checksum(disputer),
        )

    def _read(self, name: str, *args: Any) -> Any:
        """One value from OOv3 (through the ABI codec alone: web3's contract machinery costs more than the call)."""
        return method("OptimisticOracleV3", name).call(self.w3, self.address, *args)[0]

    def minimum_bond(self, currency: str) -> int:
        return int(self._read("getMinimumBond", Web3.to_checksum_address(currency)))

    def default_currency(self) -> str:
        return checksum(self._read("defaultCurrency"))

    def finder_lookup(self, name: str, abi_name: str) -> Contract:
        # UMA governance can re-point the Finder, so a looked-up address is trusted for a while, not forever
        # (a daemon runs for months); within an `ask` this saves two calls and an ABI load per lookup.
        cached = self._lookups.get(name)
        if cached is not None and time.monotonic() - cached[0] < FINDER_CACHE_S:
            return cached[1]
        contract = self.w3.eth.contract(address=self._lookup(name), abi=shipped(abi_name).abi)
        self._lookups[name] = (time.monotonic(), contract)
        return contract

    def _lookup(self, name: str) -> ChecksumAddress:
        """The Finder's address for `name` (the read cache keeps it a while: governance may re-point it)."""
        (address,) = method("Finder", "getImplementationAddress").call(self.w3, self._finder(), to_bytes32(name))
        return Web3.to_checksum_address(address)

    def _finder(self) -> str:
        return checksum(self._read("finder"))

    def prefetch(self, identifier: str, currency: str | None, extra: Sequence[tuple[str, Any]] = ()) -> None:
        """Read what an assertion's checks ask (OOv3's defaults and caches, the Finder's lookups, UMA's whitelists
        and final fee for this identifier and currency, the currency's decimals and symbol) and the `extra`
        requests in three JSON-RPC batches, each a round trip, instead of one round trip each. The default currency
        when `currency` is None."""
        me, ident = self.address, to_bytes32(identifier)

        def read(to: str, artifact: str, name: str, *args: Any) -> tuple[str, Any]:
            return call_read(to, "0x" + method(artifact, name).encode(*args).hex())

        own = [read(me, OOV3, f) for f in ("finder", "defaultCurrency", "defaultLiveness")]
        code = ("eth_getCode", [me, "latest"])
        prefetch(self.w3, [code, *own, read(me, OOV3, "cachedIdentifiers", ident), *extra])
        if not self.w3.eth.get_code(self.contract.address):
            return  # no OOv3 there: the checks say so in their own words
        currency = Web3.to_checksum_address(currency or self.default_currency())
        finder = self._finder()
        lookups = [read(finder, "Finder", "getImplementationAddress", to_bytes32(n)) for n in _LOOKUPS]
        mine = [read(me, OOV3, f, currency) for f in ("getMinimumBond", "cachedCurrencies")]
        token = [read(currency, "TestnetERC20", f) for f in ("decimals", "symbol")]
        prefetch(self.w3, [*lookups, *mine, *token])
        identifiers, collateral, store = (self._lookup(n) for n in _LOOKUPS)
        prefetch(self.w3, [
            read(identifiers, "IdentifierWhitelist", "isIdentifierSupported", ident),
            read(collateral, "AddressWhitelist", "isOnWhitelist", currency),
            read(store, "Store", "computeFinalFee", currency),
        ])  # fmt: skip

    def is_identifier_supported(self, identifier: str) -> bool:
        """Asks UMA's IdentifierWhitelist itself, not the oracle's cache (which may be stale)."""
        supported = method("IdentifierWhitelist", "isIdentifierSupported")
        return bool(supported.call(self.w3, self._lookup("IdentifierWhitelist"), to_bytes32(identifier))[0])

    def is_currency_whitelisted(self, currency: str) -> bool:
        listed = method("AddressWhitelist", "isOnWhitelist")
        return bool(listed.call(self.w3, self._lookup("CollateralWhitelist"), Web3.to_checksum_address(currency))[0])

    def cache_is_stale(self, identifier: str, currency: str) -> bool:
        """True when OOv3's cache of UMA's whitelists and final fee is out of date: `syncUmaParams` fixes it.

        An entry that is not cached yet is not stale: `assertTruth` looks it up and caches it itself.
        """
        currency = Web3.to_checksum_address(currency)
        cached_identifier = self._read("cachedIdentifiers", to_bytes32(identifier))
        if cached_identifier and not self.is_identifier_supported(identifier):
            return True
        cached_whitelisted, cached_fee = method("OptimisticOracleV3", "cachedCurrencies").call(
            self.w3, self.address, currency
        )
        if not cached_whitelisted:
            return False
        if not self.is_currency_whitelisted(currency):
            return True
        return int(cached_fee) != self.final_fee(currency)

    def final_fee(self, currency: str) -> int:
        ((fee,),) = method("Store", "computeFinalFee").call(self.w3, self._lookup("Store"), checksum(currency))
        return int(fee)

    # -- writes ----------------------------------------------------------------------------------------
    def assert_truth_call(
        self,
        *,
        claim: bytes,
        asserter: str,
        callback_recipient: str,
        liveness: int,
        currency: str,
        bond: int,
        identifier: str,
        domain_id: bytes,
        escalation_manager: str = ZERO_ADDRESS,
    ) -> ContractFunction:
        """The assertTruth call, unsent: the bond is pulled from whoever sends it, who must have approved it."""
        return self.contract.functions.assertTruth(
            claim,
            Web3.to_checksum_address(asserter),
            Web3.to_checksum_address(callback_recipient),
            Web3.to_checksum_address(escalation_manager),
            liveness,
            Web3.to_checksum_address(currency),
            bond,
            to_bytes32(identifier),
            domain_id,
        )

    def made_in(self, receipt: TxReceipt) -> AssertionMade:
        made = self.assertions_made(receipt)
        if len(made) != 1:
            raise ChainError(f"assertTruth receipt holds {len(made)} AssertionMade events")
        return made[0]

    def default_liveness(self) -> int:
        return int(self._read("defaultLiveness"))

    def settle_call(self, assertion_id: bytes) -> ContractFunction:
        return self.contract.functions.settleAssertion(assertion_id)

    def settled_in(self, receipt: TxReceipt) -> list[AssertionSettled]:
        events = self.contract.events.AssertionSettled().process_receipt(receipt, errors=DISCARD)
        return [_assertion_settled(e) for e in events]

    def sync_uma_params_call(self, identifier: str, currency: str) -> ContractFunction:
        return self.contract.functions.syncUmaParams(to_bytes32(identifier), Web3.to_checksum_address(currency))

    # -- events ----------------------------------------------------------------------------------------
    def assertions_made(self, receipt: TxReceipt) -> list[AssertionMade]:
        events = self.contract.events.AssertionMade().process_receipt(receipt, errors=DISCARD)
        return [_assertion_made(e) for e in events]

    def events_between(self, from_block: int, to_block: int) -> list[OracleEvent]:
        """AssertionMade, AssertionDisputed and AssertionSettled logs in one `eth_getLogs`, in chain order."""
        kinds: dict[bytes, tuple[Event, Callable[[Any], OracleEvent]]] = {
            d.topic: (d, convert)
            for d, convert in (
                (event("OptimisticOracleV3", "AssertionMade"), _assertion_made),
                (event("OptimisticOracleV3", "AssertionDisputed"), _assertion_disputed),
                (event("OptimisticOracleV3", "AssertionSettled"), _assertion_settled),
            )
        }
        logs = self.w3.eth.get_logs(
            {
                "address": self.contract.address,
                "fromBlock": from_block,
                "toBlock": to_block,
                "topics": [[HexBytes(topic).to_0x_hex() for topic in kinds]],
            }
        )
        decoded: list[OracleEvent] = []
        for log in sorted(logs, key=lambda entry: (entry["blockNumber"], entry["logIndex"])):
            decoder, convert = kinds[bytes(log["topics"][0])]
            decoded.append(convert(decoder.decode(log)))
        return decoded


def _position(event: Any) -> dict[str, Any]:
    return {
        "tx_hash": bytes(HexBytes(event["transactionHash"])),
        "log_index": int(event["logIndex"]),
        "block_number": int(event["blockNumber"]),
        "block_hash": bytes(HexBytes(event["blockHash"])) if event.get("blockHash") else None,
    }


def _assertion_disputed(event: Any) -> AssertionDisputed:
    a = event["args"]
    return AssertionDisputed(
        assertion_id=bytes(a["assertionId"]), caller=a["caller"], disputer=a["disputer"], **_position(event)
    )


def _assertion_settled(event: Any) -> AssertionSettled:
    a = event["args"]
    return AssertionSettled(
        assertion_id=bytes(a["assertionId"]),
        bond_recipient=a["bondRecipient"],
        disputed=bool(a["disputed"]),
        settlement_resolution=bool(a["settlementResolution"]),
        settle_caller=a["settleCaller"],
        **_position(event),
    )


def _assertion_made(event: Any) -> AssertionMade:
    a = event["args"]
    return AssertionMade(
        assertion_id=bytes(a["assertionId"]),
        domain_id=bytes(a["domainId"]),
        claim=bytes(a["claim"]),
        asserter=a["asserter"],
        callback_recipient=a["callbackRecipient"],
        escalation_manager=a["escalationManager"],
        caller=a["caller"],
        expiration_time=int(a["expirationTime"]),
        currency=a["currency"],
        bond=int(a["bond"]),
        identifier=bytes(a["identifier"]),
        **_position(event),
    )
