"""The bond currency: an ERC-20 read through the ABI we ship, amounts shown in its own units."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from functools import cached_property

from web3 import Web3
from web3.contract.contract import ContractFunction

from attest.chain.abi import method
from attest.chain.artifacts import shipped
from attest.errors import BondError


class Token:
    def __init__(self, w3: Web3, address: str) -> None:
        self.w3 = w3
        self.address = Web3.to_checksum_address(address)
        self.contract = w3.eth.contract(address=self.address, abi=shipped("TestnetERC20").abi)

    @cached_property
    def symbol(self) -> str:
        return str(method("TestnetERC20", "symbol").call(self.w3, self.address)[0])

    @cached_property
    def decimals(self) -> int:
        return int(method("TestnetERC20", "decimals").call(self.w3, self.address)[0])

    def balance(self, owner: str) -> int:
        (amount,) = method("TestnetERC20", "balanceOf").call(self.w3, self.address, Web3.to_checksum_address(owner))
        return int(amount)

    def allowance(self, owner: str, spender: str, *, block: int | str = "latest") -> int:
        args = (Web3.to_checksum_address(owner), Web3.to_checksum_address(spender))
        (amount,) = method("TestnetERC20", "allowance").call(self.w3, self.address, *args, block=block)
        return int(amount)

    def approve_call(self, spender: str, amount: int) -> ContractFunction:
        return self.contract.functions.approve(spender, amount)

    def units(self, text: str) -> int:
        """A decimal amount in token units (`250.5`) as the integer the contract counts."""
        return parse_units(text, self.decimals)

    def show(self, amount: int) -> str:
        value = Decimal(amount) / (Decimal(10) ** self.decimals)
        text = f"{value:f}".rstrip("0").rstrip(".") if "." in f"{value:f}" else f"{value:f}"
        return f"{text} {self.symbol}"


def parse_units(text: str, decimals: int) -> int:
    try:
        amount = Decimal(text)
    except InvalidOperation:
        raise BondError(f"{text!r} is not an amount; write a decimal number such as 250 or 0.5") from None
    raw = amount * (Decimal(10) ** decimals)
    if not amount.is_finite() or amount <= 0 or raw != raw.to_integral_value():
        raise BondError(f"{text} is not a positive amount with at most {decimals} decimals")
    return int(raw)
