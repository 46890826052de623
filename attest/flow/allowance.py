"""How much the asserter approves when several asks of one ATTEST_HOME share an account.

An ERC-20 approval sets one allowance for the account; every assertTruth takes its bond from it. The rule, read
under the account's signing lock (so no other ask signs meanwhile): the allowance left once every transaction
of the account already sent has executed must cover the bonds of every attestation still to sign its assertion
(this one included). If it does not, this ask approves exactly that sum. Each assertion signed later, with a
higher nonce, then finds its bond there whatever order the asks run in, and once they have all asserted the
allowance is back at zero: nothing is left approved for an assertion that was never made. (Approving one bond
per ask instead lets another ask's assertion spend it first; holding the lock from an approval to its
assertion would hold it through a receipt wait.) An ask that died before asserting counts until `attest resume`
finishes it: its bond stays approved for it meanwhile.
"""

from __future__ import annotations

from dataclasses import dataclass

from attest.chain.tx import Sender
from attest.flow.token import Token
from attest.ledger import Attestation, Ledger


@dataclass(frozen=True)
class Allowance:
    """What the allowance asks of this assertion now."""

    approve: int | None  # approve this amount first; None: it is covered
    wait: bool  # an approval of this account is sent but not executed yet: decide again once it is


def plan_allowance(ledger: Ledger, a: Attestation, token: Token, spender: str, sender: Sender) -> Allowance:
    """Call holding `sender.signing()`. The chain is read at one block; transactions of the account from before
    it have executed, those sent since (pending) will before anything signed now."""
    assert a.bond is not None and a.currency is not None and a.oov3 is not None
    w3 = sender.w3
    block = w3.eth.block_number
    executed = w3.eth.get_transaction_count(sender.address, block)
    pending = w3.eth.get_transaction_count(sender.address, "pending")
    left = token.allowance(sender.address, spender, block=block)
    same_bond = (a.currency.lower(), a.oov3.lower())
    for row, owner in ledger.in_flight(chain_id=a.chain_id, genesis_hash=a.genesis_hash, asserter=sender.address):
        # A row signed but never sent (its process died before sending) holds no place in the nonce order.
        if row.nonce is None or not executed <= row.nonce < pending:
            continue
        if ((owner.currency or "").lower(), (owner.oov3 or "").lower()) != same_bond:
            continue
        if row.kind == "approve":
            return Allowance(None, wait=True)
        if row.kind == "assert" and owner.bond is not None:
            left -= owner.bond
    needed = 0
    waiting = ledger.to_assert(
        chain_id=a.chain_id, genesis_hash=a.genesis_hash, asserter=sender.address, oov3=a.oov3, currency=a.currency
    )
    for other in waiting:
        latest = ledger.tx_intent(other.id, "assert")
        sent = latest.status in ("signed", "sent") and latest.nonce is not None and latest.nonce < pending
        if latest.status != "mined" and not sent:
            needed += other.bond or 0
    return Allowance(None if left >= needed else needed, wait=False)
