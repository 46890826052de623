"""Deploy a governed knowledge base's contracts on the devnet: the voting token, the timelock, the Governor and the
KnowledgeRegistry the timelock governs.

The first holders (dev accounts) get equal votes, already delegated to themselves; the vote's delay and period
are a few blocks and the timelock's delay a minute, so a whole cycle fits in a test or a walkthrough
(`attest devnet advance --blocks N`, `attest devnet advance 2m`). The timelock has no admin once deployed: only
the Governor proposes and cancels, anyone executes what is ready.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from web3 import Web3

from attest.chain.artifacts import Artifact, shipped
from attest.chain.oov3 import ZERO_ADDRESS
from attest.chain.tx import Sender


@dataclass(frozen=True)
class DaoParams:
    voting_delay: int = 1  # blocks from a proposal to its vote
    voting_period: int = 10  # blocks the vote stays open
    timelock_delay: int = 60  # seconds from queueing to execution
    quorum_percent: int = 4  # of the supply at the snapshot: one holder of five meets it alone
    votes_per_holder: int = 100 * 10**18
    token_name: str = "Knowledge Votes (devnet)"
    token_symbol: str = "KVOTE"


@dataclass(frozen=True)
class Governance:
    kb_registry: str  # KnowledgeRegistry, governed by the timelock
    governor: str  # KnowledgeGovernor
    timelock: str  # KnowledgeTimelock
    votes_token: str  # KnowledgeVotes


def deploy_governance(
    sender: Sender,
    holders: Sequence[str],
    params: DaoParams = DaoParams(),
    *,
    artifact: Callable[[str], Artifact] = shipped,
) -> Governance:
    """Token → timelock → Governor (the timelock's only proposer and canceller) → KnowledgeRegistry owned by the
    timelock. `artifact`: where the bytecode comes from (the contract tests pass the freshly compiled one)."""
    holders = [Web3.to_checksum_address(h) for h in holders]
    token = sender.deploy(
        artifact("KnowledgeVotes"),
        params.token_name,
        params.token_symbol,
        holders,
        [params.votes_per_holder] * len(holders),
    )
    # Executors: the zero address means anyone may execute a proposal once its delay has passed.
    timelock = sender.deploy(artifact("KnowledgeTimelock"), params.timelock_delay, [], [ZERO_ADDRESS], sender.address)
    governor = sender.deploy(
        artifact("KnowledgeGovernor"),
        token.address,
        timelock.address,
        params.voting_delay,
        params.voting_period,
        params.quorum_percent,
    )
    for role in ("PROPOSER_ROLE", "CANCELLER_ROLE"):
        role_id = timelock.functions[role]().call()
        sender.transact(timelock.functions.grantRole(role_id, governor.address), f"grant {role}")
    admin_role = timelock.functions.TIMELOCK_ADMIN_ROLE().call()
    sender.transact(timelock.functions.renounceRole(admin_role, sender.address), "renounce the timelock admin")
    registry = sender.deploy(artifact("KnowledgeRegistry"), timelock.address)
    return Governance(registry.address, governor.address, timelock.address, token.address)
