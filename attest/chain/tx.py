"""Sending transactions: every one is checked with a static call and a balance check before it is signed.

Keys stay in memory as eth-account `LocalAccount`s and are never printed; nodes never hold them unlocked.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from eth_abi.abi import decode as abi_decode
from eth_account.signers.local import LocalAccount
from eth_typing import ChecksumAddress
from hexbytes import HexBytes
from web3 import Web3
from web3.contract import Contract
from web3.contract.contract import ContractConstructor, ContractFunction
from web3.exceptions import ContractLogicError, TransactionNotFound, Web3RPCError
from web3.types import TxReceipt

from attest.chain.artifacts import Artifact
from attest.errors import ChainError, TransactionRejected

RECEIPT_TIMEOUT_S = 120.0


@dataclass(frozen=True)
class SignedTx:
    """A signed transaction not yet known to be mined: what a ledger records before sending."""

    action: str
    nonce: int
    tx_hash: str  # 0x-hex
    raw: bytes


def revert_reason(err: ContractLogicError, abi: list[dict[str, Any]] | None = None) -> str:
    """The revert string, or a custom error decoded against the contract's ABI (`NotOracle(0xabc…)`)."""
    data = err.data if isinstance(err.data, str) else None
    if data and data.startswith("0x") and len(data) >= 10:
        for entry in abi or ():
            if entry.get("type") != "error":
                continue
            types = [i["type"] for i in entry.get("inputs", [])]
            signature = f"{entry['name']}({','.join(types)})"
            if Web3.keccak(text=signature)[:4].hex() == data[2:10]:
                args = abi_decode(types, bytes.fromhex(data[10:]))
                shown = (Web3.to_checksum_address(a) if t == "address" else a for t, a in zip(types, args, strict=True))
                return f"{entry['name']}({', '.join(str(a) for a in shown)})"
    message = getattr(err, "message", None) or str(err)
    return message.removeprefix("execution reverted: ").removeprefix("execution reverted") or "reverted"


class Sender:
    """Signs with one local account and sends to one node; raises `TransactionRejected` instead of reverting."""

    def __init__(self, w3: Web3, account: LocalAccount) -> None:
        self.w3 = w3
        self.account = account

    @property
    def address(self) -> ChecksumAddress:
        return self.account.address

    def transact(self, call: ContractFunction | ContractConstructor, action: str) -> TxReceipt:
        """Static-call `call`, check the gas money, sign, send and wait for the receipt."""
        signed = self.prepare(call, action)
        self.broadcast(signed)
        return self.confirm(signed)

    def prepare(
        self, call: ContractFunction | ContractConstructor, action: str, *, nonce: int | None = None
    ) -> SignedTx:
        """Static-call, check gas money and sign, without sending: the caller can record the exact bytes first."""
        try:
            # Estimating gas executes the call against the latest state: this is the static call.
            tx: dict[str, Any] = dict(call.build_transaction({"from": self.address}))
        except ContractLogicError as err:
            raise TransactionRejected(action, revert_reason(err, getattr(call, "contract_abi", None))) from None
        tx["nonce"] = self.w3.eth.get_transaction_count(self.address, "pending") if nonce is None else nonce
        tx["chainId"] = self.chain_id
        self._check_gas_money(tx, action)
        signed = self.account.sign_transaction(tx)
        return SignedTx(action, int(tx["nonce"]), signed.hash.to_0x_hex(), bytes(signed.raw_transaction))

    def broadcast(self, signed: SignedTx) -> None:
        """Send signed bytes. Sending the same bytes twice is harmless: one nonce, one hash, one effect."""
        try:
            self.w3.eth.send_raw_transaction(signed.raw)
        except Web3RPCError as err:
            text = str(err).lower()
            # The node already has it (our earlier send got through), or its nonce is spent: `confirm` or
            # `reconcile` decides from the receipt what happened; neither is a reason to sign anything new.
            if "already known" in text or "nonce too low" in text or "already imported" in text:
                return
            raise ChainError(f"{signed.action}: the node refused transaction {signed.tx_hash}: {err}") from None

    def confirm(self, signed: SignedTx) -> TxReceipt:
        receipt = self.wait(signed.tx_hash, signed.action)
        if receipt["status"] != 1:
            raise ChainError(f"{signed.action}: transaction {signed.tx_hash} reverted on chain")
        return receipt

    def reconcile(self, signed: SignedTx) -> TxReceipt | None:
        """After a restart: the receipt if the transaction was mined; None if its nonce went to another one
        (it can never be mined now); otherwise rebroadcast the same bytes and wait."""
        receipt = self.receipt(signed.tx_hash)
        if receipt is not None:
            return receipt
        if self.w3.eth.get_transaction_count(self.address, "latest") > signed.nonce:
            # Mined nonce, but not our hash (checked again: it may have been mined in between).
            return self.receipt(signed.tx_hash)
        self.broadcast(signed)
        return self.wait(signed.tx_hash, signed.action)

    def receipt(self, tx_hash: str) -> TxReceipt | None:
        try:
            return self.w3.eth.get_transaction_receipt(HexBytes(tx_hash))
        except TransactionNotFound:
            return None

    @cached_property
    def chain_id(self) -> int:
        return int(self.w3.eth.chain_id)

    def wait(self, tx_hash: str, action: str) -> TxReceipt:
        """Poll quickly at first (an automining devnet answers at once), then back off to spare the RPC."""
        delay, deadline = 0.005, time.monotonic() + RECEIPT_TIMEOUT_S
        while True:
            try:
                return self.w3.eth.get_transaction_receipt(HexBytes(tx_hash))
            except TransactionNotFound:
                pass
            if time.monotonic() > deadline:
                raise ChainError(
                    f"{action}: transaction {tx_hash} was sent but not mined within "
                    f"{RECEIPT_TIMEOUT_S:.0f}s; check it before sending again"
                )
            time.sleep(delay)
            delay = min(delay * 2, 1.0)

    def deploy(self, artifact: Artifact, *args: Any) -> Contract:
        factory = self.w3.eth.contract(abi=artifact.abi, bytecode=artifact.bytecode)
        receipt = self.transact(factory.constructor(*args), f"deploy {artifact.name}")
        address = receipt["contractAddress"]
        if address is None:
            raise ChainError(f"deploy {artifact.name}: the receipt names no contract address")
        return self.w3.eth.contract(address=address, abi=artifact.abi)

    def _check_gas_money(self, tx: dict[str, Any], action: str) -> None:
        price = tx.get("maxFeePerGas") or tx.get("gasPrice") or 0
        needed = int(tx["gas"]) * int(price) + int(tx.get("value", 0))
        balance = self.w3.eth.get_balance(self.address)
        if balance < needed:
            raise ChainError(
                f"{action}: account {self.address} has {Web3.from_wei(balance, 'ether')} of the native token "
                f"but needs {Web3.from_wei(needed, 'ether')} for gas; fund it and retry"
            )
