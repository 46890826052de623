"""The DVM voter through crashes (a real `ATTEST_CRASH_AT` process exit in a child running one daemon step) and a
rolled round, on a real VotingV2: exactly one commit and one reveal per round, the salt stored before the commit
reused after it, and the vote counted (the request resolves to the disputer's price)."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from eth_account.signers.local import LocalAccount

from attest.chain.voting import RoundPhase
from attest.config import Config
from disputer.config import DisputerConfig
from disputer.daemon import Daemon
from disputer.grounding import GroundingJudge
from disputer.store import DisputerStore
from disputer.wiring import build_daemon
from tests.support.dvm import Dvm, deploy_dvm, throwaway_anvil

REPO = Path(__file__).resolve().parent.parent
STAKE = 5_000_000 * 10**18  # the disputer alone passes the GAT and the SPAT

# One daemon step in a child process, so ATTEST_CRASH_AT can end it the way a crash would.
CHILD = """
import asyncio, json, sys
from pathlib import Path
from web3 import Web3
from attest.connect import ChainContext
from attest.devnet import Deployment
from attest.chain.oov3 import OptimisticOracleV3
from attest.config import Config, NetworkConfig
from attest.accounts import dev_account
from attest.networks import Network, OracleKind
from disputer.config import DisputerConfig
from disputer.wiring import build_daemon
from disputer.grounding import GroundingJudge
from disputer.store import DisputerStore

args = json.loads(sys.argv[1])
w3 = Web3(Web3.HTTPProvider(args["rpc"]))
base = Deployment.from_json(args["base"])
network = Network("dvm-test", int(w3.eth.chain_id), base.oov3, OracleKind.DVM, None)
ctx = ChainContext(network, NetworkConfig(oracle=args["voting"]), w3, OptimisticOracleV3(w3, base.oov3),
                   base.registry, base, False)
config = DisputerConfig.model_validate(args["config"])
with DisputerStore(Path(args["db"])) as store:
    daemon = build_daemon(ctx, store, config, Config(), dev_account(2), judge=GroundingJudge())
    asyncio.run(daemon.step())
"""
CONFIG = {"samples": 1, "attempts": 1, "backfill_s": 86400, "confirmations": 0, "settle": False}


@pytest.fixture(scope="module")
def dvm(dev_keys: list[LocalAccount]) -> Iterator[Dvm]:
    with throwaway_anvil() as w3:
        yield deploy_dvm(w3, dev_keys, {2: STAKE})


def daemon(dvm: Dvm, store: DisputerStore) -> Daemon:
    return build_daemon(
        dvm.chain_context(), store, DisputerConfig.model_validate(CONFIG), Config(), dvm.disputer.account,
        judge=GroundingJudge(),
    )  # fmt: skip


def step(dvm: Dvm, db: Path) -> dict[bytes, str]:
    """One daemon step in this process; its votes (earlier tests' assertions on this chain are voted on too)."""
    with DisputerStore(db) as store:
        report = asyncio.run(daemon(dvm, store).step())
    assert report.errors == []
    return report.votes


def crash(dvm: Dvm, db: Path, at: str) -> None:
    args = {
        "rpc": dvm.w3.provider.endpoint_uri,  # type: ignore[attr-defined]
        "base": dvm.base.to_json(),
        "voting": dvm.dvm.voting,
        "db": str(db),
        "config": CONFIG,
    }
    child = subprocess.run(
        [sys.executable, "-c", CHILD, json.dumps(args)], env={**os.environ, "ATTEST_CRASH_AT": at},
        capture_output=True, text=True, timeout=120, cwd=REPO,
    )  # fmt: skip
    assert child.returncode == 137, child.stderr[-3000:]


def votes_on_chain(dvm: Dvm, event: str, aid: bytes) -> list[int]:
    """The rounds of the disputer's commits or reveals (`event`) for one assertion, in chain order."""
    logs = dvm.voting.contract.events[event]().get_logs(from_block=0)
    return [
        int(e["args"]["roundId"])
        for e in logs
        if e["args"]["voter"] == dvm.disputer.address and e["args"]["ancillaryData"] == dvm.stamp(aid)
    ]


def next_vote_round(dvm: Dvm) -> int:
    """The round a request made now is voted in."""
    return dvm.voting.current_round_id() + 1


def resolved_price(dvm: Dvm, aid: bytes) -> int:
    chain = dvm.oov3.get_assertion(aid)
    return dvm.voting.get_price(chain.identifier, chain.assertion_time, dvm.stamp(aid), requester=dvm.oov3.address)


@pytest.mark.parametrize(
    ("crash_at", "phase_after"),
    [
        ("commit-signed", RoundPhase.COMMIT),  # salt saved, commit signed, not sent
        ("commit-sent", RoundPhase.COMMIT),  # commit sent (mined at once here), not marked
        ("commit-sent", RoundPhase.REVEAL),  # ... and the restart comes in the reveal phase
        ("reveal-sent", RoundPhase.REVEAL),  # reveal sent, not marked
    ],
)
def test_a_crash_at_any_vote_step_loses_and_repeats_nothing(
    dvm: Dvm, tmp_path: Path, crash_at: str, phase_after: RoundPhase
) -> None:
    db = tmp_path / "disputer.sqlite"
    aid = dvm.assert_claim(f"not an llm-attest claim ({crash_at}, {phase_after.name})".encode())
    step(dvm, db)  # decided from the failed claim check and disputed
    assert dvm.oov3.get_assertion(aid).disputed
    round_id = next_vote_round(dvm)
    dvm.warp_to_phase(round_id, RoundPhase.COMMIT)
    if crash_at.startswith("reveal"):
        assert step(dvm, db)[aid] == f"committed in round {round_id}"
        dvm.warp_to_phase(round_id, RoundPhase.REVEAL)
    with DisputerStore(db) as store:
        before = store.vote(aid, round_id)
    crash(dvm, db, crash_at)
    with DisputerStore(db) as store:
        salted = store.vote(aid, round_id)
        assert salted is not None and (before is None or salted.salt == before.salt)
    if dvm.voting.vote_phase() is not phase_after:
        dvm.warp_to_phase(round_id, phase_after)
    step(dvm, db)
    if phase_after is RoundPhase.COMMIT:
        dvm.warp_to_phase(round_id, RoundPhase.REVEAL)
        step(dvm, db)
    with DisputerStore(db) as store:
        vote = store.vote(aid, round_id)
        assert vote is not None and vote.phase == "revealed" and vote.salt == salted.salt and vote.price == 0
        assert [v.round_id for v in store.votes_for(aid)] == [round_id]
        assert store.open_txs() == []
    assert step(dvm, db)[aid] == f"revealed in round {round_id}"  # nothing sent again
    assert votes_on_chain(dvm, "VoteCommitted", aid) == [round_id]  # one commit, one reveal
    assert votes_on_chain(dvm, "VoteRevealed", aid) == [round_id]
    dvm.warp_to_phase(round_id + 1, RoundPhase.COMMIT)
    assert resolved_price(dvm, aid) == 0  # counted: the request resolved to the price the disputer voted


def test_a_rolled_vote_is_committed_again_in_the_new_round(dvm: Dvm, tmp_path: Path) -> None:
    db = tmp_path / "disputer.sqlite"
    aid = dvm.assert_claim(b"not an llm-attest claim (rolled)")
    step(dvm, db)
    first = next_vote_round(dvm)
    dvm.warp_to_phase(first, RoundPhase.COMMIT)
    assert step(dvm, db)[aid] == f"committed in round {first}"
    # Down for the whole reveal phase: nothing revealed, so the request rolls to the next round.
    dvm.warp_to_phase(first + 1, RoundPhase.COMMIT)
    assert step(dvm, db)[aid] == f"committed in round {first + 1}"
    dvm.warp_to_phase(first + 1, RoundPhase.REVEAL)
    assert step(dvm, db)[aid] == f"revealed in round {first + 1}"
    with DisputerStore(db) as store:
        rounds = store.votes_for(aid)
        assert [(v.round_id, v.phase) for v in rounds] == [(first, "committed"), (first + 1, "revealed")]
        (commit,) = [r for r in store.txs_for(aid) if r.kind == "commit"]
        assert commit.status == "mined" and commit.attempts == 2 and commit.tx_hash == rounds[1].committed_tx
        assert store.open_txs() == []
    assert votes_on_chain(dvm, "VoteCommitted", aid) == [first, first + 1]
    assert votes_on_chain(dvm, "VoteRevealed", aid) == [first + 1]
    dvm.warp_to_phase(first + 2, RoundPhase.COMMIT)
    assert resolved_price(dvm, aid) == 0
