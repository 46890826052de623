"""Fees on every transaction: a cap per network refused before anything is signed, and a transaction stuck on a
chain that stopped mining replaced with the same nonce and higher fees, one intent whichever signing is mined."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount
from hexbytes import HexBytes
from web3.types import RPCEndpoint

from attest.accounts import dev_account
from attest.chain.outbox import CRASH_ENV
from attest.chain.tx import FeePolicy, Sender, fee_summary, gwei
from attest.errors import ChainError, FeeCapExceeded
from attest.flow.token import Token
from attest.ledger import Ledger
from tests.conftest import LocalChain
from tests.test_ask import KB_DOCS, QUESTION, ok, oov3

GWEI = 10**9


@pytest.fixture
def chain(local_chain: LocalChain) -> LocalChain:
    ok("kb", "add", str(KB_DOCS))
    return local_chain


def configure(chain: LocalChain, **settings: object) -> None:
    lines = ["[networks.local]", *(f"{k} = {v!r}" for k, v in settings.items())]
    (chain.home / "config.toml").write_text("\n".join(lines) + "\n")


def rpc(chain: LocalChain, method: str, *params: object) -> object:
    answer = chain.w3.provider.make_request(RPCEndpoint(method), list(params))
    assert "error" not in answer, answer
    return answer["result"]


@pytest.fixture
def stalled(chain: LocalChain) -> Iterator[LocalChain]:
    """The devnet with mining stopped: a transaction sent stays in the pool until the test mines a block."""
    rpc(chain, "evm_setAutomine", False)
    try:
        yield chain
    finally:
        rpc(chain, "evm_mine")  # nothing of this test left in the pool for the next one
        rpc(chain, "evm_setAutomine", True)


def ask_process(*, crash_at: str | None = None) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if k != CRASH_ENV}
    if crash_at is not None:
        env[CRASH_ENV] = crash_at
    return subprocess.Popen(
        [sys.executable, "-m", "attest", "ask", QUESTION, "--json"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def replacements(home: Path) -> list[str]:
    """The hashes of the replacements the ledger holds (a row's current signing, once it replaced another)."""
    path = home / "ledger.sqlite"
    if not path.exists():
        return []
    with sqlite3.connect(path) as db:
        try:
            return [r[0] for r in db.execute("SELECT tx_hash FROM txs WHERE earlier IS NOT NULL ORDER BY id")]
        except sqlite3.OperationalError:  # not created yet
            return []


class Miner(threading.Thread):
    """Mines one block each time a replacement reaches the node's pool, and only then: every first signing is
    stuck until it is replaced."""

    def __init__(self, chain: LocalChain) -> None:
        super().__init__(daemon=True)
        self.chain = chain
        self.stop = threading.Event()
        self.mined: list[str] = []

    def run(self) -> None:
        while not self.stop.wait(0.05):
            for tx_hash in replacements(self.chain.home):
                if tx_hash not in self.mined and self._in_pool(tx_hash):
                    self.mined.append(tx_hash)
                    rpc(self.chain, "evm_mine")

    def _in_pool(self, tx_hash: str) -> bool:
        answer = self.chain.w3.provider.make_request(RPCEndpoint("eth_getTransactionByHash"), [tx_hash])
        return answer.get("result") is not None


def test_a_stuck_transaction_is_replaced_and_the_replacement_mined(stalled: LocalChain) -> None:
    chain = stalled
    configure(chain, replace_after_s=1.0)
    asserter = dev_account(1).address
    nonce = chain.w3.eth.get_transaction_count(asserter)
    miner = Miner(chain)
    miner.start()
    try:
        proc = ask_process()
        _out, err = proc.communicate(timeout=120)
    finally:
        miner.stop.set()
        miner.join()
    assert proc.returncode == 0, err
    print(err)  # the run's log, for the record
    assert len(miner.mined) == 2  # approve and assert: each stuck once, replaced once
    with Ledger() as ledger:
        (a,) = ledger.select()
        assert a.status == "asserted" and a.assertion_id is not None
        txs = ledger.txs(a.id)
        steps = [s.step for s in ledger.steps(a.id)]
    # One row per intent, each holding the mined replacement and the stuck signing it replaced.
    assert [(t.kind, t.status, len(t.earlier)) for t in txs] == [("approve", "mined", 1), ("assert", "mined", 1)]
    for t in txs:
        assert t.hash_hex is not None
        receipt = chain.w3.eth.get_transaction_receipt(t.hash_hex)
        assert receipt["status"] == 1 and receipt["transactionHash"].to_0x_hex() == t.hash_hex
        (stuck,) = t.earlier_hashes
        assert chain.w3.eth.get_transaction(t.hash_hex)["nonce"] == t.nonce
        with pytest.raises(Exception, match="not found"):
            chain.w3.eth.get_transaction_receipt(stuck)
        bumped = chain.w3.eth.get_transaction(t.hash_hex)
        first = t.earlier[0][1]
        assert int(bumped["maxFeePerGas"]) * 100 >= int(signed_fee(first, "maxFeePerGas")) * 110
        assert int(bumped["maxPriorityFeePerGas"]) * 100 >= int(signed_fee(first, "maxPriorityFeePerGas")) * 110
    assert steps.count("approve replaced") == 1 and steps.count("assert replaced") == 1
    assert chain.w3.eth.get_transaction_count(asserter) == nonce + 2  # two transactions, no more
    events = oov3(chain).events_between(chain.deployment.block_number, chain.w3.eth.block_number)
    assert [e for e in events if getattr(e, "domain_id", None) == bytes.fromhex(a.digest[2:])]
    assert "replaced by" in err and "same intent" in err
    assert Token(chain.w3, chain.deployment.currency).allowance(asserter, chain.deployment.oov3) == 0


def signed_fee(raw: bytes, field: str) -> int:
    from eth_account.typed_transactions.typed_transaction import TypedTransaction

    return int(TypedTransaction.from_bytes(HexBytes(raw)).as_dict()[field])


def test_a_crash_between_replacement_signed_and_sent_reconciles_whichever_is_mined(stalled: LocalChain) -> None:
    """The replacement is on record but never left: the stuck first signing is the one mined, and `resume`
    recognises it as the same intent instead of signing a third time."""
    chain = stalled
    configure(chain, replace_after_s=1.0)
    proc = ask_process(crash_at="approve-replaced")
    _out, err = proc.communicate(timeout=120)
    assert proc.returncode == 137, err
    with Ledger() as ledger:
        (a,) = ledger.select()
        (approve,) = ledger.txs(a.id)
    assert approve.status == "sent" and len(approve.earlier) == 1
    (first,) = approve.earlier_hashes
    rpc(chain, "evm_setAutomine", True)
    rpc(chain, "evm_mine")  # the pool holds the first signing only: it is mined
    assert chain.w3.eth.get_transaction_receipt(first)["status"] == 1
    ok("resume")
    with Ledger() as ledger:
        a = ledger.get(a.id)
        txs = ledger.txs(a.id)
        steps = [s.step for s in ledger.steps(a.id)]
    assert a.status == "asserted"
    assert [(t.kind, t.status) for t in txs] == [("approve", "mined"), ("assert", "mined")]
    assert txs[0].hash_hex == first and txs[0].earlier_hashes == [approve.hash_hex]  # the replacement, unsent
    assert "approve earlier signing mined" in steps
    assert chain.w3.eth.get_transaction_count(dev_account(1).address) == (approve.nonce or 0) + 2


def test_fees_above_the_cap_are_refused_before_anything_is_signed(chain: LocalChain) -> None:
    # A cap below the base fee itself. (The chain's base fee is left alone: anvil keeps a base fee set with
    # anvil_setNextBlockBaseFeePerGas across evm_revert, and the next test would inherit it.)
    base = int(chain.w3.eth.get_block("latest")["baseFeePerGas"] or 0)
    configure(chain, max_fee_gwei=base / 2 / GWEI)
    nonce = chain.w3.eth.get_transaction_count(dev_account(1).address)
    proc = ask_process()
    _out, err = proc.communicate(timeout=120)
    assert proc.returncode != 0
    lines = [line for line in err.splitlines() if line.strip()]
    assert "[networks.local] max_fee_gwei" in lines[-1] and "Traceback" not in err, err
    assert f"{gwei(base)} gwei of base fee" in lines[-1]
    assert chain.w3.eth.get_transaction_count(dev_account(1).address, "pending") == nonce
    with Ledger() as ledger:
        assert ledger.select() == []  # refused at the plan: nothing written, nothing signed


def test_the_cap_bounds_every_fee_signed(local_chain: LocalChain, dev_keys: list[LocalAccount]) -> None:
    token = Token(local_chain.w3, local_chain.deployment.currency)
    base = int(local_chain.w3.eth.get_block("latest")["baseFeePerGas"] or 0)
    tip = int(local_chain.w3.eth.max_priority_fee)
    cap = base + tip + 1  # above what is asked, below tip + twice the base fee
    sender = Sender(local_chain.w3, dev_keys[3], fees=FeePolicy(max_fee=cap))
    signed = sender.prepare(token.approve_call(local_chain.deployment.oov3, 1), "approve")
    assert signed_fee(signed.raw, "maxFeePerGas") == cap
    low = Sender(local_chain.w3, dev_keys[3], fees=FeePolicy(max_fee=base, setting="[networks.x] max_fee_gwei"))
    with pytest.raises(FeeCapExceeded, match=r"above \[networks\.x\] max_fee_gwei"):
        low.prepare(token.approve_call(local_chain.deployment.oov3, 1), "approve")
    # A replacement is at least +10% on both fees (same nonce), and refused when that does not fit under the cap.
    free = Sender(local_chain.w3, dev_keys[3])
    first = free.prepare(token.approve_call(local_chain.deployment.oov3, 1), "approve")
    again = free.replacement(first)
    assert again.nonce == first.nonce and again.tx_hash != first.tx_hash
    for field in ("maxFeePerGas", "maxPriorityFeePerGas"):
        assert signed_fee(again.raw, field) * 100 >= signed_fee(first.raw, field) * 110
    assert fee_summary(again.raw).startswith("max fee ")
    with pytest.raises(FeeCapExceeded, match="replacing it needs"):
        sender.replacement(again)


def test_an_account_without_gas_money_is_told_to_fund_it(local_chain: LocalChain) -> None:
    broke = Account.create()
    sender = Sender(local_chain.w3, broke)
    token = Token(local_chain.w3, local_chain.deployment.currency)
    with pytest.raises(ChainError, match=r"has 0 of the native token but needs .* for gas; fund it and retry"):
        sender.prepare(token.approve_call(local_chain.deployment.oov3, 1), "approve")
    with pytest.raises(ChainError, match="fund it and retry"):
        sender.prepare_many([(token.approve_call(local_chain.deployment.oov3, 1), "approve")])
