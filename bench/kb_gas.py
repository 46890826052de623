"""Gas of a governed knowledge base: the KnowledgeRegistry's approve and revoke sent by an account governor, and
each step of the devnet DAO's cycle that approves one document (propose, vote, queue, execute).

    python -m bench kb_gas
"""

from __future__ import annotations

import sys
from typing import Any

from web3 import Web3

from attest.accounts import dev_account
from attest.chain.dao import Governor
from attest.chain.knowledge import KnowledgeRegistry, deploy_call
from attest.chain.tx import Sender
from bench.common import Table, throwaway_devnet

CID = "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy"  # 59 characters, as every CIDv1 raw leaf


def _gas(receipt: Any) -> int:
    return int(receipt["gasUsed"])


def run(quick: bool = False) -> list[Table]:
    del quick  # gas is deterministic: one run of each is the measurement
    with throwaway_devnet() as (w3, deployment):
        owner = Sender(w3, dev_account(7))
        address = owner.transact(deploy_call(w3, owner.address), "deploy KnowledgeRegistry")["contractAddress"]
        registry = KnowledgeRegistry(w3, str(address))
        alice, bob = dev_account(5).address, dev_account(6).address

        def send(data: bytes) -> int:
            return _gas(owner.transact(registry.call(data), "kb change"))

        first = send(registry.approve_data(alice, CID))
        second = send(registry.approve_data(bob, CID))
        revoke = send(registry.revoke_data(alice, CID))
        again = send(registry.approve_data(alice, CID))
        direct = [
            ("approve: the first approval of a CID", f"{first:,}"),
            ("approve: another contributor of the same CID", f"{second:,}"),
            ("revoke", f"{revoke:,}"),
            ("approve: again after a revocation", f"{again:,}"),
        ]
        dao_rows = _dao_cycle(w3, Governor(w3, deployment.governor), KnowledgeRegistry(w3, deployment.kb_registry))
    return [
        Table(
            "Gas of the KnowledgeRegistry (account governor, direct calls)",
            ("call", "gas"),
            direct,
            "Each approval is one storage slot (contributor, approved and revoked block packed) in the CID's list plus "
            "the index of the one in force; a revocation rewrites the slot and clears the index (a refund). The first "
            "approval of a CID also starts its list (the length slot); the CID is a 59-character CIDv1.",
        ),
        Table(
            "Gas of one DAO cycle approving a document (devnet Governor + timelock)",
            ("step", "gas"),
            dao_rows,
            "OpenZeppelin 4.9.6 Governor (simple counting, ERC20Votes, 4% quorum, TimelockControl). Execute "
            "includes the registry's approve, called by the timelock.",
        ),
    ]


def _dao_cycle(w3: Web3, governor: Governor, registry: KnowledgeRegistry) -> list[tuple[str, str]]:
    voter = Sender(w3, dev_account(1))
    contributor = dev_account(6).address
    targets, values, calldatas = [str(registry.address)], [0], [registry.approve_data(contributor, CID)]
    description = f"Approve document {CID} from contributor {contributor} in the knowledge base"
    proposal_id = governor.proposal_id(targets, values, calldatas, description)
    propose = _gas(voter.transact(governor.propose_call(targets, values, calldatas, description), "propose"))
    w3.provider.make_request("anvil_mine", [hex(governor.voting_delay() + 1), "0x1"])  # type: ignore[arg-type]
    vote = _gas(voter.transact(governor.vote_call(proposal_id, "for"), "vote"))
    w3.provider.make_request("anvil_mine", [hex(governor.voting_period()), "0x1"])  # type: ignore[arg-type]
    (proposal,) = [p for p in governor.proposals() if p.id == proposal_id]
    queue = _gas(voter.transact(governor.queue_call(proposal), "queue"))
    w3.provider.make_request("evm_increaseTime", [3600])  # type: ignore[arg-type]
    w3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]
    execute = _gas(voter.transact(governor.execute_call(proposal), "execute"))
    assert registry.is_approved(contributor, CID)
    total = propose + vote + queue + execute
    return [
        ("propose", f"{propose:,}"),
        ("castVote (one holder)", f"{vote:,}"),
        ("queue", f"{queue:,}"),
        ("execute (approve inside)", f"{execute:,}"),
        ("total", f"{total:,}"),
    ]


def main(argv: list[str]) -> None:
    for table in run(quick="--quick" in argv):
        print(table.markdown())


if __name__ == "__main__":
    main(sys.argv[1:])
