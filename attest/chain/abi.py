"""Contract calls and event logs encoded and decoded with eth_abi, for the paths the disputer runs once per
assertion.

web3's `ContractFunction` re-derives the ABI entry, and the selector of every function of the contract, each
time one is built, and its `process_log` re-derives the event ABI and checksums every address through keccak
for each log; for a read or a backlog scan that is most of the CPU, and the disputer's loop thread pays it while
judging threads wait for the GIL. `Method` and `Event` do that work once per function or event; `EncodedCall` is
a transaction's target and calldata with what `Sender.prepare_many` uses from a `ContractFunction`.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any, cast

from eth_abi.abi import decode as abi_decode
from eth_abi.abi import encode as abi_encode
from eth_utils.abi import collapse_if_tuple
from hexbytes import HexBytes
from web3 import Web3
from web3.types import TxParams

from attest.chain.artifacts import shipped
from attest.errors import ChainError


@dataclass(frozen=True)
class Method:
    name: str
    inputs: tuple[str, ...]  # canonical types, tuples as "(t1,t2)"
    outputs: tuple[str, ...]
    selector: bytes

    def encode(self, *args: Any) -> bytes:
        return self.selector + abi_encode(list(self.inputs), list(args))

    def decode(self, data: bytes) -> tuple[Any, ...]:
        return tuple(abi_decode(list(self.outputs), data))

    def call(self, w3: Web3, to: str, *args: Any, block: int | str = "latest") -> tuple[Any, ...]:
        """`eth_call` at `block`; a revert raises web3's `ContractLogicError`, as a contract call does."""
        request = {"to": Web3.to_checksum_address(to), "data": HexBytes(self.encode(*args))}
        return self.decode(bytes(w3.eth.call(request, block)))  # type: ignore[arg-type]


@lru_cache(maxsize=64)
def method(artifact: str, name: str) -> Method:
    """The function `name` of a shipped artifact's ABI (it must not be overloaded)."""
    entries = [e for e in shipped(artifact).abi if e.get("type") == "function" and e.get("name") == name]
    if len(entries) != 1:
        raise ValueError(f"{artifact} has {len(entries)} functions named {name}")
    entry = entries[0]
    inputs = tuple(str(collapse_if_tuple(i)) for i in entry["inputs"])
    outputs = tuple(str(collapse_if_tuple(o)) for o in entry.get("outputs", []))
    selector = bytes(Web3.keccak(text=f"{name}({','.join(inputs)})"))[:4]
    return Method(name, inputs, outputs, selector)


@dataclass(frozen=True)
class Event:
    topic: bytes
    indexed: tuple[tuple[str, str], ...]  # (name, type) in topic order
    data: tuple[tuple[str, str], ...]  # (name, type) in data order

    def decode(self, log: Any) -> dict[str, Any]:
        """The log with its decoded `args` (addresses checksummed), the shape web3's `process_log` gives."""
        topics = log["topics"][1:]
        if len(topics) != len(self.indexed):
            raise ChainError(f"a log at block {log['blockNumber']} does not match its event's indexed fields")
        args: dict[str, Any] = {
            name: abi_decode([kind], bytes(topic))[0] for (name, kind), topic in zip(self.indexed, topics, strict=True)
        }
        values = abi_decode([kind for _name, kind in self.data], bytes(log["data"]))
        args.update((name, value) for (name, _kind), value in zip(self.data, values, strict=True))
        for name, kind in (*self.indexed, *self.data):
            if kind == "address":
                args[name] = checksum(args[name])
        return {**log, "args": args}


@lru_cache(maxsize=64)
def event(artifact: str, name: str) -> Event:
    """The event `name` of a shipped artifact's ABI."""
    abi = next(e for e in shipped(artifact).abi if e.get("type") == "event" and e.get("name") == name)
    inputs = [(str(i["name"]), str(collapse_if_tuple(i))) for i in abi["inputs"]]
    flags = [bool(i["indexed"]) for i in abi["inputs"]]
    signature = f"{name}({','.join(kind for _name, kind in inputs)})"
    return Event(
        topic=bytes(Web3.keccak(text=signature)),
        indexed=tuple(x for x, flag in zip(inputs, flags, strict=True) if flag),
        data=tuple(x for x, flag in zip(inputs, flags, strict=True) if not flag),
    )


@lru_cache(maxsize=4096)
def checksum(address: str) -> str:
    # The same few addresses (asserters, the registry, the currency, the zero address) recur in every log.
    return str(Web3.to_checksum_address(address))


@dataclass(frozen=True)
class EncodedCall:
    """A transaction to `to` with `data`, for `Sender.prepare_many`: `estimate_gas` (and `build_transaction`
    without a gas limit) is the static call, a revert raising `ContractLogicError`; `contract_abi` decodes a
    custom error."""

    w3: Web3
    to: str
    data: bytes
    contract_abi: list[dict[str, Any]]

    def build_transaction(self, params: TxParams) -> TxParams:
        tx: dict[str, Any] = {**params, "to": Web3.to_checksum_address(self.to), "data": HexBytes(self.data)}
        tx.setdefault("value", 0)
        if not {"gasPrice", "maxFeePerGas"} & tx.keys():
            tx["gasPrice"] = self.w3.eth.generate_gas_price(cast(TxParams, tx)) or self.w3.eth.gas_price
        if "gas" not in tx:
            tx["gas"] = self.w3.eth.estimate_gas(cast(TxParams, tx))
        return cast(TxParams, tx)

    def estimate_gas(self, params: TxParams) -> int:
        tx = {**params, "to": Web3.to_checksum_address(self.to), "data": HexBytes(self.data)}
        return int(self.w3.eth.estimate_gas(cast(TxParams, tx)))

    def static_call(self, sender: str) -> bytes:
        """`eth_call` from `sender`; a revert raises `ContractLogicError`."""
        tx = {
            "from": Web3.to_checksum_address(sender),
            "to": Web3.to_checksum_address(self.to),
            "data": HexBytes(self.data),
        }
        return bytes(self.w3.eth.call(cast(TxParams, tx)))
