"""The bond currency: an ERC-20 read through the ABI we ship, amounts shown in its own units."""

from __future__ import annotations

from functools import cached_property

from hexbytes import HexBytes
from web3 import Web3
from web3.contract.contract import ContractFunction

from attest.chain.abi import method
from attest.chain.artifacts import shipped
from attest.units import format_units, parse_units


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

    def has_code(self) -> bool:
        """Whether a contract is at the address. Asked with `decimals()`, which the plan reads anyway (its prefetch
        batch carries it): only an empty answer, which is what an address without code gives, costs a round trip
        to read the code itself."""
        request = {"to": self.address, "data": HexBytes(method("TestnetERC20", "decimals").encode())}
        return bool(self.w3.eth.call(request)) or bool(self.w3.eth.get_code(self.address))  # type: ignore[arg-type]

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
        return f"{format_units(amount, self.decimals)} {self.symbol}"
