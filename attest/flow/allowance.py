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
from typing import Any, cast

from hexbytes import HexBytes
from web3 import Web3
from web3.exceptions import Web3Exception
from web3.types import TxParams

from attest.chain.abi import method
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
    executed, pending, left = _read(sender.w3, token, sender.address, spender)
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


def _read(w3: Web3, token: Token, owner: str, spender: str) -> tuple[int, int, int]:
    """(nonce executed at the latest block, pending nonce, allowance at that block): the block number, then one
    JSON-RPC batch for the three."""
    block = w3.eth.block_number
    allowance = method("TestnetERC20", "allowance")
    data = allowance.encode(Web3.to_checksum_address(owner), Web3.to_checksum_address(spender))
    call = cast(TxParams, {"to": Web3.to_checksum_address(token.address), "data": HexBytes(data)})
    account = Web3.to_checksum_address(owner)
    try:
        with w3.batch_requests() as batch:
            batch.add(w3.eth.get_transaction_count(account, block))
            batch.add(w3.eth.get_transaction_count(account, "pending"))
            batch.add(w3.eth.call(call, block))
            answers: list[Any] = list(batch.execute())
    except (Web3Exception, ValueError, TypeError):  # a node that takes no batches: one read each
        answers = [w3.eth.get_transaction_count(account, block), w3.eth.get_transaction_count(account, "pending")]
        answers.append(w3.eth.call(call, block))
    (left,) = allowance.decode(bytes(answers[2]))
    return int(answers[0]), int(answers[1]), int(left)
