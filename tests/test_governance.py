"""The governed knowledge base on the devnet, through the CLI: the DAO `attest devnet up` deploys approves a document
(propose → vote → queue → execute) and revokes it; every refusal is one line naming the state, nothing sent."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from attest.accounts import dev_account
from attest.chain.dao import Governor
from attest.chain.knowledge import KnowledgeRegistry
from attest.cli import cli
from attest.errors import GovernanceError
from attest.ledger import DeployLog
from tests.conftest import LocalChain

ATTEST = str(Path(sys.executable).with_name("attest"))
CID = "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy"
CONTRIBUTOR = dev_account(6).address


def run(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args))


def ok(*args: str) -> str:
    result = run(*args)
    assert result.exit_code == 0, (result.output, result.exception)
    return result.output


def refused(*args: str) -> str:
    """The command's one-line refusal (a GovernanceError: `attest` prints it as `Error: …` and exits 1)."""
    result = run(*args)
    assert result.exit_code == 1 and isinstance(result.exception, GovernanceError), (result.output, result.exception)
    message = str(result.exception)
    assert "\n" not in message
    return message


def mine(chain: LocalChain, blocks: int) -> None:
    ok("devnet", "advance", "--blocks", str(blocks))


def only_proposal() -> dict:
    (proposal,) = json.loads(ok("dao", "proposals", "--json"))
    return proposal


def registry(chain: LocalChain) -> KnowledgeRegistry:
    return KnowledgeRegistry(chain.w3, chain.deployment.kb_registry)


def pass_proposal(chain: LocalChain, short_id: str, voters: tuple[int, ...] = (1, 2)) -> None:
    for voter in voters:
        ok("dao", "vote", short_id, "--support", "for", "--account", f"dev:{voter}")
    mine(chain, 10)


def test_devnet_deploys_the_dao_that_owns_the_registry(local_chain: LocalChain) -> None:
    d = local_chain.deployment
    governor = Governor(local_chain.w3, d.governor)
    assert registry(local_chain).governor() == governor.timelock() == d.timelock
    assert governor.token() == d.votes_token
    block = local_chain.w3.eth.block_number - 1
    assert governor.votes_at(dev_account(1).address, block) == 100 * 10**18  # held and self-delegated
    assert governor.votes_at(dev_account(5).address, block) == 0


def test_full_cycle_approves_then_revokes_a_document(local_chain: LocalChain) -> None:
    out = ok("kb", "propose", CID, "--contributor", CONTRIBUTOR, "--account", "dev:1")
    assert "proposal: 0x" in out and "attest dao vote" in out
    short_id = only_proposal()["id"][:12]
    refused_early = refused("dao", "vote", short_id, "--support", "for", "--account", "dev:1")
    assert "pending" in refused_early and "voting opens after block" in refused_early
    mine(local_chain, 2)
    ok("dao", "vote", short_id, "--support", "for", "--account", "dev:1")
    ok("dao", "vote", short_id, "--support", "against", "--account", "dev:3")
    ok("dao", "vote", short_id, "--support", "for", "--account", "dev:2")
    assert "active" in refused("dao", "queue", short_id)
    mine(local_chain, 10)
    proposal = only_proposal()
    assert (proposal["state"], proposal["for"], proposal["against"]) == ("succeeded", str(200 * 10**18), str(10**20))
    assert "queued" in ok("dao", "queue", short_id, "--account", "dev:2")
    early = refused("dao", "execute", short_id, "--account", "dev:2")
    assert "in the timelock until" in early and "ETA" in early
    ok("devnet", "advance", "61s")
    assert not registry(local_chain).is_approved(CONTRIBUTOR, CID)
    assert "executed:" in ok("dao", "execute", short_id, "--account", "dev:2")
    assert registry(local_chain).is_approved(CONTRIBUTOR, CID)
    assert "already executed" in refused("dao", "execute", short_id, "--account", "dev:2")
    assert "already approved" in refused("kb", "propose", CID, "--contributor", CONTRIBUTOR, "--account", "dev:1")

    # Revoked through the DAO as well.
    ok("kb", "revoke", CID, "--contributor", CONTRIBUTOR, "--account", "dev:2")
    revoke = json.loads(ok("dao", "proposals", "--json"))[-1]
    assert revoke["description"].startswith("Revoke document")
    mine(local_chain, 2)
    pass_proposal(local_chain, revoke["id"][:12], voters=(4,))
    ok("dao", "queue", revoke["id"], "--account", "dev:4")
    ok("devnet", "advance", "61s")
    ok("dao", "execute", revoke["id"], "--account", "dev:4")
    assert not registry(local_chain).is_approved(CONTRIBUTOR, CID)
    (approval,) = registry(local_chain).approvals_of(CID)
    assert approval.revoked_at is not None and registry(local_chain).was_approved_at(CID, approval.approved_at)


def test_refusals_name_the_state_and_send_nothing(local_chain: LocalChain) -> None:
    assert "not approved" in refused("kb", "revoke", CID, "--contributor", CONTRIBUTOR, "--account", "dev:1")
    assert "not an address" in refused("kb", "propose", CID, "--contributor", "alice", "--account", "dev:1")
    assert "no proposal 0xdeadbeef" in refused("dao", "vote", "0xdeadbeef", "--support", "for", "--account", "dev:1")
    ok("kb", "propose", CID, "--contributor", CONTRIBUTOR, "--account", "dev:1")
    again = refused("kb", "propose", CID, "--contributor", CONTRIBUTOR, "--account", "dev:1")
    assert "already exists" in again and "--description" in again
    short_id = only_proposal()["id"][:12]
    mine(local_chain, 2)
    ok("dao", "vote", short_id, "--support", "for", "--account", "dev:1")
    nonce = local_chain.w3.eth.get_transaction_count(dev_account(1).address)
    twice = refused("dao", "vote", short_id, "--support", "against", "--account", "dev:1")
    assert "already voted" in twice
    no_votes = refused("dao", "vote", short_id, "--support", "for", "--account", "dev:5")
    assert "held no votes" in no_votes
    assert local_chain.w3.eth.get_transaction_count(dev_account(1).address) == nonce
    assert local_chain.w3.eth.get_transaction_count(dev_account(5).address) == 0
    mine(local_chain, 10)
    assert "queue it first" in refused("dao", "execute", short_id, "--account", "dev:2")


def test_a_proposal_without_quorum_is_not_queued(local_chain: LocalChain) -> None:
    ok("kb", "propose", CID, "--contributor", CONTRIBUTOR, "--account", "dev:1", "--description", "nobody votes")
    short_id = only_proposal()["id"][:12]
    mine(local_chain, 13)
    message = refused("dao", "queue", short_id, "--account", "dev:1")
    assert "defeated: quorum not reached (0 of 20 votes" in message
    assert only_proposal()["state"] == "defeated"


def test_an_account_governor_approves_directly(local_chain: LocalChain) -> None:
    owner = dev_account(7).address
    out = ok("kb", "deploy-registry", "--governor", owner, "--account", "dev:7", "--yes", "--save")
    address = out.split("registry:")[1].split()[0]
    assert f'kb_registry = "{address}"' in (local_chain.home / "config.toml").read_text()
    assert "already has a KnowledgeRegistry" in refused("kb", "deploy-registry", "--governor", owner, "--yes")
    wrong = refused("kb", "propose", CID, "--contributor", CONTRIBUTOR, "--account", "dev:1")
    assert f"governed by the account {owner}" in wrong
    out = ok("kb", "propose", CID, "--contributor", CONTRIBUTOR, "--account", "dev:7")
    assert out.startswith(f"approved: {CID} from {CONTRIBUTOR} at block")
    assert KnowledgeRegistry(local_chain.w3, address).is_approved(CONTRIBUTOR, CID)
    assert "governed by the account" in refused("dao", "proposals")
    ok("kb", "revoke", CID, "--contributor", CONTRIBUTOR, "--account", "dev:7")
    assert not KnowledgeRegistry(local_chain.w3, address).is_approved(CONTRIBUTOR, CID)
    with DeployLog() as log:  # each change one intent in the outbox's log, mined
        rows = log._db.execute("SELECT kind, status FROM deploys ORDER BY id").fetchall()
    kinds = [("deploy-kb-registry", "mined"), ("kb-approve", "mined"), ("kb-revoke", "mined")]
    assert [tuple(r) for r in rows] == kinds


@pytest.mark.parametrize("bad", ["not-a-cid", "Qm123"])
def test_a_bad_cid_is_one_line(local_chain: LocalChain, bad: str) -> None:
    result = run("kb", "propose", bad, "--contributor", CONTRIBUTOR, "--account", "dev:1")
    assert result.exit_code == 1 and "\n" not in str(result.exception)


@pytest.mark.parametrize("step", ["dao-vote-signed", "dao-vote-sent"])
def test_a_vote_interrupted_after_signing_is_settled_not_signed_twice(local_chain: LocalChain, step: str) -> None:
    """`attest dao vote` killed right after its transaction was recorded signed (not sent) or sent: the same
    command again sends those very bytes (or finds them mined), one vote, one nonce."""
    ok("kb", "propose", CID, "--contributor", CONTRIBUTOR, "--account", "dev:1")
    short_id = only_proposal()["id"][:12]
    mine(local_chain, 2)
    voter = dev_account(3).address
    nonce = local_chain.w3.eth.get_transaction_count(voter)
    args = [ATTEST, "dao", "vote", short_id, "--support", "for", "--account", "dev:3"]
    env = {**os.environ, "ATTEST_HOME": str(local_chain.home), "ATTEST_CRASH_AT": step}
    crashed = subprocess.run(args, env=env, capture_output=True, text=True, timeout=120)
    assert crashed.returncode == 137, crashed.stderr
    env.pop("ATTEST_CRASH_AT")
    again = subprocess.run(args, env=env, capture_output=True, text=True, timeout=120)
    assert again.returncode == 0, again.stderr
    assert "voted:    for" in again.stdout
    assert local_chain.w3.eth.get_transaction_count(voter) == nonce + 1
    assert Governor(local_chain.w3, local_chain.deployment.governor).has_voted(int(only_proposal()["id"], 16), voter)
    assert "already voted" in refused("dao", "vote", short_id, "--support", "for", "--account", "dev:3")


def test_a_devnet_deployed_before_governance_gets_its_dao_on_the_next_up(tmp_path: Path) -> None:
    from attest.devnet import Devnet
    from tests.support.ports import free_port

    devnet = Devnet(tmp_path)
    devnet.up(free_port())
    devnet.down()
    old = json.loads(devnet.deployment_file.read_text())
    for key in ("kb_registry", "governor", "timelock", "votes_token"):
        del old[key]  # what a devnet deployed by the release before this one has
    devnet.deployment_file.write_text(json.dumps(old))
    try:
        status, _ = devnet.up(free_port())
        d = status.deployment
        assert d is not None and d.kb_registry and d.oov3 == old["oov3"]
        w3 = devnet.web3()
        assert KnowledgeRegistry.at(w3, d.kb_registry).governor() == Governor(w3, d.governor).timelock()
        assert devnet.deployment() == d  # written down for the next start
    finally:
        devnet.down()
