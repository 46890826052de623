"""Sending transactions: every one is checked with a static call and a balance check before it is signed.

Keys stay in memory as eth-account `LocalAccount`s and are never printed; nodes never hold them unlocked.
The RPC transport (`RetryingHTTPProvider`) retries what is safe to repeat: reads, and `eth_sendRawTransaction`,
whose same signed bytes can only ever be one transaction.
"""

from __future__ import annotations

import json
import os
import random
import time
from collections.abc import Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from functools import cached_property
from typing import Any, cast
from urllib.parse import urlsplit

import requests
from eth_abi.abi import decode as abi_decode
from eth_account.signers.local import LocalAccount
from eth_typing import URI, ChecksumAddress
from hexbytes import HexBytes
from web3 import HTTPProvider, Web3
from web3.contract import Contract
from web3.contract.contract import ContractConstructor, ContractFunction
from web3.exceptions import ContractLogicError, TransactionNotFound, Web3RPCError
from web3.types import RPCEndpoint, TxParams, TxReceipt

from attest.chain.abi import EncodedCall
from attest.chain.artifacts import Artifact
from attest.config import DEFAULT_GAS_MARGIN_PCT
from attest.errors import ChainError, ConfigError, NonceTaken, RpcUnavailable, TransactionRejected
from attest.locks import SigningLock

RECEIPT_TIMEOUT_S = 120.0
RPC_TRIES = 6
RPC_BACKOFF_S = 0.1  # doubled per retry, with jitter: 0.1 .. 1.6 s, about 3 s in all before giving up
RPC_BACKOFF_CAP_S = 5.0  # also caps a server's Retry-After

_TRANSIENT_HTTP = frozenset({408, 425, 429, 500, 502, 503, 504})
# JSON-RPC errors that say "not now" rather than "no": load-balanced nodes lagging a block, rate limits, gateways.
_TRANSIENT_RPC_MESSAGES = (
    "header not found",
    "timeout",
    "timed out",
    "rate limit",
    "too many requests",
    "limit exceeded",
    "temporarily unavailable",
    "service unavailable",
    "try again",
    "overloaded",
)
_TRANSIENT_RPC_CODES = frozenset({-32005})  # EIP-1474 "limit exceeded"
# Reads repeat harmlessly, and so does eth_sendRawTransaction (same bytes, same hash, one nonce). A node-signed
# eth_sendTransaction would sign a second transaction, and a lost eth_getFilterChanges answer is gone for good.
_RETRIED_NAMESPACES = frozenset({"eth", "net", "web3", "txpool"})
_NEVER_RETRIED = frozenset({"eth_sendTransaction", "eth_getFilterChanges"})
_BAD_URL = (requests.exceptions.InvalidURL, requests.exceptions.InvalidSchema, requests.exceptions.MissingSchema)
_KNOWN_TX = ("already known", "already imported", "known transaction")
_NONCE_USED = ("nonce too low", "nonce is too low")


def may_retry(method: str) -> bool:
    return method.split("_", 1)[0] in _RETRIED_NAMESPACES and method not in _NEVER_RETRIED


def rpc_origin(url: str) -> str:
    """Scheme, host and port only: provider URLs often carry an API key in their path or query."""
    parts = urlsplit(url)
    host = parts.hostname or "?"
    return f"{parts.scheme}://{host}{f':{parts.port}' if parts.port else ''}"


def _transient_rpc_error(raw: bytes) -> str | None:
    """The node's message when `raw` is a JSON-RPC error worth retrying, or a non-JSON body; else None."""
    head = raw.lstrip()[:1]
    if head not in (b"{", b"["):
        return "a response that is not JSON"
    # Error objects are small; large answers (logs, blocks) are not parsed twice.
    if len(raw) > 4096 or b'"error"' not in raw:
        return None
    try:
        body = json.loads(raw)
    except ValueError:
        return "a response that is not JSON"
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        return None
    message = str(error.get("message", ""))
    lowered = message.lower()
    if "revert" in lowered:  # a contract's own words ("timeout not reached") are an answer, not a hiccup
        return None
    if error.get("code") in _TRANSIENT_RPC_CODES or any(m in lowered for m in _TRANSIENT_RPC_MESSAGES):
        return f"RPC error {error.get('code')}: {message[:80]}"
    return None


class RetryingHTTPProvider(HTTPProvider):
    """web3's HTTP provider with bounded retries and jittered backoff on transient failures: HTTP 5xx/429,
    timeouts, refused or dropped connections, and "try later" JSON-RPC errors. When the endpoint stays down it
    raises `RpcUnavailable`, whose message names the endpoint without its path (API keys live there)."""

    def __init__(
        self,
        url: str,
        *,
        timeout: float,
        tries: int = RPC_TRIES,
        backoff_s: float = RPC_BACKOFF_S,
        **kwargs: Any,
    ) -> None:
        # web3's own retry (ExceptionRetryConfiguration) misses requests' ConnectionError (a dropped connection
        # is not the builtin ConnectionError), never retries JSON-RPC errors, and retries evm_* test methods.
        super().__init__(url, request_kwargs={"timeout": timeout}, exception_retry_configuration=None, **kwargs)
        self.tries = max(1, tries)
        self.backoff_s = backoff_s

    def _make_request(self, method: RPCEndpoint, request_data: bytes) -> bytes:
        tries = self.tries if may_retry(method) else 1
        url = URI(str(self.endpoint_uri))
        why, wait_at_least = "", 0.0
        for attempt in range(tries):
            if attempt:
                backoff = min(RPC_BACKOFF_CAP_S, self.backoff_s * 2 ** (attempt - 1))
                time.sleep(max(wait_at_least, backoff * random.uniform(0.5, 1.0)))
            wait_at_least = 0.0
            try:
                raw: bytes = self._request_session_manager.make_post_request(
                    url, request_data, **self.get_request_kwargs()
                )
            except requests.HTTPError as err:
                status = err.response.status_code if err.response is not None else 0
                if status not in _TRANSIENT_HTTP:
                    raise ChainError(
                        f"the RPC at {rpc_origin(url)} answered HTTP {status} to {method}; "
                        "check the URL and any API key it needs"
                    ) from None
                why, wait_at_least = f"HTTP {status}", _retry_after(err.response)
                continue
            except _BAD_URL:
                raise ChainError(f"{rpc_origin(url)} is not a usable RPC URL; fix it") from None
            except requests.RequestException as err:  # timeouts, refused or dropped connections, cut-off bodies
                why = type(err).__name__
                continue
            if tries == 1:
                return raw
            transient = _transient_rpc_error(raw)
            if transient is None:
                return raw
            why = transient
        raise RpcUnavailable(
            f"the RPC at {rpc_origin(url)} did not answer {method} after {tries} "
            f"{'try' if tries == 1 else 'tries'} ({why})"
        )


RPC_TIMEOUT_ENV = "ATTEST_RPC_TIMEOUT_S"  # seconds per RPC request, for every connection; overrides the defaults


def http_provider(url: str, timeout: float) -> HTTPProvider:
    """Bounded retries on transient RPC failures (see `RetryingHTTPProvider`), `timeout` seconds per request
    unless ATTEST_RPC_TIMEOUT_S says otherwise (a slow remote node; an impatient test).
    web3's validation asks eth_chainId before every call and estimate; a chain id never changes under a URL."""
    chosen = os.environ.get(RPC_TIMEOUT_ENV, "").strip()
    if chosen:
        try:
            timeout = float(chosen)
        except ValueError:
            timeout = -1.0
        if not 0 < timeout <= 600:
            raise ConfigError(f"{RPC_TIMEOUT_ENV}={chosen!r} is not a number of seconds in (0, 600]; fix or unset it")
    return RetryingHTTPProvider(url, timeout=timeout, cache_allowed_requests=True, cacheable_requests={"eth_chainId"})


def _retry_after(response: requests.Response | None) -> float:
    value = response.headers.get("Retry-After", "") if response is not None else ""
    try:
        return min(RPC_BACKOFF_CAP_S, max(0.0, float(value)))
    except ValueError:
        return 0.0


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
    ) -> None:
        if not 0 <= gas_margin_pct <= 300:
            raise ValueError(f"gas_margin_pct must be 0..300, not {gas_margin_pct}")
        self.w3 = w3
        self.account = account
        self.gas_margin_pct = gas_margin_pct
        self.lock = lock

    def signing(self) -> AbstractContextManager[object]:
        """Hold the account's signing lock (when it has one) from reading the pending nonce until the signed
        bytes are recorded and sent: another process of this ATTEST_HOME then reads a nonce past them. Sending is
        inside because a nonce taken but never sent would stall every later transaction of the account."""
        return nullcontext() if self.lock is None else self.lock.held()

    @property
    def address(self) -> ChecksumAddress:
        return self.account.address

    def transact(self, call: ContractFunction | ContractConstructor, action: str) -> TxReceipt:
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
        latest = self.w3.eth.get_block("latest")
        block_gas_limit = int(latest["gasLimit"])
        fees = cast(TxParams, {"from": self.address, **self._fees(latest.get("baseFeePerGas"))})
        next_nonce = self.w3.eth.get_transaction_count(self.address, "pending") if nonce is None else nonce
        built: list[dict[str, Any] | TransactionRejected] = []
        for call, action in calls:
            try:
                # Estimating gas executes the call against the latest state: this is the static call.
                tx: dict[str, Any] = dict(call.build_transaction(fees))
            except ContractLogicError as err:
                built.append(TransactionRejected(action, revert_reason(err, getattr(call, "contract_abi", None))))
                continue
            tx["gas"] = min(int(tx["gas"]) * (100 + self.gas_margin_pct) // 100, block_gas_limit)
            tx["nonce"] = next_nonce
            tx["chainId"] = self.chain_id
            next_nonce += 1
            built.append(tx)
        accepted = [b for b in built if isinstance(b, dict)]
        if accepted:
            self._check_gas_money(accepted, ", ".join(sorted({action for _call, action in calls})))
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
        latest = self.w3.eth.get_block("latest")
        fees = self._fees(latest.get("baseFeePerGas"))
        try:
            # Estimated without fees, so an account that cannot pay still learns what it would cost.
            estimate = call.estimate_gas(cast(TxParams, {"from": self.address}))
        except ContractLogicError as err:
            raise TransactionRejected(action, revert_reason(err, getattr(call, "contract_abi", None))) from None
        gas = min(int(estimate) * (100 + self.gas_margin_pct) // 100, int(latest["gasLimit"]))
        price = fees.get("maxFeePerGas") or fees.get("gasPrice") or int(self.w3.eth.gas_price)
        return Quote(gas, price, int(self.w3.eth.get_balance(self.address)))

    def _fees(self, base: int | None) -> dict[str, int]:
        """The fee fields web3 fills by default, read once: the node's suggested tip, and as the cap that tip plus
        twice the latest base fee (room for the base fee to double before inclusion). Legacy chains: gas price.
        With a gas price strategy set on web3 (ape sets one), web3 prices each transaction itself."""
        if getattr(self.w3.eth, "_gas_price_strategy", None) is not None:
            return {}
        if base is None:
            return {"gasPrice": int(self.w3.eth.gas_price)}
        tip = int(self.w3.eth.max_priority_fee)
        return {"maxPriorityFeePerGas": tip, "maxFeePerGas": tip + 2 * int(base)}

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

    def _check_gas_money(self, txs: Sequence[dict[str, Any]], action: str) -> None:
        needed = 0
        for tx in txs:
            price = tx.get("maxFeePerGas") or tx.get("gasPrice") or 0
            needed += int(tx["gas"]) * int(price) + int(tx.get("value", 0))
        balance = self.w3.eth.get_balance(self.address)
        if balance < needed:
            raise ChainError(
                f"{action}: account {self.address} has {Web3.from_wei(balance, 'ether')} of the native token "
                f"but needs {Web3.from_wei(needed, 'ether')} for gas; fund it and retry"
            )
