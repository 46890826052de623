"""What the disputer sends: disputes, bond approvals, votes and settlements, each through the outbox engine
(attest/chain/outbox.py) over the store's outbox rows.

Every transaction follows one path: an outbox row for (assertion, kind), a static call, the signed bytes and
their hash recorded, then the bytes sent. A row already signed or sent is reconciled instead (its receipt, or
the same bytes re-broadcast, or marked dropped when its nonce went elsewhere), so a restart at any point never
sends one intent twice. `ATTEST_CRASH_AT=<kind>-signed|<kind>-sent|<kind>-mined` kills the process right
after that step is recorded (the crash tests use it, as the asserter's outbox does).

A mined row is final only while its effect lasts: one a reorg removed, an approval another dispute spent, or a
vote commit or reveal of an earlier round (the request rolled) is reopened (`dropped`, with the reason) and its
intent signed again, so the same (assertion, kind) row serves every round without a second row.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TypeAlias

from hexbytes import HexBytes
from web3 import Web3
from web3.contract.contract import ContractFunction
from web3.exceptions import ContractLogicError, TransactionNotFound
from web3.logs import DISCARD
from web3.types import TxReceipt

from attest.chain import outbox
from attest.chain.abi import EncodedCall, method
from attest.chain.artifacts import shipped
from attest.chain.oov3 import Assertion
from attest.chain.outbox import IN_FLIGHT, REORGED, SIGNABLE, Outbox, TxRow
from attest.chain.tx import Sender, revert_reason
from attest.chain.voting import RoundPhase, VotingClient, new_salt, vote_hash
from attest.connect import ChainContext
from attest.errors import ChainError, ConfigError
from attest.flow.token import Token
from disputer.store import DisputerStore, TxKind, Vote

log = logging.getLogger(__name__)

SendResult: TypeAlias = outbox.SendResult[bytes]  # the disputer's transactions act for an assertion id


def ancillary_data(assertion_id: bytes, asserter: str) -> bytes:
    """What OOv3 stamps on its price request: `assertionId:<64 hex>,ooAsserter:<40 hex>`, lowercase, no 0x."""
    return f"assertionId:{assertion_id.hex()},ooAsserter:{asserter.lower().removeprefix('0x')}".encode()


GONE = "the assertion left the chain in a reorg; nothing more is sent for it"


def release_reorged(store: DisputerStore, w3: Web3, assertion_id: bytes, *, gone: bool) -> list[TxRow[bytes]]:
    """After a reorg removed an assertion (`gone`) or its dispute: rows whose transaction is no longer on chain.

    For a gone assertion every open row is failed with the reason (signed bytes are never rebroadcast: they
    would only revert); a mined dispute whose receipt vanished is reopened, so the dispute is sent again if the
    assertion is (still, or again) on chain. Returns the rows changed."""
    changed = []
    for row in store.txs_for(assertion_id):
        on_chain = row.tx_hash is not None and _receipt(w3, row.tx_hash) is not None
        if gone and row.status in ("intent", "signed", "sent") and not on_chain:
            changed.append(store.tx_failed(row.id, GONE))
        elif row.status == "mined" and row.kind == "dispute" and not on_chain:
            changed.append(store.tx_reopen(row.id, REORGED))
    return changed


def _receipt(w3: Web3, tx_hash: bytes) -> TxReceipt | None:
    try:
        return w3.eth.get_transaction_receipt(HexBytes(tx_hash))
    except TransactionNotFound:
        return None


class Actor:
    def __init__(self, ctx: ChainContext, store: DisputerStore, sender: Sender) -> None:
        self.ctx = ctx
        self.store = store
        self.sender = sender
        self.outbox = Outbox(store, sender, resign_lost=True, abandon=self._vanished, reopened=self._reopened)

    # -- the outbox ----------------------------------------------------------------------------------------
    def send(
        self,
        assertion_id: bytes,
        kind: TxKind,
        build: Callable[[], ContractFunction | EncodedCall],
        action: str,
        *,
        spent: Callable[[TxReceipt], str | None] | None = None,
    ) -> SendResult:
        """Send one intent once. `spent(receipt)` says why a mined row's effect no longer counts (None: it does)."""
        return self.outbox.send(assertion_id, kind, build, action, spent=spent)

    @staticmethod
    def _reopened(row: TxRow[bytes], why: str) -> None:
        log.info("%s for 0x%s is sent again: %s", row.kind, row.subject.hex(), why)

    def _vanished(self, row: TxRow[bytes]) -> str | None:
        """Rebroadcast, a dispute's bytes could only revert (and spend gas) once a reorg took its assertion away."""
        if row.kind == "dispute" and not self.ctx.oov3.get_assertion(row.subject).exists:
            return GONE
        return None

    def reconcile_open(self) -> list[TxRow[bytes]]:
        """At start: settle what every signed or sent row became (intent rows sent nothing and wait for their
        action to come round again)."""
        done = []
        # In nonce order: a batch's later transactions can only be mined once its earlier ones are.
        open_rows = [row for row in self.store.open_txs() if row.status in IN_FLIGHT]
        for row in sorted(open_rows, key=lambda r: (r.sender or "", r.nonce or 0, r.id)):
            try:
                done.append(self.outbox.reconcile(row, row.kind)[0])
            except ChainError as err:
                log.warning("%s %s is still unresolved: %s", row.kind, row.hash_hex, err)
                done.append(row)
        return done

    # -- disputes ------------------------------------------------------------------------------------------
    def dispute_call(self, assertion_id: bytes) -> EncodedCall:
        """disputeAssertion(assertion_id, us), encoded without web3's contract machinery (it runs per dispute)."""
        data = method("OptimisticOracleV3", "disputeAssertion").encode(assertion_id, self.sender.address)
        return EncodedCall(self.ctx.w3, self.ctx.oov3.address, data, shipped("OptimisticOracleV3").abi)

    def dispute_static_error(self, assertion_id: bytes) -> str | None:
        """Why disputeAssertion would revert now, or None when its static call passes."""
        try:
            self.dispute_call(assertion_id).static_call(self.sender.address)
        except ContractLogicError as err:
            return revert_reason(err, shipped("OptimisticOracleV3").abi)
        return None

    def dispute(self, assertion_id: bytes, *, currency: str, bond: int, approve_first: bool) -> SendResult:
        if approve_first:
            approved = self.approve(assertion_id, currency, bond)
            if not approved.mined:
                return self._ours_already(assertion_id, approved)
        sent = self.send(assertion_id, "dispute", lambda: self.dispute_call(assertion_id), "disputeAssertion")
        return self._ours_already(assertion_id, sent)

    def _ours_already(self, assertion_id: bytes, result: SendResult) -> SendResult:
        """A dispute that did not land, when the chain shows the assertion disputed by this account all the same
        (another disputer signing with this key got there first): done, not failed."""
        if result.mined or result.row.status in IN_FLIGHT:  # landed, or may still land: the outbox finds out
            return result
        try:
            chain = self.ctx.oov3.get_assertion(assertion_id)
        except ChainError:  # the node is out of reach: the result stands, the next step looks again
            return result
        if not chain.disputed or chain.disputer.lower() != self.sender.address.lower():
            return result
        log.info("0x%s was already disputed by this account (another disputer with the same key)", assertion_id.hex())
        return SendResult(result.row, already=True)

    def approve(self, assertion_id: bytes, currency: str, amount: int) -> SendResult:
        """Set the oracle's allowance to `amount`, through the outbox row (assertion_id, approve)."""
        token = Token(self.ctx.w3, currency)
        spender = self.ctx.oov3.address

        def spent(_receipt: TxReceipt) -> str | None:
            # Approvals set one shared allowance: another dispute may have used this one before ours was sent.
            if token.allowance(self.sender.address, spender) >= amount:
                return None
            return "its allowance was spent before this dispute was sent"

        return self.send(assertion_id, "approve", lambda: token.approve_call(spender, amount), "approve", spent=spent)

    def dispute_many(
        self, disputes: list[tuple[bytes, int]], *, currency: str, approve: bool
    ) -> dict[bytes, SendResult]:
        """Dispute several assertions (id, bond) in one pipeline: at most one approval (of all their bonds, keyed
        on the first), then every dispute through the outbox's batch pipeline (consecutive nonces, one commit
        per stage). Rows already signed, sent or mined (an earlier attempt) take the one-by-one path; a dispute
        a failed broadcast left unsent is sent again on the next step."""
        results: dict[bytes, SendResult] = {}
        with self.store.transaction():
            rows = {aid: self.store.tx_intent(aid, "dispute") for aid, _bond in disputes}
        fresh = [(aid, bond) for aid, bond in disputes if rows[aid].status in SIGNABLE]
        for aid, bond in disputes:
            if rows[aid].status not in SIGNABLE:
                results[aid] = self.dispute(aid, currency=currency, bond=bond, approve_first=False)
        if not fresh:
            return results
        if approve:
            approved = self.approve(fresh[0][0], currency, sum(bond for _aid, bond in fresh))
            if not approved.mined:
                why = f"its approval did not land: {approved.error}"
                unsent = {aid: SendResult(rows[aid], why) for aid, _bond in fresh}
                return results | {aid: self._ours_already(aid, r) for aid, r in unsent.items()}
        calls = [(aid, self.dispute_call(aid)) for aid, _bond in fresh]
        sent = self.outbox.send_many(calls, "dispute", "disputeAssertion")
        return results | {aid: self._ours_already(aid, r) for aid, r in sent.items()}

    # -- evidence ------------------------------------------------------------------------------------------
    def publish_evidence(self, assertion_id: bytes, uri: str) -> SendResult:
        """Announce a dispute's evidence on the registry (its Evidence event), through the outbox row
        (assertion_id, evidence): one announcement per assertion, across restarts."""
        registry = self.ctx.registry
        if registry is None:
            raise ConfigError("no AttestationRegistry is configured for this network, so evidence cannot be announced")
        abi = shipped("AttestationRegistry").abi

        def build() -> EncodedCall:
            data = method("AttestationRegistry", "publishEvidence").encode(assertion_id, uri)
            return EncodedCall(self.ctx.w3, registry, data, abi)

        return self.send(assertion_id, "evidence", build, "publishEvidence")

    # -- settling ------------------------------------------------------------------------------------------
    def settle(self, assertion_id: bytes) -> SendResult:
        sent = self.send(assertion_id, "settle", lambda: self.ctx.oov3.settle_call(assertion_id), "settleAssertion")
        if sent.mined or sent.row.status in IN_FLIGHT:
            return sent
        try:
            settled = self.ctx.oov3.get_assertion(assertion_id).settled
        except ChainError:
            return sent
        # Another process settled it first: done all the same.
        return SendResult(sent.row, already=True) if settled else sent

    # -- votes ---------------------------------------------------------------------------------------------
    def dvm_vote(self, assertion: Assertion, price: int, voting: VotingClient) -> str:
        """VotingV2: commit in the commit phase (the salt stored first), reveal in the reveal phase. Returns what
        happened, for the log."""
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
        if vote is not None and vote.phase == "salted":
            vote = self._commit_landed(vote, voting)
        if voting.vote_phase() is RoundPhase.COMMIT:
            if vote is None:
                vote = self.store.save_salt(
                    aid, round_id=round_id, request_id=request.request_id, price=price, salt=new_salt()
                )
            if vote.phase != "salted":
                return f"committed in round {round_id}"
            voter = voting.voter_for(self.sender.address)  # the staker, when we vote as its delegate
            digest = vote_hash(vote.price, vote.salt, voter, request.time, ancillary, round_id, request.identifier)
            ident, when = request.identifier, request.time
            sent = self.send(
                aid, "commit", lambda: voting.commit_call(ident, when, ancillary, digest), "commitVote",
                spent=self._other_round(voting, "VoteCommitted", round_id),
            )  # fmt: skip
            if not sent.mined or sent.row.tx_hash is None:
                return f"commit not done: {sent.error}"
            self.store.vote_committed(aid, round_id, sent.row.tx_hash)
            return f"committed in round {round_id}"
        if vote is None or vote.phase == "salted":
            return f"no commit in round {round_id} to reveal"
        if vote.phase == "revealed":
            return f"revealed in round {round_id}"
        ident, when, price_, salt = request.identifier, request.time, vote.price, vote.salt
        sent = self.send(
            aid, "reveal", lambda: voting.reveal_call(ident, when, price_, ancillary, salt), "revealVote",
            spent=self._other_round(voting, "VoteRevealed", round_id),
        )  # fmt: skip
        if not sent.mined or sent.row.tx_hash is None:
            return f"reveal not done: {sent.error}"
        self.store.vote_revealed(aid, round_id, sent.row.tx_hash)
        return f"revealed in round {round_id}"

    def _commit_landed(self, vote: Vote, voting: VotingClient) -> Vote:
        """The vote marked committed when its commit was mined for this round but a crash came before the mark
        (otherwise, once the reveal phase starts, a counted commit would never be revealed)."""
        for row in self.store.txs_for(vote.assertion_id):
            if row.kind != "commit" or row.status != "mined" or row.tx_hash is None:
                continue
            receipt = self.sender.receipt("0x" + row.tx_hash.hex())
            if receipt is not None and self._other_round(voting, "VoteCommitted", vote.round_id)(receipt) is None:
                return self.store.vote_committed(vote.assertion_id, vote.round_id, row.tx_hash)
        return vote

    @staticmethod
    def _other_round(voting: VotingClient, event: str, round_id: int) -> Callable[[TxReceipt], str | None]:
        """A mined commit or reveal counts only in the round its event names: a rolled request votes again."""

        def spent(receipt: TxReceipt) -> str | None:
            logs = voting.contract.events[event]().process_receipt(receipt, errors=DISCARD)
            rounds = {int(e["args"]["roundId"]) for e in logs}
            if round_id in rounds:
                return None
            return f"it was for round {min(rounds, default=-1)}; the request is voted again in round {round_id}"

        return spent
