"""The daemon against a real UMA VotingV2 (DVM) behind a real OptimisticOracleV3 on a throwaway anvil: it disputes
an assertion whose claim is not an llm-attest claim, commits its vote (salt stored first), reveals it in the next
phase, and settles the assertion once the vote has resolved."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from eth_account.signers.local import LocalAccount
from web3 import Web3

from attest.chain.voting import RoundPhase
from attest.config import Config
from disputer.cli import voting_for
from disputer.config import DisputerConfig
from disputer.daemon import Daemon
from disputer.grounding import GroundingJudge
from disputer.status import assertion_status
from disputer.store import DisputerStore
from disputer.wiring import build_daemon
from tests.support.dvm import PHASE, deploy_dvm, throwaway_anvil, warp

STAKE = 5_000_000 * 10**18  # alone past the GAT and the SPAT


@pytest.fixture(scope="module")
def w3() -> Iterator[Web3]:
    with throwaway_anvil() as web3:
        yield web3


def test_dvm_commit_reveal_settle_end_to_end(
    w3: Web3, dev_keys: list[LocalAccount], tmp_path: Path, attest_home: str
) -> None:
    dvm = deploy_dvm(w3, dev_keys, {2: STAKE})
    voting, disputer = dvm.voting, dvm.disputer
    ctx = dvm.chain_context()
    aid = dvm.assert_claim(b'{"title":"not an llm-attest claim"}', domain_id=b"\x22" * 32)
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
        assert voting.vote_phase() is RoundPhase.COMMIT
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


def test_dvm_vote_through_a_delegate_counts_for_the_staker(
    w3: Web3, dev_keys: list[LocalAccount], tmp_path: Path, attest_home: str
) -> None:
    # Dev 3 stakes, dev 2 (the disputer, no stake of its own) votes for it: VotingV2's two-way delegation.
    dvm = deploy_dvm(w3, dev_keys, {3: STAKE})
    voting, disputer, staker = dvm.voting, dvm.disputer, dvm.voter
    assert voting.stake_of(disputer.address) == 0
    ctx = dvm.chain_context()
    alone = voting_for(ctx, disputer.address)
    assert alone is not None and alone["voting_for"] == disputer.address and "no stake" in alone["warning"]
    functions = voting.contract.functions
    disputer.transact(functions.setDelegator(staker.address), "setDelegator")
    half = voting_for(ctx, disputer.address)  # accepted, but the staker has not named it yet
    assert half is not None and not half["delegate"] and "has not named it as delegate" in half["warning"]
    staker.transact(functions.setDelegate(disputer.address), "setDelegate")
    assert functions.getVoterFromDelegate(disputer.address).call() == staker.address
    assert voting_for(ctx, disputer.address) == {"voting_for": staker.address, "delegate": True, "stake": STAKE}
    aid = dvm.assert_claim(b'{"title":"not an llm-attest claim either"}', domain_id=b"\x33" * 32)
    config = DisputerConfig(samples=1, attempts=1, backfill_s=86400, confirmations=0)
    with DisputerStore(tmp_path / "delegate.sqlite") as store:
        daemon = build_daemon(ctx, store, config, Config(), dev_keys[2], judge=GroundingJudge())

        def step() -> dict[bytes, str]:
            report = asyncio.run(daemon.step())
            assert report.errors == []
            return report.votes

        step()
        assert ctx.oov3.get_assertion(aid).disputer == disputer.address
        vote_round = voting.current_round_id() + 1
        warp(w3, vote_round * 2 * PHASE + 1)
        assert step() == {aid: f"committed in round {vote_round}"}
        warp(w3, vote_round * 2 * PHASE + PHASE + 1)
        assert step() == {aid: f"revealed in round {vote_round}"}
        events = voting.contract.events
        head = w3.eth.block_number
        (committed,) = events.VoteCommitted.get_logs(from_block=0, to_block=head)
        (revealed,) = events.VoteRevealed.get_logs(from_block=0, to_block=head)
        # Sent by the delegate, counted as the staker's vote with the staker's tokens.
        assert (committed["args"]["voter"], committed["args"]["caller"]) == (staker.address, disputer.address)
        assert (revealed["args"]["voter"], revealed["args"]["caller"]) == (staker.address, disputer.address)
        assert revealed["args"]["price"] == 0 and revealed["args"]["numTokens"] == STAKE
        status = assertion_status(store, aid)
        assert status is not None
        (shown,) = status["votes"]  # what `disputer status ID` prints: never the salt
        assert (shown["round"], shown["phase"], shown["price"]) == (vote_round, "revealed", "0") and "salt" not in shown
        warp(w3, (vote_round + 1) * 2 * PHASE + 1)
        # Only the staker's stake voted, so the vote resolving at all proves the delegate's vote counted.
        report = asyncio.run(daemon.step())
        assert report.errors == [] and report.settled == [aid]
        settled = ctx.oov3.get_assertion(aid)
        assert settled.settled and settled.settlement_resolution is False
