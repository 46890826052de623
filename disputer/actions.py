"""What the disputer sends: disputes, bond approvals, votes and settlements, each through the store's outbox.

Every transaction follows one path: an outbox row for (assertion, kind), a static call, the signed bytes and
their hash recorded, then the bytes sent. A row already signed or sent is reconciled instead (its receipt, or
the same bytes re-broadcast, or marked dropped when its nonce went elsewhere), so a restart at any point never
sends one intent twice. `ATTEST_CRASH_AT=<kind>-signed|<kind>-sent` kills the process right after that step
is recorded (the crash tests use it, as the asserter's outbox does).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from web3 import Web3
from web3.contract.contract import ContractFunction
from web3.exceptions import ContractLogicError

from attest.chain.artifacts import shipped
from attest.chain.connect import ChainContext
from attest.chain.oov3 import Assertion
from attest.chain.tx import Sender, SignedTx, revert_reason
from attest.chain.voting import VotePhase, VotingClient, new_salt, vote_hash
from attest.errors import ChainError, TransactionRejected
from attest.flow.outbox import checkpoint
from attest.flow.token import Token
from disputer.store import DisputerStore, TxKind, TxRow

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SendResult:
    row: TxRow
    error: str | None = None  # why nothing was sent, or why what was sent did not land

    @property
    def mined(self) -> bool:
        return self.row.status == "mined"

    @property
    def tx_hash(self) -> str | None:
        return None if self.row.tx_hash is None else "0x" + self.row.tx_hash.hex()


def ancillary_data(assertion_id: bytes, asserter: str) -> bytes:
    """What OOv3 stamps on its price request: `assertionId:<64 hex>,ooAsserter:<40 hex>`, lowercase, no 0x."""
    return f"assertionId:{assertion_id.hex()},ooAsserter:{asserter.lower().removeprefix('0x')}".encode()


class Actor:
    def __init__(self, ctx: ChainContext, store: DisputerStore, sender: Sender) -> None:
        self.ctx = ctx
        self.store = store
        self.sender = sender

    # -- the outbox ----------------------------------------------------------------------------------------
    def send(self, assertion_id: bytes, kind: TxKind, build: Callable[[], ContractFunction], action: str) -> SendResult:
        row = self.store.tx_intent(assertion_id, kind)
        if row.status == "mined":
            return SendResult(row)
        if row.status in ("signed", "sent"):
            row = self._reconcile(row, action)
            if row.status != "dropped":
                return SendResult(row, None if row.status == "mined" else row.error)
        try:
            signed = self.sender.prepare(build(), action)
        except TransactionRejected as err:
            if row.status == "intent":
                row = self.store.tx_failed(row.id, err.reason)
            return SendResult(row, err.reason)
        except ChainError as err:  # not enough gas money: nothing was signed
            return SendResult(row, str(err))
        row = self.store.tx_signed(
            row.id, signed.nonce, bytes.fromhex(signed.tx_hash[2:]), signed.raw, sender=self.sender.address
        )
        checkpoint(f"{kind}-signed")
        try:
            self.sender.broadcast(signed)
        except ChainError as err:
            return SendResult(self.store.tx_failed(row.id, str(err)), str(err))
        row = self.store.tx_sent(row.id)
        checkpoint(f"{kind}-sent")
        try:
            receipt = self.sender.wait(signed.tx_hash, action)
        except ChainError as err:  # still in flight: the next reconcile finds out
            return SendResult(row, str(err))
        row = self.store.tx_mined(row.id, int(receipt["status"]))
        return SendResult(row, None if row.status == "mined" else f"{action} reverted on chain")

    def _reconcile(self, row: TxRow, action: str) -> TxRow:
        assert row.tx_hash is not None and row.raw is not None and row.nonce is not None
        signed = SignedTx(action, row.nonce, "0x" + row.tx_hash.hex(), row.raw)
        try:
            receipt = self.sender.reconcile(signed)
        except ChainError as err:
            log.warning("%s %s is still unresolved: %s", action, signed.tx_hash, err)
            return row
        if receipt is None:
            return self.store.tx_dropped(row.id)
        return self.store.tx_mined(row.id, int(receipt["status"]))

    def reconcile_open(self) -> list[TxRow]:
        """At start: settle what every signed or sent row became (intent rows sent nothing and wait for their
        action to come round again)."""
        done = []
        for row in self.store.open_txs():
            if row.status in ("signed", "sent"):
                done.append(self._reconcile(row, row.kind))
        return done

    # -- disputes ------------------------------------------------------------------------------------------
    def dispute_call(self, assertion_id: bytes) -> ContractFunction:
        return self.ctx.oov3.contract.functions.disputeAssertion(assertion_id, self.sender.address)

    def dispute_static_error(self, assertion_id: bytes) -> str | None:
        """Why disputeAssertion would revert now, or None when its static call passes."""
        try:
            self.dispute_call(assertion_id).call({"from": self.sender.address})
        except ContractLogicError as err:
            return revert_reason(err, shipped("OptimisticOracleV3").abi)
        return None

    def dispute(self, assertion_id: bytes, *, currency: str, bond: int, approve_first: bool) -> SendResult:
        if approve_first:
            token = Token(self.ctx.w3, currency)
            spender = self.ctx.oov3.address
            approved = self.send(assertion_id, "approve", lambda: token.approve_call(spender, bond), "approve")
            if not approved.mined:
                return approved
        return self.send(assertion_id, "dispute", lambda: self.dispute_call(assertion_id), "disputeAssertion")

    # -- settling ------------------------------------------------------------------------------------------
    def settle(self, assertion_id: bytes) -> SendResult:
        return self.send(assertion_id, "settle", lambda: self.ctx.oov3.settle_call(assertion_id), "settleAssertion")

    # -- votes ---------------------------------------------------------------------------------------------
    def push_price(self, assertion: Assertion, price: int) -> SendResult | None:
        """MockOracleAncillary (devnet, testnets): push the price; None when a price is already there."""
        oracle = self.ctx.w3.eth.contract(
            address=Web3.to_checksum_address(self.ctx.oracle_address()), abi=shipped("MockOracleAncillary").abi
        )
        ancillary = ancillary_data(assertion.assertion_id, assertion.asserter)
        args = (assertion.identifier, assertion.assertion_time, ancillary)
        if oracle.functions.hasPrice(*args).call():
            return None
        return self.send(
            assertion.assertion_id, "vote_push", lambda: oracle.functions.pushPrice(*args, price), "pushPrice"
        )

    def dvm_vote(self, assertion: Assertion, price: int) -> str:
        """VotingV2: commit in the commit phase (the salt stored first), reveal in the reveal phase. Returns what
        happened, for the log."""
        voting = VotingClient(self.ctx.w3, self.ctx.oracle_address())
        ancillary = ancillary_data(assertion.assertion_id, assertion.asserter)
        aid = assertion.assertion_id
        round_id = voting.current_round_id()
        request = next(
            (
                r
                for r in voting.pending_requests()
                if r.ancillary_data == ancillary
                and r.identifier == assertion.identifier
                and r.time == assertion.assertion_time
            ),
            None,
        )
        if request is None:
            return "not up for a vote in this round"
        vote = self.store.vote(aid, round_id)
        if voting.vote_phase() is VotePhase.COMMIT:
            if vote is None:
                vote = self.store.save_salt(
                    aid, round_id=round_id, request_id=request.request_id, price=price, salt=new_salt()
                )
            if vote.phase != "salted":
                return f"committed in round {round_id}"
            voter = voting.voter_for(self.sender.address)  # the staker, when we vote as its delegate
            digest = vote_hash(vote.price, vote.salt, voter, request.time, ancillary, round_id, request.identifier)
            ident, when = request.identifier, request.time
            sent = self.send(aid, "commit", lambda: voting.commit_call(ident, when, ancillary, digest), "commitVote")
            if not sent.mined or sent.row.tx_hash is None:
                return f"commit not done: {sent.error}"
            self.store.vote_committed(aid, round_id, sent.row.tx_hash)
            return f"committed in round {round_id}"
        if vote is None or vote.phase == "salted":
            return f"no commit in round {round_id} to reveal"
        if vote.phase == "revealed":
            return f"revealed in round {round_id}"
        ident, when, price_, salt = request.identifier, request.time, vote.price, vote.salt
        sent = self.send(aid, "reveal", lambda: voting.reveal_call(ident, when, price_, ancillary, salt), "revealVote")
        if not sent.mined or sent.row.tx_hash is None:
            return f"reveal not done: {sent.error}"
        self.store.vote_revealed(aid, round_id, sent.row.tx_hash)
        return f"revealed in round {round_id}"
