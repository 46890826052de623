"""The on-chain anchor of preference records: the registry's `anchor(root)` for the Merkle root of one or more
signed preferences of one ranker, sent by the ranker's account through the one outbox; and its check.

A preference is a signed opinion, not a truth claim, so it is never a leaf of a UMA-asserted batch (whose rules
say every leaf is a correct answer, and whose bond a disputer would take): the Anchored event alone is its
timestamped, public proof of existence, at the same gas for one preference or a thousand (docs/benchmarks.md).

The proof travels in an anchor receipt pinned beside each preference (`llm-attest/preference-anchor/v1`: the
preference, its digest, the root, the proof, chain, registry, transaction and block), named by `attest export`
rows: a third party holding the dataset checks each row with `attest verify CID --anchor RECEIPT`. A one-preference
anchor (what `attest rank` sends by default) needs no receipt: its root is the preference's leaf, so the event is
found by log query on the ranker and that root from the CID alone.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import cast

from hexbytes import HexBytes
from web3.exceptions import TransactionNotFound
from web3.types import FilterParams

from attest.batch import merkle
from attest.batch.anchors import ANCHORED, Anchor, AnchorBook
from attest.chain.abi import EncodedCall, checksum, event, method
from attest.chain.artifacts import shipped
from attest.chain.outbox import checkpoint, send_once
from attest.chain.tx import Sender
from attest.config import Config, load_config
from attest.connect import ChainContext, connect
from attest.errors import AttestError, ConfigError, PreferenceError, TransactionRejected
from attest.ipfs.local import LocalStore
from attest.ipfs.remotes import Remotes, replicate
from attest.ledger import Ledger
from attest.record.canonical import canonicalize
from attest.record.preference import PreferenceRecord, preference_digest

RECEIPT_SCHEMA = "llm-attest/preference-anchor/v1"
Prompt = Callable[[str], str]


@dataclass(frozen=True)
class AnchorResult:
    anchor: Anchor
    cids: list[str]  # the preferences under its root
    receipts: list[str]  # their pinned anchor receipts, in the same order


def anchor_pending(
    preference_ids: Sequence[int] | None = None, *, config: Config | None = None, prompt: Prompt | None = None
) -> list[AnchorResult]:
    """Finish every anchor the ranking account left open (a crash, an outage: the outbox settles what it signed,
    never signs it twice), then anchor its unanchored preferences (`preference_ids`, or all) in one transaction
    per network."""
    from attest.accounts import load_account

    config = config or load_config()
    results: list[AnchorResult] = []
    with Ledger() as ledger:
        book = AnchorBook(ledger.database)
        networks = sorted({a.network for a in book.open()} | set(book.unanchored_networks()))
        for net in networks:
            ranker = load_account(config.rank.account, net, default=config.defaults.account, prompt=prompt).account
            open_ = book.open(ranker.address, net)
            leaves = book.unanchored(ranker.address, net, preference_ids)
            if not open_ and not leaves:
                continue
            ctx = connect(net, config=config)
            sender = ctx.sender(ranker)
            registry = _registry(ctx)
            # Decided and sent under the ranker's signing lock: a concurrent `attest rank anchor` of this home waits,
            # then finds these anchored instead of sending its own for them.
            with sender.signing():
                results += [_drive(book, a, ctx, sender, config) for a in book.open(ranker.address, net)]
                leaves = book.unanchored(ranker.address, net, preference_ids)
                made = leaves and book.create(
                    leaves, network=net, chain_id=ctx.chain_id, registry=registry, ranker=ranker.address
                )
                if made:
                    checkpoint("anchor-created")
                    results.append(_drive(book, made, ctx, sender, config))
    return results


def _registry(ctx: ChainContext) -> str:
    if ctx.registry is None:
        raise ConfigError(
            f"no AttestationRegistry is configured for {ctx.network.name}, so preferences cannot be anchored; "
            "`attest registry deploy --save`, or rank with --no-anchor"
        )
    return checksum(ctx.registry)


def _drive(book: AnchorBook, anchor: Anchor, ctx: ChainContext, sender: Sender, config: Config) -> AnchorResult:
    """anchoring → anchored → receipts pinned; each step safe to run again after a crash."""
    if anchor.status != ANCHORED:
        if checksum(anchor.registry) != _registry(ctx):
            raise PreferenceError(
                f"anchor #{anchor.id} was made for the registry {anchor.registry}, not {ctx.registry}; "
                "configure that registry again to finish it"
            )
        data = method("AttestationRegistry", "anchor").encode(bytes.fromhex(anchor.root[2:]))
        call = EncodedCall(ctx.w3, anchor.registry, data, shipped("AttestationRegistry").abi)
        try:
            receipt = send_once(book, anchor.id, "anchor", sender, call, "anchor")
        except TransactionRejected as err:
            raise PreferenceError(
                f"{err} Is the registry {anchor.registry} older than anchor()? `attest registry deploy` a new one "
                "(the preferences stay unanchored; `attest rank anchor` retries)"
            ) from None
        block = int(receipt["blockNumber"])
        timestamp = int(ctx.w3.eth.get_block(block)["timestamp"])
        anchor = book.anchored(
            anchor.id, tx_hash=receipt["transactionHash"].to_0x_hex(), block=block, block_time=timestamp
        )
        checkpoint("anchor-recorded")
    ipfs = config.ipfs_for(anchor.network)
    store, pinners = LocalStore(), Remotes.from_config(ipfs).pinners
    cids, receipts = [], []
    for leaf in book.leaves(anchor.id):
        doc = receipt_bytes(leaf.cid, leaf.digest, anchor, leaf.proof)
        cid = store.put(doc, cid_version=ipfs.cid_version)  # the same bytes each run: the same CID
        store.pin(cid)
        replicate(cid, doc, pinners)  # best effort: the local pin is the one that counts
        book.set_receipt(leaf.preference_id, str(cid))
        cids.append(leaf.cid)
        receipts.append(str(cid))
    return AnchorResult(anchor, cids, receipts)


def receipt_bytes(cid: str, digest: str, anchor: Anchor, proof: list[str]) -> bytes:
    return canonicalize(
        {
            "schema": RECEIPT_SCHEMA, "preference": cid, "digest": digest, "ranker": anchor.ranker,
            "root": anchor.root, "proof": proof, "count": anchor.count, "chain_id": anchor.chain_id,
            "registry": anchor.registry, "tx": anchor.tx_hash, "block": anchor.block_number,
        }
    )  # fmt: skip


# -- the check -----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class AnchorClaim:
    """Where a preference says it is anchored: a root, its proof, and maybe the transaction and network."""

    root: str
    proof: list[str]
    tx: str | None
    network: str | None
    chain_id: int | None
    registry: str | None
    count: int | None


def claim_from_receipt(data: bytes, cid: str, digest: str) -> AnchorClaim:
    try:
        doc = json.loads(data)
        if doc.get("schema") != RECEIPT_SCHEMA:
            raise ValueError(f"schema {doc.get('schema')!r}, expected {RECEIPT_SCHEMA}")
        if (doc["preference"], doc["digest"]) != (cid, digest):
            raise ValueError(f"it is the receipt of {doc['preference']}, not of this preference")
        return AnchorClaim(
            str(doc["root"]), [str(p) for p in doc["proof"]], doc.get("tx"), None, int(doc["chain_id"]),
            str(doc["registry"]), int(doc["count"]),
        )  # fmt: skip
    except (ValueError, KeyError, TypeError, AttributeError) as err:
        raise PreferenceError(f"not an anchor receipt of this preference: {err}") from None


def claim_from_ledger(cid: str) -> AnchorClaim | str | None:
    """The ledger's anchor of preference `cid`: a claim, a reason it is pending, or None (not ours)."""
    try:
        with Ledger() as ledger:
            row = AnchorBook(ledger.database).claim_of(cid)
    except AttestError:  # no ledger here: a third party's check
        return None
    if row is None:
        return None
    if row["anchor_id"] is None:
        return "not anchored yet: `attest rank anchor` anchors it"
    if row["anchor_tx"] is None:
        return f"anchor #{row['anchor_id']} is not mined yet: `attest rank anchor` finishes it"
    return AnchorClaim(
        row["anchor_root"], json.loads(row["anchor_proof"]), row["anchor_tx"], row["network"], row["chain_id"],
        row["registry"], row["count"],
    )  # fmt: skip


def check_anchor(
    record: PreferenceRecord, claim: AnchorClaim | None, network: str, config: Config
) -> tuple[bool | None, str]:
    """(True, detail) PASS, (False, why) FAIL, (None, why) PENDING: the Anchored event of the preference's root
    from the configured registry, the proof of the preference under it, and the ranker as its sender."""
    digest = preference_digest(record)
    if claim is None:  # a one-preference anchor: its root is the leaf itself, found by log query
        claim = AnchorClaim("0x" + merkle.leaf_hash(digest).hex(), [], None, None, None, None, 1)
        lookup = True
    else:
        lookup = False
    root = bytes.fromhex(claim.root[2:])
    proof = [bytes.fromhex(p[2:]) for p in claim.proof]
    if not merkle.verify(digest, proof, root):
        return False, f"the proof does not place this preference's digest under the root {claim.root}"
    ctx = connect(claim.network or network, config=config, start_devnet=False)
    if claim.chain_id is not None and claim.chain_id != ctx.chain_id:
        return False, f"anchored on chain {claim.chain_id}, but {ctx.network.name} is chain {ctx.chain_id}"
    registry = _registry(ctx)
    if claim.registry is not None and checksum(claim.registry) != registry:
        return False, f"anchored through {claim.registry}, not {ctx.network.name}'s registry {registry}"
    anchored = event("AttestationRegistry", "Anchored")
    if claim.tx is not None:
        try:
            logs = list(ctx.w3.eth.get_transaction_receipt(HexBytes(claim.tx))["logs"])
        except TransactionNotFound:
            return False, f"the anchor transaction {claim.tx} was not found on {ctx.network.name}"
    else:
        by = HexBytes(bytes(12) + bytes.fromhex(record.ranker[2:]))
        query = {"address": registry, "fromBlock": 0, "toBlock": "latest", "topics": [anchored.topic, by, root]}
        logs = list(ctx.w3.eth.get_logs(cast(FilterParams, query)))
    found = [
        anchored.decode(log) for log in logs
        if checksum(log["address"]) == registry and log["topics"] and bytes(log["topics"][0]) == anchored.topic
        and bytes(log["topics"][2]) == root
    ]  # fmt: skip
    if not found:
        if lookup:
            return None, (
                f"no anchor of this preference alone by {record.ranker} on {ctx.network.name}: not anchored yet, or "
                "anchored with others (pass --anchor RECEIPT, the export's anchor_receipt)"
            )
        return False, f"no Anchored event of the root {claim.root} from {registry} in {claim.tx}"
    log = found[0]
    if log["args"]["by"] != record.ranker:
        return False, f"the root was anchored by {log['args']['by']}, not the ranker {record.ranker}"
    block = int(log["blockNumber"])
    when = datetime.fromtimestamp(int(ctx.w3.eth.get_block(block)["timestamp"]), UTC).isoformat().replace("+00:00", "Z")
    of = "alone" if claim.count == 1 else f"one of {claim.count}" if claim.count else "under its root"
    return True, (
        f"anchored {of} by the ranker in block {block} at {when} (tx {log['transactionHash'].to_0x_hex()}, "
        f"root {claim.root}, {ctx.network.name})"
    )
