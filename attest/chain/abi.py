"""Contract calls encoded and decoded with eth_abi, for the paths the disputer runs once per assertion.

web3's `ContractFunction` re-derives the ABI entry, and the selector of every function of the contract, each
time one is built; for a read that is most of its CPU, and the disputer's loop thread pays it while judging
threads wait for the GIL. `Method` does that work once per function; `EncodedCall` is a transaction's target
and calldata with the two things `Sender.prepare_many` uses from a `ContractFunction`.
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

    def call(self, w3: Web3, to: str, *args: Any) -> tuple[Any, ...]:
        """`eth_call` at the latest block; a revert raises web3's `ContractLogicError`, as a contract call does."""
        return self.decode(
            bytes(w3.eth.call({"to": Web3.to_checksum_address(to), "data": HexBytes(self.encode(*args))}))
        )


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
class EncodedCall:
    """A transaction to `to` with `data`, for `Sender.prepare_many`: `build_transaction` estimates the gas (the
    static call: a revert raises `ContractLogicError`), and `contract_abi` decodes a custom error."""

    w3: Web3
    to: str
    data: bytes
    contract_abi: list[dict[str, Any]]

    def build_transaction(self, params: TxParams) -> TxParams:
        tx: dict[str, Any] = {**params, "to": Web3.to_checksum_address(self.to), "data": HexBytes(self.data)}
        tx.setdefault("value", 0)
        if not {"gasPrice", "maxFeePerGas"} & tx.keys():
            tx["gasPrice"] = self.w3.eth.generate_gas_price(cast(TxParams, tx)) or self.w3.eth.gas_price
        tx["gas"] = self.w3.eth.estimate_gas(cast(TxParams, tx))
        return cast(TxParams, tx)
