"""The daemon through reorgs on the devnet (evm_snapshot / evm_revert drop blocks, then another branch is mined):
no action on assertions that left the chain, a signed dispute for one is never rebroadcast, a dispute the reorg
removed is sent again, the checkpoint heals, and assertions made on the new branch are found."""

from __future__ import annotations

import asyncio
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hexbytes import HexBytes
from web3 import Web3
from web3.types import RPCEndpoint

from attest.accounts import dev_account
from attest.chain.oov3 import AssertionDisputed, AssertionMade
from attest.chain.tx import Sender
from attest.config import Config
from attest.connect import ChainContext, connect
from attest.networks import ASSERT_TRUTH2
from disputer.actions import GONE
from disputer.config import DisputerConfig
from disputer.daemon import Daemon, StepReport
from disputer.grounding import GroundingJudge
from disputer.store import DisputerStore
from disputer.wiring import build_daemon
from tests.conftest import LocalChain
from tests.support.oov3 import assert_truth
from tests.test_chaos import txs_from

REPO = Path(__file__).resolve().parent.parent
LIVENESS = 7200


@dataclass
class Env:
    chain: LocalChain
    ctx: ChainContext
    asserter: Sender

    def make(self, claim: bytes) -> AssertionMade:
        """An assertion for our registry whose claim is not an llm-attest claim: the checks fail, so it is disputed."""
        currency = self.chain.deployment.currency
        bond = self.ctx.oov3.minimum_bond(currency)
        made, _ = assert_truth(self.ctx.oov3,
            self.asserter, claim=claim, asserter=self.asserter.address,
            callback_recipient=self.ctx.require_registry(), liveness=LIVENESS, currency=currency, bond=bond,
            identifier=ASSERT_TRUTH2, domain_id=Web3.keccak(claim),
        )  # fmt: skip
        return made

    def rpc(self, method: str, *params: Any) -> Any:
        return self.chain.w3.provider.make_request(RPCEndpoint(method), list(params))["result"]

    def store(self) -> DisputerStore:
        return DisputerStore(self.chain.home / "disputer.sqlite")

    def daemon(self, store: DisputerStore) -> Daemon:
        config = DisputerConfig(samples=1, attempts=1, backfill_s=86400, confirmations=0, vote=False, settle=False)
        return build_daemon(self.ctx, store, config, Config(), dev_account(2), judge=GroundingJudge())

    def disputes(self) -> list[bytes]:
        head = int(self.ctx.w3.eth.block_number)
        return [e.assertion_id for e in self.ctx.oov3.events_between(0, head) if isinstance(e, AssertionDisputed)]


@pytest.fixture
def env(local_chain: LocalChain) -> Env:
    ctx = connect("local")
    asserter = Sender(ctx.w3, dev_account(1))
    token = ctx.w3.eth.contract(address=Web3.to_checksum_address(local_chain.deployment.currency),
                                abi=_erc20_abi())  # fmt: skip
    asserter.transact(token.functions.approve(ctx.oov3.address, 2**255), "approve")
    return Env(local_chain, ctx, asserter)


def _erc20_abi() -> list[dict[str, Any]]:
    from attest.chain.artifacts import uma

    return uma("TestnetERC20").abi


def step(daemon: Daemon) -> StepReport:
    report = asyncio.run(daemon.step())
    assert report.errors == []
    return report


def test_no_action_on_assertions_a_reorg_removed_and_new_ones_are_found(env: Env) -> None:
    with env.store() as store:
        daemon = env.daemon(store)
        step(daemon)
        fork = int(env.ctx.w3.eth.block_number)
        snapshot = env.rpc("evm_snapshot")
        gone = env.make(b"made on a branch that is dropped")
        report = step(daemon)  # seen, decided and disputed on the doomed branch
        assert report.decisions == {gone.assertion_id: "dispute"} and env.disputes() == [gone.assertion_id]
        assert env.rpc("evm_revert", snapshot) is True
        env.rpc("anvil_mine", hex(4))  # another branch, longer than the dropped one
        after = env.make(b"made on the new branch")
        report = step(daemon)
        assert report.scan is not None and report.scan.reorg_from is not None and report.scan.reorg_from <= fork + 1
        assert report.scan.gone == [gone.assertion_id]
        assert report.decisions == {after.assertion_id: "dispute"}
        assert list(report.sent) == [after.assertion_id]  # nothing for the assertion that left the chain
        stored = store.get(gone.assertion_id)
        assert stored is not None and stored.status == "gone"
        (row,) = [r for r in store.txs_for(gone.assertion_id) if r.kind == "dispute"]
        assert row.status == "dropped" and row.error == "a reorg removed it from the chain"
        assert env.disputes() == [after.assertion_id]
        cp = store.checkpoint(env.ctx.chain_id, env.ctx.oov3.address)  # healed: on the new branch, at the scan's head
        assert cp is not None and cp.block_number == report.scan.head
        assert cp.block_hash == bytes(env.ctx.w3.eth.get_block(cp.block_number)["hash"])
        calm = step(daemon)  # the state is stable: nothing more is sent for either
        assert calm.sent == {} and calm.scan is not None and calm.scan.reorg_from is None
        assert store.open_txs() == []


def test_a_dispute_signed_for_a_vanished_assertion_is_failed_not_rebroadcast(env: Env) -> None:
    home = env.chain.home
    (home / "config.toml").write_text(
        '[llm]\nprovider = "extractive"\n\n[disputer]\nsamples = 1\nattempts = 1\nvote = false\nsettle = false\n'
        "backfill_s = 86400\nconfirmations = 0\n"
    )
    snapshot = env.rpc("evm_snapshot")
    start = int(env.ctx.w3.eth.block_number) + 1
    nonce = env.ctx.w3.eth.get_transaction_count(dev_account(2).address)
    gone = env.make(b"made on a branch that is dropped")
    crashed = subprocess.run(
        [str(REPO / ".venv" / "bin" / "disputer"), "run", "--once"],
        env={**os.environ, "ATTEST_HOME": str(home), "ATTEST_CRASH_AT": "dispute-signed"},
        capture_output=True, text=True, timeout=120, cwd=REPO,
    )  # fmt: skip
    assert crashed.returncode == 137, crashed.stderr
    with env.store() as store:
        (signed,) = [r for r in store.open_txs() if r.kind == "dispute"]
        assert signed.subject == gone.assertion_id
        assert signed.status == "signed" and signed.tx_hash is not None
    assert env.rpc("evm_revert", snapshot) is True
    env.rpc("anvil_mine", hex(3))
    after = env.make(b"made on the new branch")
    with env.store() as store:
        daemon = env.daemon(store)
        report = step(daemon)  # the restart reconciles the signed row before anything else
        row = store.tx(signed.id)
        assert row.status == "failed" and row.error == GONE
        assert env.ctx.w3.eth.get_transaction_count(dev_account(2).address) == nonce + 2  # approve, dispute
        assert report.decisions == {after.assertion_id: "dispute"}
        assert env.disputes() == [after.assertion_id]
        step(daemon)
        assert store.tx(signed.id).status == "failed" and store.open_txs() == []
    txs = txs_from(env.ctx.w3, dev_account(2).address, start)
    assert HexBytes(signed.tx_hash) not in [HexBytes(t) for t in txs] and len(txs) == 2


def test_a_reorged_dispute_is_sent_again(env: Env) -> None:
    with env.store() as store:
        daemon = env.daemon(store)
        step(daemon)
        made = env.make(b"stays on chain; our first dispute of it does not")
        snapshot = env.rpc("evm_snapshot")
        report = step(daemon)
        (sent,) = [r for r in report.sent[made.assertion_id] if r.row.kind == "dispute"]
        assert sent.mined and env.disputes() == [made.assertion_id]
        assert step(daemon).scan.disputed == [made.assertion_id]  # type: ignore[union-attr]
        assert env.rpc("evm_revert", snapshot) is True  # the assertion stays, the approve and dispute go
        env.rpc("anvil_mine", hex(3))
        assert env.disputes() == []
        report = step(daemon)
        assert report.scan is not None and report.scan.reorg_from is not None
        (again,) = report.sent[made.assertion_id]
        assert again.mined and again.row.kind == "dispute" and again.row.attempts == 2
        rows = {r.kind: r for r in store.txs_for(made.assertion_id)}
        assert rows["approve"].status == "mined" and rows["approve"].attempts == 2  # its allowance went too
        assert env.disputes() == [made.assertion_id]
        assert env.ctx.oov3.get_assertion(made.assertion_id).disputer == dev_account(2).address
        stored = store.get(made.assertion_id)
        assert stored is not None and stored.status == "evaluated"  # the watcher sees the new dispute next poll
        step(daemon)
        stored = store.get(made.assertion_id)
        assert stored is not None and stored.status == "disputed"
        assert step(daemon).sent == {} and env.disputes() == [made.assertion_id]


def test_a_dispute_reorged_before_the_watcher_saw_it_is_sent_again(env: Env) -> None:
    with env.store() as store:
        daemon = env.daemon(store)
        step(daemon)
        made = env.make(b"disputed, then the dispute is dropped before any poll sees it")
        snapshot = env.rpc("evm_snapshot")
        report = step(daemon)  # decided and disputed; the watcher has not seen AssertionDisputed yet
        (sent,) = [r for r in report.sent[made.assertion_id] if r.row.kind == "dispute"]
        assert sent.mined and env.disputes() == [made.assertion_id]
        assert env.rpc("evm_revert", snapshot) is True  # approve and dispute gone; the assertion stays
        env.rpc("anvil_mine", hex(3))
        assert env.disputes() == []
        report = step(daemon)
        assert [r.row.kind for r in report.sent[made.assertion_id]][-1] == "dispute"
        assert env.disputes() == [made.assertion_id]
        assert env.ctx.oov3.get_assertion(made.assertion_id).disputer == dev_account(2).address
        assert step(daemon).sent == {} and env.disputes() == [made.assertion_id]
