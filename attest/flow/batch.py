"""Asserting records in Merkle batches: flush the queue into batches, pin each batch's manifest, assert its root
once, settle it. The states live in the ledger (attest/batch/store.py); every transaction goes through the one
outbox, so `attest resume` after a crash at any step finishes the batch with exactly one assertion.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from attest.batch.claim import build_batch_claim, rules_v2_bytes
from attest.batch.manifest import MAX_RECORDS, build_manifest, manifest_bytes
from attest.batch.store import Batch, BatchBook
from attest.chain.outbox import checkpoint, send_once, settle_open
from attest.chain.tx import Sender
from attest.config import Config, load_config
from attest.connect import ChainContext, connect
from attest.errors import BondError, LedgerError, TransactionRejected
from attest.flow.ask import Progress, check_registry, preflight, quiet
from attest.flow.token import Token
from attest.ipfs.local import LocalStore
from attest.ipfs.remotes import Remotes, replicate
from attest.ledger import Ledger
from attest.storage import parse_time

Prompt = Callable[[str], str]
# Whether this process is the one to assert the batches of (chain id, account address); see
# attest.locks.BatchLeadership. Without one, a process asserts every batch it is asked to.
Lead = Callable[[int, str], bool]


@dataclass(frozen=True)
class BatchOutcome:
    batch: Batch
    action: str  # "asserted", "settled", "waiting", "already settled"
    detail: str = ""


def flush(
    *,
    network: str | None = None,
    config: Config | None = None,
    progress: Progress = quiet,
    prompt: Prompt | None = None,
    limit: int = MAX_RECORDS,
    lead: Lead | None = None,
) -> list[BatchOutcome]:
    """Batch every queued record (of `network`, or all) and assert each batch now; with `lead`, only the records
    of the accounts this process leads."""
    config = config or load_config()
    outcomes: list[BatchOutcome] = []
    with Ledger() as ledger:
        book = BatchBook(ledger.database)
        groups = sorted({(net, account) for _, net, account in book.queued(network=network)})
        for net, account in groups:
            ctx = connect(net, config=config)
            sender = _sender(ctx, account, config, prompt)
            if lead is not None and not lead(ctx.chain_id, sender.address):
                continue
            plan = _plan(ctx, sender.address)
            while (
                batch := book.create(
                    network=net,
                    chain_id=ctx.network.chain_id,
                    account=account,
                    asserter=sender.address,
                    plan=plan,
                    limit=min(limit, MAX_RECORDS),
                )
            ) is not None:
                checkpoint("batched")
                progress("batch", f"batch #{batch.id}: {batch.count} records")
                outcomes.append(BatchOutcome(drive(book, batch, ctx, sender, config, progress), "asserted"))
    return outcomes


def resume_batches(
    *,
    config: Config | None = None,
    progress: Progress = quiet,
    prompt: Prompt | None = None,
    lead: Lead | None = None,
) -> list[BatchOutcome]:
    """Finish every batch a crash left between building and asserted (with `lead`: of the accounts this process
    leads)."""
    config = config or load_config()
    outcomes: list[BatchOutcome] = []
    with Ledger() as ledger:
        book = BatchBook(ledger.database)
        for batch in book.select(("building", "pinned", "asserting")):
            ctx = connect(batch.network, config=config)
            if lead is not None and not lead(ctx.chain_id, batch.asserter):
                continue
            sender = _sender(ctx, batch.account, config, prompt)
            outcomes.append(BatchOutcome(drive(book, batch, ctx, sender, config, progress), "asserted"))
    return outcomes


def drive(
    book: BatchBook, batch: Batch, ctx: ChainContext, sender: Sender, config: Config, progress: Progress
) -> Batch:
    """building → pinned → asserting → asserted; each step idempotent, so safe to run again after any crash."""
    if sender.address != batch.asserter:
        raise LedgerError(f"batch #{batch.id} belongs to {batch.asserter}, not {sender.address}; use its account")
    if batch.status == "building":
        batch = _pin(book, batch, sender, config)
        checkpoint("batch-pinned")
        progress("pin", f"batch #{batch.id}: manifest ipfs://{batch.manifest_cid}, root {batch.root}")
    if batch.status in ("pinned", "asserting"):
        batch = _assert(book, batch, ctx, sender)
        progress("assert", f"batch #{batch.id}: assertion {batch.assertion_id}")
    return batch


def _pin(book: BatchBook, batch: Batch, sender: Sender, config: Config) -> Batch:
    members = book.members(batch.id)
    manifest = build_manifest([(m.cid, bytes.fromhex(m.digest[2:])) for m in members], sender.account)
    data, rules = manifest_bytes(manifest), rules_v2_bytes()
    ipfs = config.ipfs_for(batch.network)
    store = LocalStore()
    cid = store.put(data, cid_version=ipfs.cid_version)
    rules_cid = store.put(rules, cid_version=ipfs.cid_version)
    store.pin(cid)
    store.pin(rules_cid)
    remotes = Remotes.from_config(ipfs)
    for blob, what in ((data, cid), (rules, rules_cid)):
        replicate(what, blob, remotes.pinners)  # best effort, as for records: the local pin is the one that counts
    claim = build_batch_claim(str(cid), manifest.root, manifest.count, manifest.asserter, str(rules_cid))
    return book.update(
        batch.id, status="pinned", manifest=data, manifest_cid=str(cid), root=manifest.root,
        rules_cid=str(rules_cid), claim=claim,
    )  # fmt: skip


def _assert(book: BatchBook, batch: Batch, ctx: ChainContext, sender: Sender) -> Batch:
    assert batch.root is not None and batch.claim is not None
    plan = batch.plan
    oov3 = ctx.oov3
    if oov3.address.lower() != str(plan["oov3"]).lower():
        raise BondError(f"batch #{batch.id} was planned for the oracle at {plan['oov3']}, not {oov3.address}")
    token = Token(ctx.w3, plan["currency"])
    call = oov3.assert_truth_call(
        claim=batch.claim, asserter=batch.asserter, callback_recipient=plan["registry"], liveness=plan["liveness"],
        currency=plan["currency"], bond=batch.bond, identifier=plan["identifier"],
        domain_id=bytes.fromhex(batch.root[2:]),
    )  # fmt: skip
    book.update(batch.id, status="asserting")
    settled = book.mined_tx(batch.id, "assert") is not None or settle_open(
        book, batch.id, "assert", sender, "assertTruth"
    )
    if not settled:
        settle_open(book, batch.id, "approve", sender, "approve")
        with sender.signing():
            if token.allowance(sender.address, oov3.address) < batch.bond:
                send_once(book, batch.id, "approve", sender, token.approve_call(oov3.address, batch.bond), "approve")
    receipt = send_once(book, batch.id, "assert", sender, call, "assertTruth")
    made = oov3.made_in(receipt)
    tx = made.tx_hash.hex()
    batch = book.update(
        batch.id, records_status="asserted", status="asserted", assertion_id="0x" + made.assertion_id.hex(),
        assert_tx=tx if tx.startswith("0x") else "0x" + tx, log_index=made.log_index, expiration=made.expiration_time,
    )  # fmt: skip
    checkpoint("batch-asserted")
    return batch


def settle_batches(
    batch_ids: list[int] | None = None,
    *,
    config: Config | None = None,
    progress: Progress = quiet,
    prompt: Prompt | None = None,
) -> list[BatchOutcome]:
    """Settle asserted batches (all, or `batch_ids`) that can settle now; their records follow."""
    config = config or load_config()
    outcomes: list[BatchOutcome] = []
    with Ledger() as ledger:
        book = BatchBook(ledger.database)
        targets = [book.get(i) for i in batch_ids] if batch_ids is not None else book.select(("asserted", "disputed"))
        for batch in targets:
            if batch.status == "settled":
                outcomes.append(BatchOutcome(batch, "already settled", batch.outcome or ""))
                continue
            if batch.assertion_id is None:
                outcomes.append(BatchOutcome(batch, "waiting", "not asserted yet: `attest batch flush` or resume"))
                continue
            ctx = connect(batch.network, config=config)
            assertion_id = bytes.fromhex(batch.assertion_id[2:])
            chain = ctx.oov3.get_assertion(assertion_id)
            if chain.disputed and batch.disputer is None:
                batch = book.update(batch.id, status="disputed", disputer=chain.disputer)
            resolution = chain.settlement_resolution
            settle_tx = None
            if not chain.settled:
                now = int(ctx.w3.eth.get_block("latest")["timestamp"])
                if not chain.disputed and now < chain.expiration_time:
                    outcomes.append(BatchOutcome(batch, "waiting", f"disputable for {chain.expiration_time - now} s"))
                    continue
                sender = _sender(ctx, batch.account, config, prompt)
                try:
                    receipt = send_once(book, batch.id, "settle", sender, ctx.oov3.settle_call(assertion_id), "settle")
                except TransactionRejected as err:
                    if chain.disputed:
                        outcomes.append(BatchOutcome(batch, "waiting", f"the oracle has not resolved it ({err})"))
                        continue
                    raise
                resolution = ctx.oov3.get_assertion(assertion_id).settlement_resolution
                settle_tx = receipt["transactionHash"].to_0x_hex()
            outcome = "attested" if resolution else "rejected"
            batch = book.update(
                batch.id, records_status="settled", status="settled", outcome=outcome, settle_tx=settle_tx
            )
            checkpoint("batch-settled")
            progress("settle", f"batch #{batch.id}: {outcome}")
            outcomes.append(BatchOutcome(batch, "settled", outcome))
    return outcomes


def status() -> tuple[int, str | None, list[Batch]]:
    """(queued records, when the oldest was queued, every batch)."""
    with Ledger() as ledger:
        book = BatchBook(ledger.database)
        return len(book.queued()), book.oldest_queued_at(), book.select()


def batch_of(attestation_batch_id: int) -> Batch:
    with Ledger() as ledger:
        return BatchBook(ledger.database).get(attestation_batch_id)


def due(max_records: int, max_age_s: float, *, now: float | None = None) -> bool:
    """True when the queue should be flushed: `max_records` are waiting, or the oldest waited `max_age_s`."""
    count, oldest, _ = status()
    if count == 0:
        return False
    age = (now if now is not None else time.time()) - parse_time(oldest).timestamp() if oldest else 0.0
    return count >= max_records or age >= max_age_s


def run(
    *,
    max_records: int,
    max_age_s: float,
    poll_s: float = 1.0,
    rounds: int | None = None,
    config: Config | None = None,
    progress: Progress = quiet,
    prompt: Prompt | None = None,
) -> int:
    """Flush whenever `due`; `rounds` bounds the loop (None: until interrupted). Returns batches asserted."""
    asserted = 0
    done = 0
    while rounds is None or done < rounds:
        if due(max_records, max_age_s):
            asserted += len(flush(config=config, progress=progress, prompt=prompt, limit=max_records))
        done += 1
        if rounds is None or done < rounds:
            time.sleep(poll_s)
    return asserted


def describe(batch: Batch) -> dict[str, Any]:
    """A batch as plain JSON data (no manifest or claim bytes)."""
    data = asdict(batch)
    data.pop("manifest")
    data["claim_bytes"] = None if batch.claim is None else len(batch.claim)
    data.pop("claim")
    return data


def _plan(ctx: ChainContext, owner: str) -> dict[str, Any]:
    """The network's configured bond, currency, identifier and liveness, checked like a single ask's."""
    ctx.require_oov3()
    currency = ctx.currency(None)
    token = Token(ctx.w3, currency)
    bond = token.units(ctx.settings.bond) if ctx.settings.bond is not None else ctx.oov3.minimum_bond(currency)
    identifier = ctx.identifier(None)
    preflight(ctx, token, identifier, bond, owner)
    liveness = ctx.settings.liveness or ctx.oov3.default_liveness()
    return {
        "oov3": ctx.oov3.address, "registry": check_registry(ctx, liveness), "currency": currency, "bond": bond,
        "bond_decimals": token.decimals, "bond_symbol": token.symbol, "liveness": liveness, "identifier": identifier,
    }  # fmt: skip


def _sender(ctx: ChainContext, account: str, config: Config, prompt: Prompt | None) -> Sender:
    from attest.accounts import load_account

    loaded = load_account(account, ctx.network.name, default=config.defaults.account, prompt=prompt)
    return ctx.sender(loaded.account)
