"""The daemon against a real UMA VotingV2 (DVM) behind a real OptimisticOracleV3 on a throwaway anvil: it disputes
an assertion whose claim is not an llm-attest claim, commits its vote (salt stored first), reveals it in the next
phase, and settles the assertion once the vote has resolved."""

from __future__ import annotations

import asyncio
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from eth_account.signers.local import LocalAccount
from web3 import Web3

from attest.chain.artifacts import uma
from attest.chain.connect import ChainContext
from attest.chain.deploy import StackParams, deploy_stack
from attest.chain.oov3 import OptimisticOracleV3
from attest.chain.tx import Sender
from attest.chain.voting import VotePhase, VotingClient, VotingParams, deploy_voting_stack
from attest.config import Config, NetworkConfig
from attest.devnet import DEV_MNEMONIC
from attest.localnet import HOST, free_port
from attest.networks import ASSERT_TRUTH2, Network, OracleKind
from attest.paths import anvil_executable
from disputer.config import DisputerConfig
from disputer.daemon import Daemon, build_daemon
from disputer.grounding import GroundingJudge
from disputer.store import DisputerStore

PHASE = 120
LIVENESS = 3600


@pytest.fixture(scope="module")
def w3() -> Iterator[Web3]:
    port = free_port()
    proc = subprocess.Popen(
        [str(anvil_executable()), "--host", HOST, "--port", str(port), "--mnemonic", DEV_MNEMONIC, "--silent"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    web3 = Web3(Web3.HTTPProvider(f"http://{HOST}:{port}", request_kwargs={"timeout": 10}))
    deadline = time.monotonic() + 15
    while not web3.is_connected():
        assert proc.poll() is None, "anvil exited at start"
        assert time.monotonic() < deadline, "anvil did not answer within 15 s"
        time.sleep(0.05)
    yield web3
    proc.terminate()
    proc.wait(timeout=10)


def warp(w3: Web3, timestamp: int) -> None:
    w3.provider.make_request("evm_setNextBlockTimestamp", [timestamp])  # type: ignore[arg-type]
    w3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]


def test_dvm_commit_reveal_settle_end_to_end(
    w3: Web3, dev_keys: list[LocalAccount], tmp_path: Path, attest_home: str
) -> None:
    deployer, asserter, disputer = (Sender(w3, k) for k in dev_keys[:3])
    base = deploy_stack(deployer, StackParams(), mint_to=(asserter.address, disputer.address))
    dvm = deploy_voting_stack(deployer, base, VotingParams(phase_length=PHASE), mint_to=(disputer.address,))
    voting = VotingClient(w3, dvm.voting)
    voting.stake(disputer, 5_000_000 * 10**18)  # alone past the GAT and the SPAT
    network = Network("dvm-test", int(w3.eth.chain_id), base.oov3, OracleKind.DVM, None)
    ctx = ChainContext(
        network, NetworkConfig(oracle=dvm.voting), w3, OptimisticOracleV3(w3, base.oov3), base.registry, base, False
    )
    currency = w3.eth.contract(address=Web3.to_checksum_address(base.currency), abi=uma("TestnetERC20").abi)
    bond = ctx.oov3.minimum_bond(base.currency)
    asserter.transact(currency.functions.approve(ctx.oov3.address, bond), "approve")
    made, _ = ctx.oov3.assert_truth(
        asserter, claim=b'{"title":"not an llm-attest claim"}', asserter=asserter.address,
        callback_recipient=base.registry, liveness=LIVENESS, currency=base.currency, bond=bond,
        identifier=ASSERT_TRUTH2, domain_id=b"\x22" * 32,
    )  # fmt: skip
    aid = made.assertion_id
    config = DisputerConfig(samples=1, attempts=1, backfill_s=86400, confirmations=0)
    with DisputerStore(tmp_path / "dvm.sqlite") as store:
        daemon: Daemon = build_daemon(ctx, store, config, Config(), dev_keys[2], judge=GroundingJudge())

        def step() -> dict[bytes, str]:
            report = asyncio.run(daemon.step())
            assert report.errors == []
            return report.votes

        step()  # decides from the failed claim check and disputes (auto-approving the bond)
        assert ctx.oov3.get_assertion(aid).disputer == disputer.address
        assert step() == {aid: "not up for a vote in this round"}  # the request waits for the next round
        vote_round = voting.current_round_id() + 1
        warp(w3, vote_round * 2 * PHASE + 1)
        assert voting.vote_phase() is VotePhase.COMMIT
        assert step() == {aid: f"committed in round {vote_round}"}
        vote = store.vote(aid, vote_round)
        assert vote is not None and vote.phase == "committed" and vote.price == 0 and vote.committed_tx is not None
        assert step() == {aid: f"committed in round {vote_round}"}  # nothing sent twice
        warp(w3, vote_round * 2 * PHASE + PHASE + 1)
        assert step() == {aid: f"revealed in round {vote_round}"}
        vote = store.vote(aid, vote_round)
        assert vote is not None and vote.phase == "revealed"
        warp(w3, (vote_round + 1) * 2 * PHASE + 1)
        report = asyncio.run(daemon.step())
        assert report.settled == [aid]
        settled = ctx.oov3.get_assertion(aid)
        assert settled.settled and settled.settlement_resolution is False
        asyncio.run(daemon.step())
        stored = store.get(aid)
        assert stored is not None and stored.status == "settled"
        assert store.status_summary(ctx.chain_id)["txs"]["mined"] == 5  # approve, dispute, commit, reveal, settle
