"""`attest kb sync`: the governed knowledge base follows its KnowledgeRegistry (the AWS series' Lambda authorizer).

Every signed request is checked before anything is written: its chain and registry, its expiry, its signature
(it must recover to its contributor), its nonce (never used before, here or earlier in the same call), and that
the registry approves that contributor for that CID at the block the approved set is read at. Each document is
then fetched from IPFS, every block hashed against its CID. Only when all of that holds does one KB transaction
ingest the documents, remember the requests, remove every document whose approval is no longer in force and note
the block. Any refusal is one line naming the request and why; the KB is unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from attest.chain.knowledge import KnowledgeRegistry, canonical_cid
from attest.errors import AttestError, GovernanceError, IngestRequestError, KbError
from attest.ipfs.cid import CID
from attest.ipfs.remotes import read_anywhere
from attest.ipfs.store import DEFAULT_TIMEOUT_S, ContentStore
from attest.ipfs.unixfs import cid_of
from attest.kb import AddResult, Governance, KnowledgeBase
from attest.kb.request import IngestRequest, check_request

if TYPE_CHECKING:
    from attest.connect import ChainContext


@dataclass(frozen=True)
class SyncResult:
    governance: Governance
    results: tuple[AddResult, ...]  # one per accepted request
    removed: tuple[str, ...]  # CIDs whose approval is no longer in force


def sync_knowledge_base(
    kb: KnowledgeBase,
    registry: KnowledgeRegistry,
    chain_id: int,
    requests: Sequence[IngestRequest],
    readers: Sequence[ContentStore],
    *,
    now: int,
    timeout_s: float = DEFAULT_TIMEOUT_S,
) -> SyncResult:
    """Ingest every valid request's document and drop the revoked ones, as of the registry's latest block."""
    block = int(registry.w3.eth.block_number)
    gov = Governance(registry.address, chain_id, block)
    _check_same_governance(kb, gov)
    seen: set[tuple[str, int]] = set()
    for request in requests:
        check_request(request, chain_id=chain_id, registry=registry.address, now=now)
        used = kb.nonce_used(request.contributor, request.nonce)
        if used is not None or (request.contributor, request.nonce) in seen:
            raise IngestRequestError(
                f"the request for {request.cid} by {request.contributor} reuses nonce {request.nonce} "
                f"(already used for {used or 'another request here'}): it is a replay; ask for a new request"
            )
        seen.add((request.contributor, request.nonce))
        _check_approved(registry, request, block)
    accepted = [(request, _fetch(request, readers, timeout_s)) for request in requests]
    revoked = [
        cid
        for cid, contributor in sorted(kb.contributors().items())
        if not any(a.contributor == contributor and a.in_force_at(block) for a in registry.approvals_of(cid))
    ]
    results = kb.sync_governed(gov, accepted, revoked)
    return SyncResult(gov, tuple(results), tuple(revoked))


def _check_same_governance(kb: KnowledgeBase, gov: Governance) -> None:
    current = kb.governance()
    if current is not None and (current.registry, current.chain_id) != (gov.registry, gov.chain_id):
        raise KbError(
            f"this knowledge base is governed by {current.registry} on chain {current.chain_id}, not by "
            f"{gov.registry} on chain {gov.chain_id}; sync it with its own network, or use another ATTEST_HOME"
        )
    ungoverned = sorted(set(d.doc_cid for d in kb.documents()) - set(kb.contributors()))
    if ungoverned:
        raise KbError(
            f"the knowledge base holds {len(ungoverned)} document(s) no signed request brought in (such as "
            f"{ungoverned[0]}): a governed KB holds only approved ones; remove them (`attest kb remove`) or use "
            "another ATTEST_HOME for the governed knowledge base"
        )


def _check_approved(registry: KnowledgeRegistry, request: IngestRequest, block: int) -> None:
    approvals = registry.approvals_of(request.cid)
    mine = [a for a in approvals if a.contributor == request.contributor]
    if any(a.in_force_at(block) for a in mine):
        return
    what = f"{request.cid} is not approved for {request.contributor} by {registry.address} at block {block}"
    if mine:
        revoked_at = max(a.revoked_at or 0 for a in mine)
        raise IngestRequestError(f"{what}: that approval was revoked at block {revoked_at}; refused")
    if approvals:
        others = ", ".join(sorted({a.contributor for a in approvals}))
        raise IngestRequestError(f"{what}: it was approved for {others} only; refused")
    raise IngestRequestError(f"{what}: it was never approved; propose it first (`attest kb propose`); refused")


def _fetch(request: IngestRequest, readers: Sequence[ContentStore], timeout_s: float) -> bytes:
    try:
        data, _where = read_anywhere(CID.parse(request.cid), readers, timeout_s=timeout_s)
    except AttestError as err:  # nothing found, or only bytes that do not hash to the CID
        raise IngestRequestError(f"cannot ingest {request.cid}: {err}; nothing was ingested") from None
    # The KB names a document by the CIDv1 of its bytes; the registry must have approved that very name, or a
    # record citing it could not be checked against the registry.
    own = str(cid_of(data, cid_version=1))
    if own != canonical_cid(request.cid):
        raise IngestRequestError(
            f"{request.cid} names the document the KB calls {own} (its CIDv1, as `attest ipfs add` prints it); "
            "approve and request that CID; nothing was ingested"
        )
    return data


def knowledge_registry(ctx: ChainContext, address: str | None) -> KnowledgeRegistry:
    """The KnowledgeRegistry that governs the KB on this network: `address` when given, else the configured one
    ([networks.N] kb_registry), else the devnet's."""
    address = address or ctx.kb_registry
    if address is None:
        raise GovernanceError(
            f"no knowledge registry is known on {ctx.network.name}: set [networks.{ctx.network.name}] kb_registry "
            "in the config file, or pass --registry 0x…"
        )
    return KnowledgeRegistry.at(ctx.w3, address)
