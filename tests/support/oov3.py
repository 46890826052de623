"""OptimisticOracleV3 sends the tests and benchmarks make as asserter, disputer or settler: the runtime prepares
these calls through its outboxes (never signing twice), the tests simply send them and wait."""

from __future__ import annotations

from typing import Any

from web3 import Web3
from web3.types import TxReceipt

from attest.chain.oov3 import AssertionMade, OptimisticOracleV3
from attest.chain.tx import Sender


def assert_truth(oov3: OptimisticOracleV3, sender: Sender, **kwargs: Any) -> tuple[AssertionMade, TxReceipt]:
    """Assert and wait; keyword arguments as `OptimisticOracleV3.assert_truth_call`."""
    receipt = sender.transact(oov3.assert_truth_call(**kwargs), "assertTruth")
    return oov3.made_in(receipt), receipt


def dispute(oov3: OptimisticOracleV3, sender: Sender, assertion_id: bytes, disputer: str) -> TxReceipt:
    call = oov3.contract.functions.disputeAssertion(assertion_id, Web3.to_checksum_address(disputer))
    return sender.transact(call, "disputeAssertion")


def settle(oov3: OptimisticOracleV3, sender: Sender, assertion_id: bytes) -> TxReceipt:
    return sender.transact(oov3.settle_call(assertion_id), "settleAssertion")


def sync_uma_params(oov3: OptimisticOracleV3, sender: Sender, identifier: str, currency: str) -> TxReceipt:
    return sender.transact(oov3.sync_uma_params_call(identifier, currency), "syncUmaParams")


def burned_bond_percentage(oov3: OptimisticOracleV3) -> int:
    return int(oov3.contract.functions.burnedBondPercentage().call())
