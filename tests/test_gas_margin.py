"""Every transaction gets a gas margin over its estimate: the block it lands in is not the one it was estimated
on, and work that grows with the block time (VotingV2's staking) otherwise runs out of gas at the limit."""

from __future__ import annotations

from pathlib import Path

import pytest
from eth_account.signers.local import LocalAccount
from eth_account.typed_transactions import TypedTransaction
from hexbytes import HexBytes
from web3.types import RPCEndpoint, TxReceipt

from attest.chain.tx import Sender
from attest.config import DEFAULT_GAS_MARGIN_PCT, NetworkConfig
from attest.errors import ChainError
from bench.common import compile_solidity
from tests.conftest import LocalChain

TIME_COST = Path(__file__).parent / "fixtures" / "contracts" / "TimeCost.sol"


def _estimated_then_late(chain: LocalChain, key: LocalAccount, margin: int) -> tuple[int, int, TxReceipt]:
    """Deploy TimeCost, let 100 s pass, sign `work()` with `margin`, let 10 s more pass before it is mined.
    Returns (estimate, the signed gas limit, receipt); raises ChainError when it reverted."""
    sender = Sender(chain.w3, key, gas_margin_pct=margin)
    contract = sender.deploy(compile_solidity(TIME_COST, "TimeCost"))
    chain.advance(100)
    estimate = int(contract.functions.work().estimate_gas({"from": key.address}))
    signed = sender.prepare(contract.functions.work(), "work")
    limit = int(TypedTransaction.from_bytes(HexBytes(signed.raw)).as_dict()["gas"])
    chain.w3.provider.make_request(RPCEndpoint("evm_increaseTime"), [10])
    sender.broadcast(signed)
    return estimate, limit, sender.confirm(signed)


def test_a_transaction_whose_gas_grows_before_inclusion_still_lands(
    local_chain: LocalChain, dev_keys: list[LocalAccount]
) -> None:
    estimate, limit, receipt = _estimated_then_late(local_chain, dev_keys[3], DEFAULT_GAS_MARGIN_PCT)
    assert limit == estimate * (100 + DEFAULT_GAS_MARGIN_PCT) // 100
    assert estimate < int(receipt["gasUsed"]) <= limit  # it did need more than its estimate


def test_without_a_margin_the_same_transaction_runs_out_of_gas(
    local_chain: LocalChain, dev_keys: list[LocalAccount]
) -> None:
    """The control: with no margin the very same sequence reverts, so the test above proves the margin."""
    with pytest.raises(ChainError, match="reverted on chain"):
        _estimated_then_late(local_chain, dev_keys[3], 0)


def test_the_margin_is_a_network_setting(local_chain: LocalChain, dev_keys: list[LocalAccount]) -> None:
    assert NetworkConfig().gas_margin_pct == DEFAULT_GAS_MARGIN_PCT
    assert NetworkConfig(gas_margin_pct=50).gas_margin_pct == 50
    with pytest.raises(ValueError):
        NetworkConfig(gas_margin_pct=-1)
    with pytest.raises(ValueError):
        Sender(local_chain.w3, dev_keys[3], gas_margin_pct=301)
