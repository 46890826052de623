"""Sending a transaction at most once per intent, across crashes: record the signed bytes, then send them.

`checkpoint` is a fault-injection point: with `ATTEST_CRASH_AT=<step>` in the environment the process dies
(SIGKILL-like, no cleanup) right after that step is recorded. The crash-recovery tests use it to stop
`attest ask` between every pair of steps and prove that `attest resume` finishes with exactly one assertion.
"""

from __future__ import annotations

import os

from web3.contract.contract import ContractFunction
from web3.types import TxReceipt

from attest.chain.tx import Sender, SignedTx
from attest.errors import ChainError
from attest.ledger import Ledger, TxKind

CRASH_ENV = "ATTEST_CRASH_AT"


def checkpoint(step: str) -> None:
    if os.environ.get(CRASH_ENV) == step:
        os._exit(137)


def send_once(
    ledger: Ledger,
    attestation_id: int,
    kind: TxKind,
    sender: Sender,
    call: ContractFunction,
    action: str,
    *,
    repeatable: bool = False,
) -> TxReceipt:
    """The receipt of this attestation's `kind` transaction: an earlier one if it was mined, the same bytes
    rebroadcast if one is in flight, a new one only when none was sent or the one sent can never be mined.

    `repeatable`: a mined earlier one does not satisfy the intent, because the caller read the chain and needs
    another (an approval that a different assertion used up). One in flight is still settled first.
    """
    mined = ledger.mined_tx(attestation_id, kind)
    if mined is not None and not repeatable:
        earlier = SignedTx(action, mined.nonce, mined.tx_hash, mined.raw)
        # A node lagging behind the one that reported the receipt (load-balanced RPCs) has no receipt yet: the
        # same bytes are rebroadcast and waited for, and only a nonce provably spent elsewhere (a reorg) lets
        # anything new be signed.
        receipt = sender.receipt(mined.tx_hash) or sender.reconcile(earlier)
        if receipt is not None:
            return receipt
        ledger.tx_status(mined.tx_hash, "dropped", {"why": "reorganised out; its nonce went to another transaction"})
    receipt = settle_open(ledger, attestation_id, kind, sender, action)
    if receipt is not None:
        return receipt
    signed = sender.prepare(call, action)
    ledger.tx_signed(attestation_id, kind, signed.nonce, signed.tx_hash, signed.raw)
    checkpoint(f"{kind}-signed")
    # A transport failure from here on leaves the row `signed` or `sent`: whether the bytes reached the chain is
    # unknown, and the next call (`attest resume`) finds out from the receipt before signing anything else.
    sender.broadcast(signed)
    ledger.tx_status(signed.tx_hash, "sent")
    checkpoint(f"{kind}-sent")
    return _finish(ledger, signed, sender.wait(signed.tx_hash, action), kind)


def settle_open(ledger: Ledger, attestation_id: int, kind: TxKind, sender: Sender, action: str) -> TxReceipt | None:
    """Settle this attestation's `kind` transaction in flight, if any: its receipt once mined (the same bytes
    rebroadcast and waited for), or None when there is none or its nonce went elsewhere (marked dropped).
    Callers that choose what to send from chain state (is an approval still needed?) settle this first."""
    pending = ledger.open_tx(attestation_id, kind)
    if pending is None:
        return None
    earlier = SignedTx(action, pending.nonce, pending.tx_hash, pending.raw)
    receipt = sender.reconcile(earlier)
    if receipt is not None:
        return _finish(ledger, earlier, receipt, kind)
    ledger.tx_status(earlier.tx_hash, "dropped", {"why": "its nonce was used by another transaction"})
    return None


def _finish(ledger: Ledger, signed: SignedTx, receipt: TxReceipt, kind: str) -> TxReceipt:
    if receipt["status"] != 1:
        ledger.tx_status(signed.tx_hash, "reverted", {"block": receipt["blockNumber"]})
        raise ChainError(f"{signed.action}: transaction {signed.tx_hash} reverted on chain")
    ledger.tx_status(signed.tx_hash, "mined", {"block": receipt["blockNumber"], "gas": receipt["gasUsed"]})
    checkpoint(f"{kind}-mined")
    return receipt
