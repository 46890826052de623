"""The disputer's money: token balances and allowances, the bond limits of the config, and the bonds at stake.

Bonds at stake are read from the store (our disputes not settled yet, and decisions to dispute about to be
sent), so the budget holds across restarts without a ledger of its own.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from web3 import Web3

from attest.flow.token import Token
from attest.units import to_units
from disputer.store import DisputerStore


@dataclass(frozen=True)
class Funds:
    """One currency's money as a batch of decisions starts, in the token's smallest units."""

    balance: int
    allowance: int  # what the oracle (OOv3) may take from us
    budget_left: int | None  # None: no total budget configured
    max_bond: int | None  # the largest bond one dispute may put up; None: no limit
    decimals: int  # the currency's, so amounts are shown in its own units
    symbol: str


class Wallet:
    def __init__(
        self,
        w3: Web3,
        store: DisputerStore,
        chain_id: int,
        *,
        owner: str,
        spender: str,
        max_bond_per_dispute: Decimal | None,
        total_budget: Decimal | None,
    ) -> None:
        self.w3 = w3
        self.store = store
        self.chain_id = chain_id
        self.owner = owner
        self.spender = spender
        self.max_bond_per_dispute = max_bond_per_dispute
        self.total_budget = total_budget
        self._tokens: dict[str, Token] = {}

    def token(self, currency: str) -> Token:
        key = currency.lower()
        if key not in self._tokens:
            self._tokens[key] = Token(self.w3, currency)
        return self._tokens[key]

    def allowance(self, currency: str) -> int:
        return self.token(currency).allowance(self.owner, self.spender)

    def funds(self, currency: str) -> Funds:
        token = self.token(currency)
        total = _units(token, self.total_budget, "total_budget")
        return Funds(
            balance=token.balance(self.owner),
            allowance=token.allowance(self.owner, self.spender),
            budget_left=None if total is None else total - self.bonds_at_stake(currency),
            max_bond=_units(token, self.max_bond_per_dispute, "max_bond_per_dispute"),
            decimals=token.decimals,
            symbol=token.symbol,
        )

    def bonds_at_stake(self, currency: str) -> int:
        """Bonds of our disputes not settled yet (sent or about to be), in one currency."""
        at_stake = 0
        for a in self.store.assertions(self.chain_id, statuses=("evaluated", "disputed"), ours=None):
            if a.currency.lower() != currency.lower():
                continue
            if a.status == "disputed" and (a.disputed_by or "").lower() == self.owner.lower():
                at_stake += a.bond
            elif a.status == "evaluated" and (d := self.store.decision(a.assertion_id)) is not None:
                at_stake += a.bond if d.action == "dispute" and not d.dry_run else 0
        return at_stake


def _units(token: Token, amount: Decimal | None, key: str) -> int | None:
    """A [disputer] amount in the currency's own decimals (6 for USDC, 18 for most tokens)."""
    return None if amount is None else to_units(amount, token.decimals, f"[disputer] {key}")
