"""Token amounts: the decimal a person writes ("250.5") and the integer a contract counts, in the token's own
decimals (6 for USDC on public chains, 18 for most others). Pure."""

from __future__ import annotations

from decimal import Context, Decimal, InvalidOperation

from attest.errors import BondError

# Exact for any uint256 at any decimals: the default context keeps 28 digits and would round a large bond.
_EXACT = Context(prec=160)


def format_units(amount: int, decimals: int) -> str:
    """The integer a contract counts as a decimal in token units: 250500000 with 6 decimals is "250.5"."""
    value = Decimal(amount).scaleb(-decimals, _EXACT)
    text = f"{value:f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def parse_units(text: str, decimals: int) -> int:
    try:
        amount = Decimal(text)
    except InvalidOperation:
        raise BondError(f"{text!r} is not an amount; write a decimal number such as 250 or 0.5") from None
    raw = amount.scaleb(decimals, _EXACT) if amount.is_finite() else amount
    if not amount.is_finite() or amount <= 0 or raw != raw.to_integral_value():
        raise BondError(f"{text} is not a positive amount with at most {decimals} decimals")
    return int(raw)


def to_units(amount: Decimal, decimals: int, what: str) -> int:
    """A configured amount (zero allowed) as the integer the contract counts; one finer than the token's smallest
    unit is refused (rounding it would change a limit silently)."""
    raw = amount.scaleb(decimals, _EXACT)
    if raw != raw.to_integral_value():
        raise BondError(f"{what} = {amount:f} has more than the currency's {decimals} decimals; round it")
    return int(raw)
