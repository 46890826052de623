"""The transaction outbox: every transaction is sent at most once per intent, across crashes and reorgs.

One engine for both roles, over a small transaction log (`TxLog`) each role's store implements: the asserter's
ledger (a row per signing, the earlier attempts kept) and the disputer's state (one row per intent, re-signed
in place, attempts counted). Each step is written before it happens: the signed bytes and their hash before
they are sent, `sent` once the node has them, the receipt's verdict once mined. A row signed or sent is
reconciled, never signed again: its receipt, or the same bytes rebroadcast, or `dropped` once its nonce went
to another transaction. Only then may the intent be signed anew.

The states, one vocabulary for both logs:
  intent   the transaction is wanted, nothing is signed yet (the ledger keeps no row for this: it has none)
  signed   the bytes are recorded, maybe sent (a crash between sending and recording `sent` leaves this)
  sent     the node accepted the bytes
  mined    a receipt with status 1
  failed   nothing of it can count: it reverted on chain, its static call refused it, or its subject is gone
  dropped  its bytes can never be mined (the nonce went elsewhere, or the node refused them), or a mined one
           whose effect is gone (a reorg, a spent allowance, an earlier vote round); it may be signed anew
These are the disputer's words: they are a superset of the ledger's, whose `reverted` meant `failed` (its rows
were renamed by a ledger migration), and `intent` names the state every transaction starts in.

A transaction not mined within its network's `replace_after_s` is replaced: signed again with the same nonce and
higher fees (attest/chain/tx.py `Sender.replacement`), recorded on the same row before it is sent (the row's
earlier signings kept beside it), so whichever of them is mined is recognised, and the intent stays one.

`checkpoint` is a fault-injection point: with `ATTEST_CRASH_AT=<step>` in the environment the process dies
(SIGKILL-like, no cleanup) right after that step is recorded (`<kind>-signed`, `<kind>-sent`, `<kind>-mined`,
`<kind>-replaced`, and the asserter's own steps). The crash-recovery tests stop a run between every pair of
steps with it. With `ATTEST_PAUSE_AT=<step>` it says `paused at <step>` on stderr and waits for a signal instead,
so a test can send a real Ctrl-C at that very step.

A broadcast and the `sent` that records it are one step for Ctrl-C (attest/interrupts.py): an interrupt there is
delivered once `sent` is written, so a row an interrupted process left `signed` was never sent by it.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Generic, Literal, Protocol, TypeAlias, TypeVar

from attest import interrupts
from attest.errors import ChainError, NonceTaken, RpcUnavailable, TransactionRejected

if TYPE_CHECKING:  # the stores import this module for TxRow; web3 loads only where transactions are sent
    from web3.contract.contract import ContractConstructor, ContractFunction
    from web3.types import TxReceipt

    from attest.chain.abi import EncodedCall
    from attest.chain.tx import Sender, SignedTx

    Call: TypeAlias = ContractFunction | ContractConstructor | EncodedCall

CRASH_ENV = "ATTEST_CRASH_AT"
PAUSE_ENV = "ATTEST_PAUSE_AT"
PAUSE_S = 120.0  # how long a paused process waits for the test's signal

TxState = Literal["intent", "signed", "sent", "mined", "failed", "dropped"]
TX_STATES: tuple[TxState, ...] = ("intent", "signed", "sent", "mined", "failed", "dropped")
IN_FLIGHT: tuple[TxState, ...] = ("signed", "sent")  # may still land: reconcile, never sign again
# A transaction may be (re)signed only when nothing signed for it can still land on chain.
SIGNABLE: tuple[TxState, ...] = ("intent", "failed", "dropped")

NONCE_ELSEWHERE = "nonce used by another transaction"
NONCE_RETRIES = 2  # a nonce taken from under a transaction by another machine: sign anew this many times
REORGED = "a reorg removed it from the chain"

S = TypeVar("S")
logger = logging.getLogger(__name__)


def checkpoint(step: str) -> None:
    if os.environ.get(CRASH_ENV) == step:
        os._exit(137)
    if os.environ.get(PAUSE_ENV) == step:
        print(f"paused at {step}", file=sys.stderr, flush=True)
        time.sleep(PAUSE_S)


@dataclass(frozen=True)
class TxRow(Generic[S]):
    """One transaction of one intent: (`subject`, `kind`). `subject` is what it acts for: a ledger attestation
    number, or an assertion id in the disputer's state."""

    id: int
    subject: S
    kind: str
    status: TxState
    nonce: int | None
    tx_hash: bytes | None
    raw: bytes | None
    sender: str | None
    attempts: int  # how many times this intent was signed
    error: str | None  # why it failed or was dropped
    created_at: str
    updated_at: str
    # (hash, raw) of the signings of the same nonce this one replaced, newest first: any of them may be mined.
    earlier: tuple[tuple[bytes, bytes], ...] = ()

    @property
    def hash_hex(self) -> str | None:
        return None if self.tx_hash is None else "0x" + self.tx_hash.hex()

    @property
    def earlier_hashes(self) -> list[str]:
        return ["0x" + tx_hash.hex() for tx_hash, _raw in self.earlier]

    @property
    def hashes(self) -> list[str]:  # every signing of this row's nonce, the current one first
        return [h for h in (self.hash_hex,) if h is not None] + self.earlier_hashes

    def signed(self, action: str) -> SignedTx:
        from attest.chain.tx import SignedTx

        assert self.nonce is not None and self.tx_hash is not None and self.raw is not None, self
        return SignedTx(action, self.nonce, "0x" + self.tx_hash.hex(), self.raw)


def earlier_after(row: TxRow[S], signed: SignedTx) -> tuple[tuple[bytes, bytes], ...]:
    """The row's earlier signings once `signed` becomes its transaction: the one it holds now first, and
    `signed` itself no longer among them."""
    assert row.tx_hash is not None and row.raw is not None
    new = bytes.fromhex(signed.tx_hash[2:])
    return tuple((h, raw) for h, raw in ((row.tx_hash, row.raw), *row.earlier) if h != new)


def encode_earlier(earlier: tuple[tuple[bytes, bytes], ...]) -> str | None:
    """How the logs store `TxRow.earlier`: JSON text, [[hash hex, raw hex], ...]; NULL when there is none."""
    return json.dumps([[h.hex(), raw.hex()] for h, raw in earlier]) if earlier else None


def decode_earlier(text: str | None) -> tuple[tuple[bytes, bytes], ...]:
    return tuple((bytes.fromhex(h), bytes.fromhex(raw)) for h, raw in json.loads(text)) if text else ()


class TxLog(Protocol[S]):
    """Where the outbox keeps its rows. Every method commits on its own unless inside `transaction()`."""

    def transaction(self, *, durable: bool = False) -> AbstractContextManager[object]: ...

    def tx_intent(self, subject: S, kind: str) -> TxRow[S]:
        """The intent's current row (the latest one), or a new one in `intent`."""
        ...

    def tx_record_signed(self, row: TxRow[S], signed: SignedTx, sender: str) -> TxRow[S]:
        """Keep the signed bytes of `row`'s intent before they are sent (`row` is signable), durably: the commit
        that holds them must survive a power cut."""
        ...

    def tx_record(
        self, row: TxRow[S], status: TxState, *, error: str | None = None, receipt: TxReceipt | None = None
    ) -> TxRow[S]:
        """Move `row` to `status` (`receipt`: the one that moved it to mined or failed)."""
        ...

    def tx_record_replaced(self, row: TxRow[S], signed: SignedTx) -> TxRow[S]:
        """Make `signed` (the same nonce) `row`'s transaction, its status unchanged, keeping the bytes it had among
        its `earlier` ones, durably: a replacement before it is sent, or an earlier signing found mined."""
        ...


@dataclass(frozen=True)
class SendResult(Generic[S]):
    row: TxRow[S]
    error: str | None = None  # why nothing was sent, or why what was sent did not land
    receipt: TxReceipt | None = None
    failure: ChainError | None = None  # the error behind `error`, for callers that stop on it
    # Nothing of ours landed, but the chain shows the intent done by this very account (another process signing
    # with the same key): a success, not a failure.
    already: bool = False

    @property
    def mined(self) -> bool:
        return self.row.status == "mined"

    @property
    def tx_hash(self) -> str | None:
        return self.row.hash_hex

    def landed(self) -> TxReceipt:
        """The receipt of the mined transaction; otherwise why not, raised."""
        if self.failure is not None:
            raise self.failure
        if not self.mined or self.receipt is None:
            raise ChainError(self.error or f"{self.row.kind}: transaction {self.tx_hash} did not land")
        return self.receipt


class Outbox(Generic[S]):
    """Sends through `sender`, keeping every step in `log`.

    `resign_lost`: what a mined row whose receipt is gone means. The asserter (False) rebroadcasts the same
    bytes, since a load-balanced RPC lagging behind the node that reported the receipt is the likely cause, and
    only a nonce provably spent elsewhere lets it sign again. The disputer (True) signs again at once: its
    watcher follows reorgs, and what it acted on may have changed on the new branch.
    `abandon(row)`: why an in-flight row must not be rebroadcast when it has no receipt (its bytes could only
    revert now), or None. `reopened(row, why)` hears of a mined row whose effect is gone, before its intent is
    signed again (the disputer logs it). `notice(line)` hears of a nonce another machine or wallet took from
    under a transaction about to be sent; the intent is signed anew with the next nonce. It also hears of a stuck
    transaction replaced (or not, and why). Without it, these lines go to this module's logger as warnings.

    Nonces are read, signed, recorded and sent under the sender's signing lock (`Sender.signing`), so the
    processes of one ATTEST_HOME never sign two transactions with one nonce; receipts are awaited outside it."""

    def __init__(
        self,
        log: TxLog[S],
        sender: Sender,
        *,
        resign_lost: bool,
        abandon: Callable[[TxRow[S]], str | None] | None = None,
        reopened: Callable[[TxRow[S], str], None] | None = None,
        notice: Callable[[str], None] | None = None,
    ) -> None:
        self.log = log
        self.sender = sender
        self.resign_lost = resign_lost
        self.abandon = abandon
        self.reopened = reopened
        self.notice = notice or logger.warning

    def send(
        self,
        subject: S,
        kind: str,
        build: Callable[[], Call],
        action: str,
        *,
        spent: Callable[[TxReceipt], str | None] | None = None,
        repeatable: bool = False,
        wait: bool = True,
    ) -> SendResult[S]:
        """Send one intent once: an earlier mined transaction if its effect lasts, the one in flight settled if
        there is one, a new one only when nothing sent can still land.

        `spent(receipt)` says why a mined transaction's effect no longer counts (None: it does).
        `repeatable`: a mined earlier one never satisfies the intent (the caller read the chain and needs another
        one); only for a log that keeps a row per signing. One in flight is still settled first.
        `wait=False`: return once a new transaction is sent (its row `sent`, no receipt), for a caller holding
        the signing lock; `settle_open` awaits it later."""
        row = self.log.tx_intent(subject, kind)
        try:
            if row.status == "mined" and not repeatable:
                row, receipt = self._still_mined(row, action, spent)
                if row.status == "mined":
                    return SendResult(row, receipt=receipt)
            if row.status in IN_FLIGHT:
                row, receipt = self.reconcile(row, action)
                if row.status != "dropped":
                    return self._result(row, receipt, action)
            return self._sign_and_send(row, kind, build, action, wait=wait, spent=spent, repeatable=repeatable)
        except ChainError as err:
            return SendResult(self.log.tx_intent(subject, kind), str(err), failure=err)

    def settle_open(self, subject: S, kind: str, action: str) -> SendResult[S] | None:
        """Settle the intent's transaction in flight, if any: None when there is none or it was dropped.
        Callers that choose what to send from chain state (is an approval still needed?) settle this first."""
        row = self.log.tx_intent(subject, kind)
        if row.status not in IN_FLIGHT:
            return None
        try:
            row, receipt = self.reconcile(row, action)
        except ChainError as err:
            return SendResult(row, str(err), failure=err)
        return None if row.status == "dropped" else self._result(row, receipt, action)

    def reconcile(self, row: TxRow[S], action: str) -> tuple[TxRow[S], TxReceipt | None]:
        """What an in-flight row became: mined or failed (its receipt), failed (`abandon`), dropped (its nonce
        went elsewhere), or still in flight after its bytes were rebroadcast. Raises `ChainError` when the RPC
        cannot tell (the row is left as it was)."""
        why = None if self.abandon is None else self.abandon(row)
        if why is not None and self.sender.first_receipt(row.hashes) is None:
            return self.log.tx_record(row, "failed", error=why), None
        row, receipt = self._chase(row, action)
        if receipt is None:
            return self.log.tx_record(row, "dropped", error=NONCE_ELSEWHERE), None
        return self._mined(row, receipt), receipt

    def send_many(self, items: Sequence[tuple[S, Call]], kind: str, action: str) -> dict[S, SendResult[S]]:
        """Signable intents of one kind sent in one pipeline: every call static-called and signed with
        consecutive nonces, recorded, sent, and its receipt awaited, each stage one commit for the whole batch.

        The guarantees of `send` hold: the bytes are recorded before they leave, a restart reconciles them by
        hash. If a broadcast fails, the rows after it are released unsent (their bytes never left this process),
        so no nonce gap is left behind."""
        results: dict[S, SendResult[S]] = {}
        with self.log.transaction():
            rows = [self.log.tx_intent(subject, kind) for subject, _call in items]
        assert all(row.status in SIGNABLE for row in rows), "send_many takes signable intents only"
        # One hold of the signing lock for the whole batch, from the nonce read to the last send.
        with self.sender.signing():
            try:
                prepared = self.sender.prepare_many([(call, action) for _subject, call in items])
            except ChainError as err:  # not enough gas money: nothing was signed
                return {row.subject: SendResult(row, str(err), failure=err) for row in rows}
            signed: list[tuple[TxRow[S], SignedTx]] = []
            with self.log.transaction(durable=True):
                for row, tx in zip(rows, prepared, strict=True):
                    if isinstance(tx, TransactionRejected):
                        results[row.subject] = SendResult(self._rejected(row, tx), tx.reason, failure=tx)
                    else:
                        signed.append((self.log.tx_record_signed(row, tx, self.sender.address), tx))
            if signed:
                checkpoint(f"{kind}-signed")
            sent: list[tuple[TxRow[S], SignedTx]] = []
            with interrupts.deferred():
                for i, (row, tx) in enumerate(signed):
                    try:
                        self.sender.broadcast(tx)
                    except ChainError as err:
                        results[row.subject] = SendResult(self._unsent(row, err), str(err), failure=err)
                        with self.log.transaction():
                            for later, _tx in signed[i + 1 :]:
                                why = "not sent: an earlier transaction of its batch did not go out"
                                results[later.subject] = SendResult(
                                    self.log.tx_record(later, "dropped", error=why), why
                                )
                        break
                    sent.append((row, tx))
                with self.log.transaction():
                    sent = [(self.log.tx_record(row, "sent"), tx) for row, tx in sent]
            if sent:
                checkpoint(f"{kind}-sent")
        receipts: list[tuple[TxRow[S], TxReceipt]] = []
        for row, _tx in sent:
            try:
                receipts.append(self._await(row, action))
            except ChainError as err:  # still in flight: the next reconcile finds out
                results[row.subject] = SendResult(self.log.tx_intent(row.subject, kind), str(err), failure=err)
        with self.log.transaction():
            for row, receipt in receipts:
                results[row.subject] = self._result(self._mined(row, receipt, crash=False), receipt, action)
        if receipts:
            checkpoint(f"{kind}-mined")
        return results

    # -- the steps -----------------------------------------------------------------------------------------
    def _still_mined(
        self, row: TxRow[S], action: str, spent: Callable[[TxReceipt], str | None] | None
    ) -> tuple[TxRow[S], TxReceipt | None]:
        assert row.tx_hash is not None
        receipt = self.sender.receipt("0x" + row.tx_hash.hex())
        if receipt is None and not self.resign_lost:
            row, receipt = self._chase(row, action)
        why: str | None
        if receipt is None:
            why = REORGED if self.resign_lost else f"reorganised out; its {NONCE_ELSEWHERE}"
        else:
            why = None if spent is None else spent(receipt)
        if why is None:
            return row, receipt
        if self.reopened is not None:
            self.reopened(row, why)
        return self.log.tx_record(row, "dropped", error=why), None

    def _sign_and_send(
        self,
        row: TxRow[S],
        kind: str,
        build: Callable[[], Call],
        action: str,
        *,
        wait: bool,
        spent: Callable[[TxReceipt], str | None] | None,
        repeatable: bool,
    ) -> SendResult[S]:
        for attempt in range(NONCE_RETRIES + 1):
            with self.sender.signing():
                # A repeatable intent is signed again by design: its caller read the chain and needs another.
                if attempt == 0 and not repeatable:
                    fresh = self.log.tx_intent(row.subject, kind)
                    if fresh.status not in SIGNABLE:
                        # Another process signed this intent while we waited for the lock (the row was read
                        # before it): settle what it sent rather than sign a second transaction.
                        taken = True
                        break
                taken = False
                try:
                    signed = self.sender.prepare(build(), action)
                except TransactionRejected as err:
                    return SendResult(self._rejected(row, err), err.reason, failure=err)
                row = self.log.tx_record_signed(row, signed, self.sender.address)
                checkpoint(f"{kind}-signed")
                # A transport failure from here on leaves the row signed or sent: whether the bytes reached the
                # chain is unknown, and the next reconcile finds out from the receipt before anything else is signed.
                with interrupts.deferred():
                    try:
                        self.sender.broadcast(signed)
                    except NonceTaken as err:
                        row = self._unsent(row, err)
                        if attempt == NONCE_RETRIES:
                            return SendResult(row, str(err), failure=err)
                        if self.notice is not None:
                            self.notice(f"{err}; signing it again with the next nonce")
                        continue
                    except ChainError as err:
                        return SendResult(self._unsent(row, err), str(err), failure=err)
                    row = self.log.tx_record(row, "sent")
                checkpoint(f"{kind}-sent")
            break
        if taken:
            return self.send(row.subject, kind, build, action, spent=spent, wait=wait)
        if not wait:
            return SendResult(row)
        row, receipt = self._await(row, action)
        return self._result(self._mined(row, receipt), receipt, action)

    def _chase(self, row: TxRow[S], action: str) -> tuple[TxRow[S], TxReceipt | None]:
        """`Sender.reconcile` over every signing of the row, awaited with replacements: the receipt of whichever
        was mined (the row now holding it), or None when its nonce went to another transaction."""
        awaited = [row]

        def wait() -> TxReceipt:
            awaited[0], receipt = self._await(row, action)
            return receipt

        receipt = self.sender.reconcile(row.signed(action), row.earlier_hashes, wait=wait)
        row = awaited[0]
        return (row, None) if receipt is None else (self._holding(row, receipt, action), receipt)

    def _await(self, row: TxRow[S], action: str) -> tuple[TxRow[S], TxReceipt]:
        """The receipt of whichever signing of the row is mined, the row holding that one. Every `replace_after_s`
        without one the transaction is replaced (same nonce, higher fees); after the receipt timeout (at least
        three replacement periods) raises `ChainError`, the row left in flight for the next reconcile."""
        from attest.chain.tx import RECEIPT_TIMEOUT_S

        period = self.sender.fees.replace_after_s
        patience = max(RECEIPT_TIMEOUT_S, 3 * period)
        give_up = time.monotonic() + patience
        while True:
            receipt = self.sender.poll(row.hashes, min(give_up, time.monotonic() + period))
            if receipt is not None:
                return self._holding(row, receipt, action), receipt
            if time.monotonic() >= give_up:
                raise ChainError(
                    f"{action}: transaction {row.hash_hex} was sent but not mined within {patience:.0f}s; "
                    "`attest resume` (or the next disputer pass) finds out what became of it"
                )
            row = self._replace(row, action, period)

    def _replace(self, row: TxRow[S], action: str, waited_s: float) -> TxRow[S]:
        """Sign the row's transaction again with the same nonce and higher fees, record it on the row, send it.
        What cannot be replaced (the cap, the gas money) keeps waiting at its fees, said once per period."""
        from attest.chain.tx import fee_summary

        current = row.signed(action)
        stuck = f"{action}: {current.tx_hash} (nonce {current.nonce}) not mined after {waited_s:g}s"
        try:
            new = self.sender.replacement(current)
        except ChainError as err:
            self.notice(f"{stuck}; not replaced: {err}")
            return row
        with self.sender.signing():
            row = self.log.tx_record_replaced(row, new)
            checkpoint(f"{row.kind}-replaced")
            try:
                self.sender.broadcast(new)
            except ChainError as err:  # the stuck one was mined meanwhile, or the node refused: the poll finds out
                if self.sender.first_receipt(row.earlier_hashes) is None:
                    self.notice(f"{stuck}; its replacement {new.tx_hash} was not taken: {err}")
                return row
        self.notice(f"{stuck}; replaced by {new.tx_hash} ({fee_summary(new.raw)}), same intent")
        return row

    def _holding(self, row: TxRow[S], receipt: TxReceipt, action: str) -> TxRow[S]:
        """The row with the mined signing as its transaction (an earlier one it replaced may be the one mined)."""
        mined = bytes(receipt["transactionHash"])
        if row.tx_hash is None or mined == row.tx_hash:
            return row
        from attest.chain.tx import SignedTx

        raw = next(raw for tx_hash, raw in row.earlier if tx_hash == mined)
        return self.log.tx_record_replaced(row, SignedTx(action, row.nonce or 0, "0x" + mined.hex(), raw))

    def _rejected(self, row: TxRow[S], err: TransactionRejected) -> TxRow[S]:
        """A static call refused it: nothing was signed. An intent records why; a row dropped or failed before
        keeps its own reason."""
        return self.log.tx_record(row, "failed", error=err.reason) if row.status == "intent" else row

    def _unsent(self, row: TxRow[S], err: ChainError) -> TxRow[S]:
        """A broadcast failed. Through an outage the bytes may have landed: the row stays signed for the
        reconcile. Refused by the node, they never will."""
        return row if isinstance(err, RpcUnavailable) else self.log.tx_record(row, "dropped", error=str(err))

    def _mined(self, row: TxRow[S], receipt: TxReceipt, *, crash: bool = True) -> TxRow[S]:
        if receipt["status"] != 1:
            self.sender.reverted()
            return self.log.tx_record(row, "failed", error="reverted on chain", receipt=receipt)
        row = self.log.tx_record(row, "mined", receipt=receipt)
        if crash:
            checkpoint(f"{row.kind}-mined")
        return row

    @staticmethod
    def _result(row: TxRow[S], receipt: TxReceipt | None, action: str) -> SendResult[S]:
        if row.status == "mined":
            return SendResult(row, receipt=receipt)
        if row.status == "failed" and receipt is not None:
            message = f"{action}: transaction {row.hash_hex} reverted on chain"
            return SendResult(row, message, receipt, ChainError(message))
        return SendResult(row, row.error)


def send_once(
    log: TxLog[S],
    subject: S,
    kind: str,
    sender: Sender,
    call: Call,
    action: str,
    *,
    repeatable: bool = False,
    notice: Callable[[str], None] | None = None,
) -> TxReceipt:
    """For a flow that stops at the first failure (the asserter's): `Outbox.send`, its receipt or its error
    raised."""
    outbox = Outbox(log, sender, resign_lost=False, notice=notice)
    return outbox.send(subject, kind, lambda: call, action, repeatable=repeatable).landed()


def settle_open(
    log: TxLog[S], subject: S, kind: str, sender: Sender, action: str, *, notice: Callable[[str], None] | None = None
) -> TxReceipt | None:
    """`Outbox.settle_open` for a flow that stops at the first failure: the receipt of the transaction that was
    in flight, or None when there was none or it was dropped."""
    result = Outbox(log, sender, resign_lost=False, notice=notice).settle_open(subject, kind, action)
    return None if result is None else result.landed()
