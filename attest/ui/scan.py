"""Keeping the dashboard's index up to date: OOv3's logs from where the last scan stopped to the chain's head, in
bounded windows, each window one commit; our ledger's assertions marked as ours."""

from __future__ import annotations

from attest.batch.store import BatchBook
from attest.chain.oov3 import AssertionMade
from attest.connect import ChainContext
from attest.ledger import Ledger
from attest.ui.index import SCAN_WINDOW, AssertionIndex

BACKFILL_BLOCKS = 50_000  # off the devnet, a first scan starts this far back (about a week on mainnet)


def our_assertions(network: str) -> set[str]:
    """The assertion ids this home's ledger made on `network`: single records and batches."""
    with Ledger() as ledger:
        ids = {a.assertion_id for a in ledger.select(network=network) if a.assertion_id}
        ids |= {b.assertion_id for b in BatchBook(ledger.database).select() if b.assertion_id and b.network == network}
    return {i.lower() for i in ids}


def sync(index: AssertionIndex, ctx: ChainContext, ours: set[str]) -> int:
    """Scan up to the head; the number of events read. The index follows one chain history and OOv3: another
    (a devnet reset, a changed `oov3`) starts it afresh."""
    head = int(ctx.w3.eth.block_number)
    chain = f"{ctx.genesis_hash}:{ctx.oov3.address}"
    state = index.scanned()
    if state.get("chain") != chain:
        first = ctx.deployment.block_number if ctx.deployment is not None else max(0, head - BACKFILL_BLOCKS)
        index.reset(chain, first)
        state = index.scanned()
    start = int(state["next_block"])
    if start > head + 1:
        index.rewind(head)
        start = head + 1
    elif state.get("last_hash") and _hash(ctx, start - 1) != state["last_hash"]:
        # The block the last scan ended on is not on the chain any more (a reorg, a reverted devnet snapshot that
        # mined again): how far back it forked is unknown, so everything is scanned again.
        first = ctx.deployment.block_number if ctx.deployment is not None else max(0, head - BACKFILL_BLOCKS)
        index.reset(chain, first)
        start = first
    read = 0
    for low in range(start, head + 1, SCAN_WINDOW):
        high = min(head, low + SCAN_WINDOW - 1)
        events = ctx.oov3.events_between(low, high)
        blocks = {e.block_number for e in events if isinstance(e, AssertionMade)}
        times = {n: int(ctx.w3.eth.get_block(n)["timestamp"]) for n in blocks}
        index.apply(events, times, high + 1, _hash(ctx, high), ours)
        read += len(events)
    index.mark_ours(ours)
    return read


def _hash(ctx: ChainContext, number: int) -> str:
    return str(ctx.w3.eth.get_block(number)["hash"].to_0x_hex())
