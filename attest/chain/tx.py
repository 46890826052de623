"""Sending transactions: every one is checked with a static call and a balance check before it is signed.

Keys stay in memory as eth-account `LocalAccount`s and are never printed; nodes never hold them unlocked.
The RPC transport is attest/chain/rpc.py.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from decimal import Decimal
from functools import cached_property
from typing import Any, cast

from eth_abi.abi import decode as abi_decode
from eth_account.signers.local import LocalAccount
from eth_account.typed_transactions.typed_transaction import TypedTransaction
from eth_typing import ChecksumAddress
from hexbytes import HexBytes
from web3 import Web3
from web3.contract import Contract
from web3.contract.contract import ContractConstructor, ContractFunction
from web3.exceptions import ContractLogicError, TransactionNotFound, Web3Exception, Web3RPCError
from web3.types import BlockData, TxParams, TxReceipt

from attest.chain.abi import EncodedCall
from attest.chain.artifacts import Artifact
from attest.chain.rpc import forget_rare_reads
from attest.config import DEFAULT_GAS_MARGIN_PCT, DEFAULT_REPLACE_AFTER_S
from attest.errors import ChainError, FeeCapExceeded, NonceTaken, TransactionRejected
from attest.locks import SigningLock

RECEIPT_TIMEOUT_S = 120.0
_KNOWN_TX = ("already known", "already imported", "known transaction")
REPLACEMENT_BUMP_PCT = 10  # what geth and most nodes demand of a replacement: +10% on both tip and max fee
_NONCE_USED = ("nonce too low", "nonce is too low")


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


@dataclass(frozen=True)
class FeePolicy:
    """How one network's transactions are priced: never more than `max_fee` wei per gas (base fee and tip
    together), and signed again with the same nonce and higher fees when not mined within `replace_after_s`."""

    max_fee: int | None = None  # wei per gas; None: no cap
    replace_after_s: float = DEFAULT_REPLACE_AFTER_S
    setting: str = "max_fee_gwei"  # where the cap is configured, as refusals name it

    @classmethod
    def of(cls, network: str, max_fee_gwei: float | None, replace_after_s: float) -> FeePolicy:
        cap = None if max_fee_gwei is None else int(Decimal(str(max_fee_gwei)).scaleb(9))
        return cls(cap, replace_after_s, f"[networks.{network}] max_fee_gwei")


def gwei(wei: int) -> str:
    return format(Decimal(wei).scaleb(-9).normalize(), "f")


def fee_summary(raw: bytes) -> str:
    """The fees signed into `raw`, for a log line: "max fee 3.3 gwei, tip 1.1 gwei" (or the legacy gas price)."""
    tx = _decoded(raw)
    if "maxFeePerGas" in tx:
        return f"max fee {gwei(int(tx['maxFeePerGas']))} gwei, tip {gwei(int(tx['maxPriorityFeePerGas']))} gwei"
    return f"gas price {gwei(int(tx['gasPrice']))} gwei"


def _decoded(raw: bytes) -> dict[str, Any]:
    """The fields of signed bytes, ready to sign again (no signature, no type)."""
    if raw[:1] >= b"\xc0":  # a legacy transaction is a bare RLP list
        import rlp  # type: ignore[import-untyped]

        nonce, price, gas, to, value, data, _v, _r, _s = rlp.decode(raw)
        fields = {"nonce": nonce, "gasPrice": price, "gas": gas, "value": value}
        return {**{k: int.from_bytes(v, "big") for k, v in fields.items()}, "to": to, "data": data}
    tx = dict(TypedTransaction.from_bytes(HexBytes(raw)).as_dict())
    for signature in ("v", "r", "s", "type"):
        tx.pop(signature, None)
    return tx


def _bumped(value: int) -> int:
    return max(value + 1, -(-value * (100 + REPLACEMENT_BUMP_PCT) // 100))


@dataclass(frozen=True)
class AccountNow:
    """What the account's next transaction is priced and numbered from, read together."""

    block: BlockData  # the latest block: base fee and gas limit
    tip: int | None  # the node's suggested priority fee; None: read it when needed
    nonce: int  # the pending nonce
    balance: int


@dataclass(frozen=True)
class Quote:
    """What a transaction would cost, priced before anything is signed."""

    gas: int  # the estimate plus the sender's margin
    fee_per_gas: int  # the most paid per gas: maxFeePerGas, or the legacy gas price
    balance: int  # the sender's native-token balance

    @property
    def cost(self) -> int:
        """The most it can cost, in wei (the base fee burnt at inclusion is usually less)."""
        return self.gas * self.fee_per_gas


class Sender:
    """Signs with one local account and sends to one node; raises `TransactionRejected` instead of reverting."""

    def __init__(
        self,
        w3: Web3,
        account: LocalAccount,
        *,
        gas_margin_pct: int = DEFAULT_GAS_MARGIN_PCT,
        lock: SigningLock | None = None,
        fees: FeePolicy | None = None,
    ) -> None:
        if not 0 <= gas_margin_pct <= 300:
            raise ValueError(f"gas_margin_pct must be 0..300, not {gas_margin_pct}")
        self.w3 = w3
        self.account = account
        self.gas_margin_pct = gas_margin_pct
        self.lock = lock
        self.fees = fees or FeePolicy()

    def signing(self) -> AbstractContextManager[object]:
        """Hold the account's signing lock (when it has one) from reading the pending nonce until the signed
        bytes are recorded and sent: another process of this ATTEST_HOME then reads a nonce past them. Sending is
        inside because a nonce taken but never sent would stall every later transaction of the account."""
        return nullcontext() if self.lock is None else self.lock.held()

    @property
    def address(self) -> ChecksumAddress:
        return self.account.address

    def transact(self, call: ContractFunction | ContractConstructor | EncodedCall, action: str) -> TxReceipt:
        """Static-call `call`, check the gas money, sign, send and wait for the receipt."""
        with self.signing():
            signed = self.prepare(call, action)
            self.broadcast(signed)
        return self.confirm(signed)

    def prepare(
        self, call: ContractFunction | ContractConstructor | EncodedCall, action: str, *, nonce: int | None = None
    ) -> SignedTx:
        """Static-call, check gas money and sign, without sending: the caller can record the exact bytes first."""
        (prepared,) = self.prepare_many([(call, action)], nonce=nonce)
        if isinstance(prepared, TransactionRejected):
            raise prepared
        return prepared

    def prepare_many(
        self,
        calls: Sequence[tuple[ContractFunction | ContractConstructor | EncodedCall, str]],
        *,
        nonce: int | None = None,
    ) -> list[SignedTx | TransactionRejected]:
        """`prepare` for several transactions, signed with consecutive nonces in the order given.

        The fees, the nonce and the balance are read once for all of them: a batch of disputes costs one static
        call (the gas estimate) per transaction, not five reads. Every transaction gets `gas_margin_pct` over its
        estimate (capped at the block gas limit). A call whose static call fails is returned as its
        `TransactionRejected` and takes no nonce, so the signed ones leave no gap. Raises `ChainError` when the
        account cannot pay the gas of all the accepted ones (nothing is signed then)."""
        now = self.now()
        block_gas_limit = int(now.block["gasLimit"])
        fees = cast(TxParams, {"from": self.address, **self._fees(now.block.get("baseFeePerGas"), now.tip)})
        next_nonce = now.nonce if nonce is None else nonce
        built: list[dict[str, Any] | TransactionRejected] = []
        for call, action in calls:
            try:
                # Estimating gas executes the call against the latest state: this is the static call. Without fees,
                # so that an account short of gas money hears it from the balance check, not as a node's refusal.
                estimate = int(call.estimate_gas(cast(TxParams, {"from": self.address})))
            except ContractLogicError as err:
                built.append(TransactionRejected(action, revert_reason(err, getattr(call, "contract_abi", None))))
                forget_rare_reads(self.w3)  # what it was checked against may have changed: read it afresh
                continue
            gas = min(estimate * (100 + self.gas_margin_pct) // 100, block_gas_limit)
            tx: dict[str, Any] = dict(call.build_transaction(cast(TxParams, {**fees, "gas": gas})))
            tx["nonce"] = next_nonce
            tx["chainId"] = self.chain_id
            next_nonce += 1
            built.append(tx)
        accepted = [b for b in built if isinstance(b, dict)]
        if accepted:
            self._check_gas_money(accepted, ", ".join(sorted({action for _call, action in calls})), now.balance)
        out: list[SignedTx | TransactionRejected] = []
        for (_call, action), item in zip(calls, built, strict=True):
            if isinstance(item, TransactionRejected):
                out.append(item)
                continue
            signed = self.account.sign_transaction(item)
            out.append(SignedTx(action, int(item["nonce"]), signed.hash.to_0x_hex(), bytes(signed.raw_transaction)))
        return out

    def quote(self, call: ContractFunction | ContractConstructor, action: str) -> Quote:
        """Static-call and price `call` the way `prepare` would sign it, without signing: for a prompt that shows
        the cost first. Raises `TransactionRejected` when it would revert."""
        now = self.now()
        latest = now.block
        fees = self._fees(latest.get("baseFeePerGas"), now.tip)
        try:
            # Estimated without fees, so an account that cannot pay still learns what it would cost.
            estimate = call.estimate_gas(cast(TxParams, {"from": self.address}))
        except ContractLogicError as err:
            raise TransactionRejected(action, revert_reason(err, getattr(call, "contract_abi", None))) from None
        gas = min(int(estimate) * (100 + self.gas_margin_pct) // 100, int(latest["gasLimit"]))
        price = fees.get("maxFeePerGas") or fees.get("gasPrice") or int(self.w3.eth.gas_price)
        return Quote(gas, price, now.balance)

    def current_fees(self) -> dict[str, int]:
        """The fees a transaction signed now would carry; raises `FeeCapExceeded` (nothing signed) when the network
        asks more than the cap. For a check before any work."""
        now = self.now()
        return self._fees(now.block.get("baseFeePerGas"), now.tip)

    def now(self) -> AccountNow:
        """The latest block, the suggested tip, the pending nonce and the balance in one JSON-RPC batch (one
        round trip); one read each from a node that takes no batches or knows no tip."""
        eth = self.w3.eth
        try:
            with self.w3.batch_requests() as batch:
                batch.add(eth.get_block("latest"))
                batch.add(eth._max_priority_fee())
                batch.add(eth.get_transaction_count(self.address, "pending"))
                batch.add(eth.get_balance(self.address))
                answers: list[Any] = list(batch.execute())
            return AccountNow(cast(BlockData, answers[0]), int(answers[1]), int(answers[2]), int(answers[3]))
        except (Web3Exception, ValueError, TypeError):
            nonce = eth.get_transaction_count(self.address, "pending")
            return AccountNow(eth.get_block("latest"), None, nonce, eth.get_balance(self.address))

    def _fees(self, base: int | None, tip: int | None = None) -> dict[str, int]:
        """The fee fields web3 fills by default, read once: the node's suggested tip, and as the cap that tip plus
        twice the latest base fee (room for the base fee to double before inclusion), never above the network's
        `max_fee`. Legacy chains: gas price. With a gas price strategy set on web3 (ape sets one), web3 prices
        each transaction itself. Raises `FeeCapExceeded` when the network asks more than the cap right now."""
        market = self._market_fees(base, tip)
        cap = self.fees.max_fee
        if cap is None or not market:
            return market
        asked = market["gasPrice"] if base is None else int(base) + market["maxPriorityFeePerGas"]
        if asked > cap:
            what = f"a gas price of {gwei(asked)}"
            if base is not None:
                tip = market["maxPriorityFeePerGas"]
                what = f"{gwei(int(base))} gwei of base fee + {gwei(tip)} gwei of tip, {gwei(asked)}"
            raise FeeCapExceeded(
                f"the network asks {what} gwei per gas, above {self.fees.setting} = {gwei(cap)}; nothing was "
                f"signed: wait for lower fees, or raise {self.fees.setting}"
            )
        if base is None:
            return market
        return {**market, "maxFeePerGas": min(market["maxFeePerGas"], cap)}

    def _market_fees(self, base: int | None, tip: int | None = None) -> dict[str, int]:
        if getattr(self.w3.eth, "_gas_price_strategy", None) is not None:
            return {}
        if base is None:
            return {"gasPrice": int(self.w3.eth.gas_price)}
        tip = int(self.w3.eth.max_priority_fee) if tip is None else tip
        return {"maxPriorityFeePerGas": tip, "maxFeePerGas": tip + 2 * int(base)}

    def replacement(self, signed: SignedTx) -> SignedTx:
        """`signed` again, same nonce and call, with higher fees: at least +10% on the tip and the max fee (the
        minimum a node takes as a replacement), or today's fees when they are higher; never above `max_fee`.
        Raises `FeeCapExceeded` when the minimum bump does not fit under the cap, `ChainError` when the account
        cannot pay for it."""
        tx = _decoded(signed.raw)
        if "maxFeePerGas" in tx:
            market = self._market_fees(self.w3.eth.get_block("latest").get("baseFeePerGas"))
            tip = max(_bumped(int(tx["maxPriorityFeePerGas"])), market.get("maxPriorityFeePerGas", 0))
            least = _bumped(int(tx["maxFeePerGas"]))
            fields = {"maxPriorityFeePerGas": tip, "maxFeePerGas": max(least, tip, market.get("maxFeePerGas", 0))}
        else:
            least = _bumped(int(tx["gasPrice"]))
            fields = {"gasPrice": max(least, int(self.w3.eth.gas_price))}
        price_key = "maxFeePerGas" if "maxFeePerGas" in fields else "gasPrice"
        cap = self.fees.max_fee
        if cap is not None:
            if least > cap or fields.get("maxPriorityFeePerGas", 0) > cap:
                raise FeeCapExceeded(
                    f"replacing it needs {gwei(least)} gwei per gas, above {self.fees.setting} = {gwei(cap)}; "
                    f"it waits at its fees, or raise {self.fees.setting}"
                )
            fields[price_key] = min(fields[price_key], cap)
        tx |= fields
        if not tx.get("to"):
            tx.pop("to", None)  # a contract creation
        tx["chainId"] = self.chain_id
        self._check_gas_money([tx], signed.action)
        again = self.account.sign_transaction(tx)
        return SignedTx(signed.action, signed.nonce, again.hash.to_0x_hex(), bytes(again.raw_transaction))

    def broadcast(self, signed: SignedTx) -> None:
        """Send signed bytes. Sending the same bytes twice is harmless: one nonce, one hash, one effect.

        The transport re-sends after a lost answer, so the node may reply that it knows the transaction, or that
        its nonce is spent: by this very transaction (fine), or by another one (this one can never be mined)."""
        try:
            self.w3.eth.send_raw_transaction(signed.raw)
        except Web3RPCError as err:
            text = str(err).lower()
            if any(m in text for m in _KNOWN_TX):
                return
            if any(m in text for m in _NONCE_USED):
                if self.receipt(signed.tx_hash) is not None or self._known(signed.tx_hash):
                    return
                raise NonceTaken(
                    f"{signed.action}: nonce {signed.nonce} of {self.address} went to another transaction (is the "
                    f"account used from another machine or wallet?), so {signed.tx_hash} can never be mined"
                ) from None
            raise ChainError(f"{signed.action}: the node refused transaction {signed.tx_hash}: {err}") from None

    def reverted(self) -> None:
        """A transaction of ours reverted on chain: what it relied on may have changed, so read it afresh."""
        forget_rare_reads(self.w3)

    def confirm(self, signed: SignedTx) -> TxReceipt:
        receipt = self.wait(signed.tx_hash, signed.action)
        if receipt["status"] != 1:
            self.reverted()
            raise ChainError(f"{signed.action}: transaction {signed.tx_hash} reverted on chain")
        return receipt

    def reconcile(
        self, signed: SignedTx, earlier: Sequence[str] = (), *, wait: Callable[[], TxReceipt] | None = None
    ) -> TxReceipt | None:
        """After a restart: the receipt of whichever signing of this nonce was mined (`signed`, or an `earlier` one
        it replaced); None if the nonce went to another transaction (none of them can be mined now); otherwise
        rebroadcast `signed` and wait for it (`wait`: how; by default `wait`, without replacing it)."""
        hashes = [signed.tx_hash, *earlier]
        receipt = self.first_receipt(hashes)
        if receipt is not None:
            return receipt
        if self.nonce_spent(signed.nonce):
            # Mined nonce, but not one of our hashes (checked again: one may have been mined in between).
            return self.first_receipt(hashes)
        try:
            self.broadcast(signed)
        except NonceTaken:  # an earlier signing was mined meanwhile, or another transaction took the nonce
            return self.first_receipt(hashes)
        return self.wait(signed.tx_hash, signed.action) if wait is None else wait()

    def receipt(self, tx_hash: str) -> TxReceipt | None:
        try:
            return self.w3.eth.get_transaction_receipt(HexBytes(tx_hash))
        except TransactionNotFound:
            return None

    def first_receipt(self, tx_hashes: Sequence[str]) -> TxReceipt | None:
        """The receipt of whichever of these signings of one nonce was mined (at most one can be)."""
        for tx_hash in tx_hashes:
            receipt = self.receipt(tx_hash)
            if receipt is not None:
                return receipt
        return None

    def nonce_spent(self, nonce: int) -> bool:
        """Whether a transaction with this nonce of the account is mined (ours or not)."""
        return int(self.w3.eth.get_transaction_count(self.address, "latest")) > nonce

    def poll(self, tx_hashes: Sequence[str], until: float) -> TxReceipt | None:
        """The receipt of any of `tx_hashes` (signings of one nonce), polled until the monotonic time `until`:
        quickly at first (an automining devnet answers at once), then backing off to spare the RPC."""
        delay = 0.005
        while True:
            receipt = self.first_receipt(tx_hashes)
            if receipt is not None or time.monotonic() >= until:
                return receipt
            time.sleep(max(0.0, min(delay, until - time.monotonic())))
            delay = min(delay * 2, 1.0)

    def _known(self, tx_hash: str) -> bool:
        """Whether the node has the transaction at all (pending or mined)."""
        try:
            self.w3.eth.get_transaction(HexBytes(tx_hash))
        except TransactionNotFound:
            return False
        return True

    @cached_property
    def chain_id(self) -> int:
        return int(self.w3.eth.chain_id)

    def wait(self, tx_hash: str, action: str) -> TxReceipt:
        """The receipt, polled for up to `RECEIPT_TIMEOUT_S` (no replacement: the outbox replaces stuck ones)."""
        receipt = self.poll([tx_hash], time.monotonic() + RECEIPT_TIMEOUT_S)
        if receipt is None:
            raise ChainError(
                f"{action}: transaction {tx_hash} was sent but not mined within "
                f"{RECEIPT_TIMEOUT_S:.0f}s; check it before sending again"
            )
        return receipt

    def deploy(self, artifact: Artifact, *args: Any) -> Contract:
        factory = self.w3.eth.contract(abi=artifact.abi, bytecode=artifact.bytecode)
        receipt = self.transact(factory.constructor(*args), f"deploy {artifact.name}")
        address = receipt["contractAddress"]
        if address is None:
            raise ChainError(f"deploy {artifact.name}: the receipt names no contract address")
        return self.w3.eth.contract(address=address, abi=artifact.abi)

    def _check_gas_money(self, txs: Sequence[dict[str, Any]], action: str, balance: int | None = None) -> None:
        needed = 0
        for tx in txs:
            price = tx.get("maxFeePerGas") or tx.get("gasPrice") or 0
            needed += int(tx["gas"]) * int(price) + int(tx.get("value", 0))
        balance = self.w3.eth.get_balance(self.address) if balance is None else balance
        if balance < needed:
            raise ChainError(
                f"{action}: account {self.address} has {Web3.from_wei(balance, 'ether')} of the native token "
                f"but needs {Web3.from_wei(needed, 'ether')} for gas; fund it and retry"
            )
