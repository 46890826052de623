"""The stores a configuration names, and the two things done across them: pin everywhere, read from anywhere.

Replication reports every remote's result (one failing remote does not hide the others). Reading tries the
local store first, then each reader in order; a source that returns tampered bytes is skipped, and if no
source has good bytes the error says which sources were tampered with.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from attest.config import IpfsConfig
from attest.errors import CarError, NotFound, StoreError, TamperedContent
from attest.ipfs.cid import CID
from attest.ipfs.store import ContentStore, PinResult


@dataclass(frozen=True)
class Remotes:
    pinners: tuple[ContentStore, ...]  # where `pin` goes: a Kubo node, pinning services
    readers: tuple[ContentStore, ...]  # where `get` may read: a Kubo node, gateways

    @classmethod
    def from_config(cls, config: IpfsConfig) -> Remotes:
        # Each client is imported only when configured: the Kubo one pulls in ipfshttpclient (~50 ms), paid
        # by every `attest ask` of a home with no remote otherwise.
        kubo: list[ContentStore] = []
        if config.kubo_api:
            from attest.ipfs.kubo import KuboStore

            kubo.append(KuboStore(config.kubo_api, timeout_s=config.timeout_s))
        services: list[ContentStore] = []
        if config.pinning:
            from attest.ipfs.pinning import PinningService

            services += (
                PinningService(r.endpoint, r.token(), timeout_s=config.timeout_s, token_env=r.token_env)
                for r in config.pinning
            )
        gateways: list[ContentStore] = []
        if config.gateways:
            from attest.ipfs.gateway import Gateway

            gateways += (Gateway(url, timeout_s=config.timeout_s) for url in config.gateways)
        return cls(pinners=(*kubo, *services), readers=(*kubo, *gateways))


def replicate(cid: CID, data: bytes, pinners: Sequence[ContentStore]) -> list[PinResult]:
    """Hand every pinner the file and ask it to keep it: one result per pinner, failures included.

    A node (Kubo) receives the bytes; a pinning service receives the CID and fetches the bytes over IPFS.
    A pinner that computes another CID for the same bytes chunks differently and is reported as failed.
    """
    results = []
    for store in pinners:
        try:
            stored = store.put(data, cid_version=cid.version)
            if stored != cid:
                raise StoreError(f"{store.name} computed {stored} for the bytes of {cid}; it chunks differently")
            results.append(store.pin(cid))
        except StoreError as err:
            results.append(PinResult(store.name, str(cid), ok=False, status="failed", detail=str(err)))
    return results


def publish(
    items: Sequence[tuple[str, CID, bytes]], pinners: Sequence[ContentStore]
) -> tuple[list[PinResult], list[str]]:
    """Replicate every (what, CID, bytes) to every pinner: every result, and one line for each copy that is not
    confirmed. Confirmed means status "pinned": a Kubo node answered `pin/add` with the CID, so it holds every
    block of the DAG; a pinning service reports the pin done. "queued" or "pinning" is accepted by `replicate`,
    but nobody can fetch it yet, so it is not confirmed."""
    results: list[PinResult] = []
    unconfirmed: list[str] = []
    for what, cid, data in items:
        for result in replicate(cid, data, pinners):
            results.append(result)
            if result.status != "pinned":
                unconfirmed.append(f"{what} {cid} at {result.store} ({result.detail or result.status})")
    return results, unconfirmed


def read_anywhere(cid: CID, sources: Sequence[ContentStore], *, timeout_s: float) -> tuple[bytes, str]:
    """The verified bytes of `cid` and the name of the source that gave them."""
    tampered: list[str] = []
    missing: list[str] = []
    for source in sources:
        try:
            return source.get(cid, timeout_s=timeout_s), source.name
        except (TamperedContent, CarError):  # a corrupt CAR is bad bytes from that source too
            tampered.append(source.name)
        except StoreError:
            missing.append(source.name)
    if tampered:
        raise TamperedContent(str(cid), ", ".join(tampered), "no other source had good bytes")
    raise NotFound(str(cid), ", ".join(missing) or "no configured source", timeout_s)
