"""Everything a voter needs is public before a bond is at stake: the record, the claim rules, every cited
document and the corpus manifest, pinned to every configured remote and confirmed there before `ask` (or
`resume`) asserts. A voter told to vote 0 when cited context cannot be fetched would otherwise hand the bond to
any watcher. Off the devnet, asserting with no remote at all is refused unless the asserter says they publish
the content by other means.
"""

from __future__ import annotations

from dataclasses import asdict

from attest.chain.outbox import checkpoint
from attest.claim import rules_bytes
from attest.config import Config
from attest.errors import ConfigError, NotPublished, StoreError
from attest.ipfs.cid import CID
from attest.ipfs.local import LocalStore
from attest.ipfs.remotes import Remotes, publish, read_anywhere
from attest.ledger import Attestation, Ledger
from attest.networks import LOCAL_CHAIN_ID, Network
from attest.record.codec import decode_record

PUBLISH_ELSEWHERE = "--publish-elsewhere"


def require_remote(network: Network, config: Config, *, published_elsewhere: bool) -> str | None:
    """Refuse (ConfigError) to assert off the devnet with no remote to publish to; the warning to show when the
    asserter overrides it, else None."""
    ipfs = config.ipfs_for(network.name)
    if network.chain_id == LOCAL_CHAIN_ID or ipfs.kubo_api or ipfs.pinning:
        return None
    if not published_elsewhere:
        raise ConfigError(
            f"no IPFS remote is configured for {network.name}, so voters could not fetch the record or its context "
            "and the bond would be lost; set [ipfs] kubo_api (or ATTEST_IPFS_API) or add an [[ipfs.pinning]] "
            f"service to the config, or pass {PUBLISH_ELSEWHERE} if you publish the content yourself"
        )
    return (
        f"{PUBLISH_ELSEWHERE}: no IPFS remote is configured; the record, the rules, the cited documents and the "
        "corpus manifest must be fetchable by CID before anyone disputes, or the bond is lost"
    )


def pin_record(ledger: Ledger, attestation: Attestation, store: LocalStore, config: Config) -> None:
    """Pin and publish the record (`publish_record`), then mark it pinned. A record to be asserted is marked
    pinned only once every remote confirmed every piece: its bond must never stand on evidence nobody else can
    fetch. Idempotent."""
    cid, rules_cid, pins = publish_record(
        attestation.record, attestation.network, store, config, strict=attestation.want_assert
    )
    ledger.update(
        attestation.id, "pinned", {"cid": str(cid), "rules": str(rules_cid)},
        status="pinned", cid=str(cid), rules_cid=str(rules_cid), pins=pins,
    )  # fmt: skip
    checkpoint("pinned")


def publish_record(
    record: bytes, network: str, store: LocalStore, config: Config, *, strict: bool
) -> tuple[CID, CID, list[dict[str, object]]]:
    """Pin the record and the rules it claims to follow locally, then publish everything a voter needs (record,
    rules, every cited document, the corpus manifest) to every configured remote; (record CID, rules CID, pin
    results). `strict` (the record is to be asserted): a piece some remote did not confirm is an error."""
    rules = rules_bytes(governed=_governed_corpus(record, store))
    ipfs = config.ipfs_for(network)
    cid = store.put(record, cid_version=ipfs.cid_version)
    rules_cid = store.put(rules, cid_version=ipfs.cid_version)
    pins = [asdict(store.pin(cid)), asdict(store.pin(rules_cid))]
    remotes = Remotes.from_config(ipfs)
    if remotes.pinners:
        items = [("the record", cid, record), ("the rules", rules_cid, rules)]
        items += _evidence(record, store, remotes, ipfs.timeout_s, strict=strict)
        results, unconfirmed = publish(items, remotes.pinners)
        pins += [asdict(result) for result in results]
        if unconfirmed and strict:
            more = f" (and {len(unconfirmed) - 1} more)" if len(unconfirmed) > 1 else ""
            raise NotPublished(
                f"not public yet: {unconfirmed[0]}{more}; nothing was asserted. Fix the remote or wait for the "
                "pinning service, then `attest resume`"
            )
    return cid, rules_cid, pins


def _governed_corpus(record: bytes, store: LocalStore) -> bool:
    """Was the record answered from a governed knowledge base? Then its claim follows the governed rules (v3), so a
    cited document the registry had not approved makes it false. The manifest is in the local store: `ask`
    pinned it there."""
    from attest.kb.governed import parse_manifest

    corpus = decode_record(record).corpus
    if corpus is None:
        return False
    try:
        return parse_manifest(store.get(CID.parse(corpus))).governance is not None
    except (StoreError, ValueError):
        return False


def _evidence(
    record: bytes, store: LocalStore, remotes: Remotes, timeout_s: float, *, strict: bool
) -> list[tuple[str, CID, bytes]]:
    """The cited documents and the corpus manifest, from the local blockstore (`kb add` keeps them there) or,
    for a document ingested by CID, from where it was read. `strict`: one that cannot be read is an error (the
    record is to be asserted); otherwise it is left out."""
    decoded = decode_record(record)
    wanted = {c.doc_cid: f"the cited document {c.source}" for c in decoded.context}
    if decoded.corpus is not None:
        wanted[decoded.corpus] = "the corpus manifest"
    items = []
    for text, what in wanted.items():
        cid = CID.parse(text)
        try:
            data, _source = read_anywhere(cid, (store, *remotes.readers), timeout_s=timeout_s)
        except StoreError as err:
            if not strict:
                continue
            raise NotPublished(
                f"cannot read {what} ({cid}) to publish it: {err}; add it to the knowledge base again (`attest kb add`)"
            ) from None
        items.append((what, cid, data))
    return items
