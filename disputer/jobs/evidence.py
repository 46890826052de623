"""The evidence job: after a batch dispute lands, pin the document naming the failing records and announce it
with the registry's Evidence event, once per assertion (its outbox row), so voters check the named records
instead of all N and a dashboard finds them by assertion id."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from attest.batch.manifest import decode_manifest
from attest.errors import BatchError, StoreError
from attest.ipfs.cid import CID
from attest.ipfs.gateway import Gateway
from attest.ipfs.remotes import read_anywhere
from attest.ipfs.store import ContentStore
from disputer.actions import Actor, SendResult
from disputer.evidence import evidence_document
from disputer.store import DisputerStore

log = logging.getLogger(__name__)
FETCH_TIMEOUT_S = 30.0  # the manifest was read when the batch was judged: normally from the local store


def publish_evidence_due(
    store: DisputerStore, actor: Actor, readers: Sequence[ContentStore], *, chain_id: int, threshold: float
) -> dict[bytes, SendResult]:
    """Pin and announce the evidence of every landed batch dispute that has none announced yet. A manifest or a
    store out of reach now leaves that one for the next step (the dispute is already sent)."""
    sent: dict[bytes, SendResult] = {}
    for decision in store.evidence_due(chain_id):
        aid = decision.assertion_id
        try:
            uri = pin_evidence(decision.assertion_id, decision.checks, decision.reason, readers, threshold)
        except (StoreError, BatchError) as err:
            log.warning("evidence for 0x%s is not published yet: %s", aid.hex(), err)
            continue
        sent[aid] = actor.publish_evidence(aid, uri)
    return sent


def pin_evidence(
    assertion_id: bytes, checks: dict[str, object], reason: str, readers: Sequence[ContentStore], threshold: float
) -> str:
    """The evidence document pinned in every writable store we read from (the local one first); its ipfs:// URI."""
    batch = checks["batch"]
    assert isinstance(batch, dict)
    manifest = decode_manifest(read_anywhere(CID.parse(str(batch["manifest"])), readers, timeout_s=FETCH_TIMEOUT_S)[0])
    data = evidence_document(assertion_id, dict(checks), [leaf.cid for leaf in manifest.leaves], threshold, reason)
    writable = [r for r in readers if not isinstance(r, Gateway)]
    if not writable:
        raise StoreError("no writable IPFS store to pin the evidence to")
    cid = writable[0].put(data)
    for target in writable:
        if target is not writable[0]:
            target.put(data)
        target.pin(cid)
    return f"ipfs://{cid}"
