"""The one outbox engine over both transaction logs (the asserter's ledger, the disputer's state), against a
scripted sender: one vocabulary, never a second signature while one can still land."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from typing import Any

import pytest

from attest.chain.outbox import Outbox, TxLog
from attest.chain.tx import FeePolicy, SignedTx
from attest.errors import ChainError, RpcUnavailable
from attest.ledger import Ledger
from disputer.store import DisputerStore
from tests.support.postgres import StoreAt

AID = b"\x01" * 32


@dataclass
class ScriptedSender:
    """Signs with consecutive nonces; `refuse`/`outage` make the next broadcast fail, `status` is each receipt's."""

    address: str = "0x" + "ab" * 20
    nonce: int = 0
    status: int = 1
    refuse: bool = False
    outage: bool = False
    signed: list[SignedTx] = field(default_factory=list)
    landed: dict[str, dict[str, Any]] = field(default_factory=dict)
    fees: FeePolicy = field(default_factory=FeePolicy)

    def prepare(self, call: object, action: str) -> SignedTx:
        tx = SignedTx(action, self.nonce, "0x" + bytes([self.nonce + 1]).hex() * 32, b"\x02" + bytes([self.nonce]))
        self.nonce += 1
        self.signed.append(tx)
        return tx

    def signing(self) -> AbstractContextManager[object]:
        return nullcontext()

    def broadcast(self, signed: SignedTx) -> None:
        if self.outage:
            self.outage = False
            raise RpcUnavailable("the RPC is down")
        if self.refuse:
            self.refuse = False
            raise ChainError(f"{signed.action}: the node refused transaction {signed.tx_hash}")
        mined = bytes.fromhex(signed.tx_hash[2:])
        self.landed[signed.tx_hash] = {
            "status": self.status,
            "blockNumber": 7,
            "gasUsed": 21000,
            "transactionHash": mined,
        }

    def wait(self, tx_hash: str, action: str) -> dict[str, Any]:
        return self.landed[tx_hash]

    def receipt(self, tx_hash: str) -> dict[str, Any] | None:
        return self.landed.get(tx_hash)

    def reverted(self) -> None:
        pass

    def first_receipt(self, tx_hashes: list[str]) -> dict[str, Any] | None:
        return next((self.landed[h] for h in tx_hashes if h in self.landed), None)

    def poll(self, tx_hashes: list[str], until: float) -> dict[str, Any] | None:
        return self.first_receipt(tx_hashes)

    def reconcile(self, signed: SignedTx, earlier: list[str], *, wait: Any) -> dict[str, Any] | None:
        if signed.tx_hash not in self.landed:
            self.broadcast(signed)
        return wait()


@pytest.fixture(params=["ledger", "disputer"])
def log(request: pytest.FixtureRequest, store_at: StoreAt) -> Iterator[tuple[TxLog[Any], Any]]:
    if request.param == "ledger":
        with Ledger(store_at("ledger.sqlite")) as ledger:
            subject = ledger.begin(
                network="devnet", chain_id=1, account="dev", asserter="0x" + "11" * 20, query="q", record=b"r",
                digest="0x" + "00" * 32, want_assert=True, plan={},
            )  # fmt: skip
            yield ledger, subject
    else:
        with DisputerStore(store_at("disputer.sqlite")) as store:
            yield store, AID


def send(outbox: Outbox[Any], subject: Any) -> Any:
    return outbox.send(subject, "settle", lambda: object(), "settleAssertion")


def test_a_mined_intent_is_never_signed_again(log: tuple[TxLog[Any], Any]) -> None:
    book, subject = log
    sender = ScriptedSender()
    outbox = Outbox(book, sender, resign_lost=False)
    first = send(outbox, subject)
    assert first.mined and first.receipt is not None and first.row.status == "mined"
    again = send(outbox, subject)
    assert again.mined and again.row.tx_hash == first.row.tx_hash and len(sender.signed) == 1


def test_bytes_sent_through_an_outage_are_reconciled_not_signed_again(log: tuple[TxLog[Any], Any]) -> None:
    book, subject = log
    sender = ScriptedSender(outage=True)
    outbox = Outbox(book, sender, resign_lost=False)
    failed = send(outbox, subject)
    assert failed.row.status == "signed" and isinstance(failed.failure, RpcUnavailable)
    with pytest.raises(RpcUnavailable):
        failed.landed()
    done = send(outbox, subject)
    assert done.mined and done.row.tx_hash == failed.row.tx_hash and len(sender.signed) == 1


def test_refused_bytes_are_dropped_and_the_intent_signed_anew(log: tuple[TxLog[Any], Any]) -> None:
    book, subject = log
    sender = ScriptedSender(refuse=True)
    outbox = Outbox(book, sender, resign_lost=False)
    refused = send(outbox, subject)
    assert refused.row.status == "dropped" and "refused" in (refused.row.error or "")
    done = send(outbox, subject)
    assert done.mined and done.row.tx_hash != refused.row.tx_hash and len(sender.signed) == 2


def test_a_revert_is_failed_with_its_reason(log: tuple[TxLog[Any], Any]) -> None:
    book, subject = log
    sender = ScriptedSender(status=0)
    result = send(Outbox(book, sender, resign_lost=False), subject)
    assert result.row.status == "failed" and result.row.error == "reverted on chain"
    with pytest.raises(ChainError, match=r"settleAssertion: transaction 0x[0-9a-f]+ reverted on chain"):
        result.landed()


def test_a_lost_mined_transaction_is_rebroadcast_or_signed_again(log: tuple[TxLog[Any], Any]) -> None:
    """The asserter's outbox rebroadcasts the same bytes; the disputer's signs again (its watcher saw a reorg)."""
    book, subject = log
    sender = ScriptedSender()
    first = send(Outbox(book, sender, resign_lost=False), subject)
    sender.landed.clear()  # a reorg took it away, its nonce is free again
    same = send(Outbox(book, sender, resign_lost=False), subject)
    assert same.mined and same.row.tx_hash == first.row.tx_hash and len(sender.signed) == 1
    sender.landed.clear()
    reopened: list[str] = []
    outbox = Outbox(book, sender, resign_lost=True, reopened=lambda _row, why: reopened.append(why))
    anew = send(outbox, subject)
    assert anew.mined and anew.row.tx_hash != first.row.tx_hash and len(sender.signed) == 2
    assert reopened == ["a reorg removed it from the chain"]


def test_an_intent_another_process_signed_while_we_waited_for_the_lock_is_not_signed_again(
    log: tuple[TxLog[Any], Any],
) -> None:
    """Both read the intent unsigned; the rival takes the signing lock first and sends. Under the lock the row is
    read again, so the second settles the rival's transaction instead of signing another (a second assertion)."""
    book, subject = log
    sender = ScriptedSender()
    rival = Outbox(book, sender, resign_lost=False)
    waited: list[bool] = []

    class RivalFirst(ScriptedSender):
        def signing(self) -> AbstractContextManager[object]:
            if not waited:
                waited.append(True)
                send(rival, subject)  # the other process, holding the lock before us
            return nullcontext()

    ours = RivalFirst(landed=sender.landed, signed=sender.signed)
    ours.nonce = 100
    result = send(Outbox(book, ours, resign_lost=False), subject)
    assert waited and result.mined and len(sender.signed) == 1
    assert result.row.nonce == sender.signed[0].nonce == 0  # the rival's transaction, settled
