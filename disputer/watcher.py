"""The watcher: finds every assertion made through OOv3 for our registry, and what happens to it, exactly once.

Each poll scans OOv3's AssertionMade / AssertionDisputed / AssertionSettled logs in bounded block chunks, from
just past the checkpoint up to `head - confirmations`. Each chunk's events and the checkpoint after it commit
together, and every write is idempotent, so a crash anywhere only means the next poll scans some blocks again.

Reorgs deeper than `confirmations`: every poll also re-scans the last `rescan_blocks` below the checkpoint, and
checks that the checkpoint's block is still on the chain. If it is not, the fork point is found among past
checkpoints and everything after it is scanned again. A stored event whose log is not found again and whose
block hash changed is undone: its assertion is marked gone, or its dispute or settlement forgotten. An event
whose block still has its hash is kept even when a scan misses it: load-balanced RPCs sometimes return
incomplete logs for recent blocks, and a missed log must not erase what is known. The outbox follows: a gone
assertion's open transactions are failed (never rebroadcast), and our dispute a reorg removed is reopened.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from requests import RequestException
from web3 import Web3
from web3.exceptions import BlockNotFound, Web3Exception, Web3RPCError

from attest.chain.oov3 import AssertionDisputed, AssertionMade, AssertionSettled, OracleEvent
from attest.connect import ChainContext
from attest.errors import ChainError
from disputer.actions import release_reorged
from disputer.store import DisputerStore

ClaimIsOurs = Callable[[bytes], bool]
_Vanished = tuple[list[bytes], list[bytes], list[bytes]]  # stored events a reorg removed: made, disputed, settled


@dataclass
class ScanResult:
    """What one poll changed. `new` holds assertions stored for the first time (or seen again after a reorg
    had removed them); `disputed` and `settled` the ids whose status changed; `gone` the ids a reorg removed."""

    head: int
    from_block: int | None = None  # the blocks scanned, None when nothing was confirmed past the checkpoint
    to_block: int | None = None
    chunks: int = 0
    reorg_from: int | None = None  # set when the checkpoint's block left the chain: the first block re-scanned
    new: list[AssertionMade] = field(default_factory=list)
    disputed: list[bytes] = field(default_factory=list)
    settled: list[bytes] = field(default_factory=list)
    gone: list[bytes] = field(default_factory=list)


class Watcher:
    def __init__(
        self,
        ctx: ChainContext,
        store: DisputerStore,
        *,
        confirmations: int,
        backfill_s: int,
        chunk_blocks: int = 2000,
        rescan_blocks: int = 64,
        ours_only: bool = True,
        accept_claims_as_ours: bool = False,
        claim_is_ours: ClaimIsOurs | None = None,
    ) -> None:
        """`backfill_s` (the first run starts at the block this many seconds before the head) must be at least
        the longest liveness an assertion may have, or an assertion made before the first run is never seen.
        `accept_claims_as_ours` also takes assertions whose claim `claim_is_ours` accepts, whatever their
        callback recipient; `ours_only=False` stores every assertion (flagged `is_ours` or not)."""
        if confirmations < 0 or backfill_s < 0 or rescan_blocks < 0 or chunk_blocks < 1:
            raise ValueError("confirmations, backfill_s and rescan_blocks must be >= 0 and chunk_blocks >= 1")
        if accept_claims_as_ours and claim_is_ours is None:
            raise ValueError("accept_claims_as_ours needs a claim_is_ours callable")
        self.ctx = ctx
        self.store = store
        self.confirmations = confirmations
        self.backfill_s = backfill_s
        self.chunk_blocks = chunk_blocks  # may shrink when the RPC refuses a range
        self.rescan_blocks = rescan_blocks
        self.ours_only = ours_only
        self._claim_is_ours = claim_is_ours if accept_claims_as_ours else None
        registry = ctx.registry if accept_claims_as_ours else ctx.require_registry()
        self.registry = Web3.to_checksum_address(registry) if registry else None
        self._hashes: dict[int, bytes | None] = {}

    @property
    def chain_id(self) -> int:
        return self.ctx.chain_id

    @property
    def oov3(self) -> str:
        return self.ctx.oov3.address

    def is_ours(self, made: AssertionMade) -> bool:
        if self.registry is not None and Web3.to_checksum_address(made.callback_recipient) == self.registry:
            return True
        if self._claim_is_ours is None:
            return False
        try:
            return bool(self._claim_is_ours(made.claim))
        except Exception:  # anyone can assert any bytes: a claim that breaks the parser is simply not ours
            return False

    # -- polling -------------------------------------------------------------------------------------------
    def poll(self) -> ScanResult:
        """Scan everything confirmed since the last poll (see the module docstring); safe to call again at once."""
        self._hashes = {}  # canonical hashes are cached for one poll only: the chain may reorg between polls
        try:
            return self._poll()
        except (RequestException, Web3Exception, OSError) as err:
            raise ChainError(
                f"the watcher could not read {self.ctx.network.name} ({type(err).__name__}: {err}); "
                "nothing is lost, the next poll resumes from the checkpoint"
            ) from None

    def _poll(self) -> ScanResult:
        w3 = self.ctx.w3
        head = int(w3.eth.block_number)
        target = head - self.confirmations
        cp = self.store.checkpoint(self.chain_id, self.oov3)
        result = ScanResult(head=head)
        if target < 0:
            return result
        floor = target  # where the checkpoint goes when no chunk is scanned but it must be (re)set
        if cp is None:
            start = self._backfill_start(target)
            keep_from = -1
        elif self._hash(cp.block_number) == cp.block_hash:
            start = max(0, cp.block_number + 1 - self.rescan_blocks)
            keep_from = cp.block_number  # the checkpoint stands: re-scanned chunks below it never move it back
        else:
            fork = self._fork_point()
            if fork is None:  # deeper than every checkpoint remembered: start over from the backfill window
                start = self._backfill_start(target)
                result.reorg_from = start
            else:
                start = max(0, fork + 1 - self.rescan_blocks)
                result.reorg_from = fork + 1
                floor = min(fork, target)
            keep_from = -1
        self._drop_vanished_above(target, result)
        block = start
        while block <= target:
            last = self._scan_chunk(block, min(block + self.chunk_blocks - 1, target), keep_from, result)
            result.from_block = start
            result.to_block = last
            result.chunks += 1
            block = last + 1
        if result.chunks == 0 and keep_from < 0:
            self.store.save_checkpoint(self.chain_id, self.oov3, floor, self._require_hash(floor))
        result.gone[:] = [a for a in result.gone if (s := self.store.get(a)) is not None and s.status == "gone"]
        return result

    def _scan_chunk(self, first: int, last: int, keep_from: int, result: ScanResult) -> int:
        """Fetch, then write one chunk and its checkpoint in one commit; returns the chunk's real last block."""
        events, last = self._events(first, last)
        for event in events:
            # A log names its block's hash: one get_block per event block would be most of a backlog's scan.
            if event.block_hash is not None:
                self._hashes.setdefault(event.block_number, event.block_hash)
        made: list[tuple[AssertionMade, bool, bytes]] = []
        marks: list[tuple[AssertionDisputed | AssertionSettled, bytes]] = []
        for event in events:
            if isinstance(event, AssertionMade):
                ours = self.is_ours(event)
                if ours or not self.ours_only:
                    made.append((event, ours, self._require_hash(event.block_number)))
            else:
                marks.append((event, self._require_hash(event.block_number)))
        vanished = self._vanished(first, last, events)
        checkpoint_hash = self._require_hash(last) if last > keep_from else None
        with self.store.transaction():
            for event, ours, block_hash in made:
                if self.store.upsert_made(self.chain_id, event, block_hash, ours, oov3=self.oov3):
                    result.new.append(event)
            for mark, block_hash in marks:
                if isinstance(mark, AssertionDisputed):
                    args = (mark.disputer, mark.tx_hash, mark.block_number, block_hash)
                    if self.store.mark_disputed(mark.assertion_id, *args):
                        result.disputed.append(mark.assertion_id)
                elif self.store.mark_settled(
                    mark.assertion_id, mark.settlement_resolution, mark.tx_hash, mark.block_number, block_hash
                ):
                    result.settled.append(mark.assertion_id)
            self._undo(vanished, result)
            if checkpoint_hash is not None:
                self.store.save_checkpoint(self.chain_id, self.oov3, last, checkpoint_hash)
        return last

    def _events(self, first: int, last: int) -> tuple[list[OracleEvent], int]:
        """The chunk's events; a range the RPC refuses (too many blocks or results) is halved until it passes."""
        while True:
            try:
                return self.ctx.oov3.events_between(first, last), last
            except Web3RPCError:
                if last == first:
                    raise
                last = first + (last - first) // 2
                self.chunk_blocks = last - first + 1

    # -- reorgs --------------------------------------------------------------------------------------------
    def _vanished(self, first: int, last: int, events: list[OracleEvent]) -> _Vanished:
        """Stored events in [first, last] not found again whose block hash changed: (made, disputed, settled)."""
        found_made = {e.assertion_id for e in events if isinstance(e, AssertionMade)}
        found_disputed = {e.assertion_id for e in events if isinstance(e, AssertionDisputed)}
        found_settled = {e.assertion_id for e in events if isinstance(e, AssertionSettled)}
        key = (self.chain_id, self.oov3, first, last)
        return (
            self._changed(self.store.made_between(*key), found_made),
            self._changed(self.store.disputes_between(*key), found_disputed),
            self._changed(self.store.settlements_between(*key), found_settled),
        )

    def _changed(self, stored: dict[bytes, tuple[int, bytes]], found: set[bytes]) -> list[bytes]:
        return [a for a, (number, block_hash) in stored.items() if a not in found and self._hash(number) != block_hash]

    def _undo(self, vanished: _Vanished, result: ScanResult) -> None:
        made, disputed, settled = vanished
        if made:
            self.store.mark_gone(made)
            result.gone.extend(made)
        for assertion_id in made:
            release_reorged(self.store, self.ctx.w3, assertion_id, gone=True)
        for assertion_id in disputed:
            self.store.undo_dispute(assertion_id)
            release_reorged(self.store, self.ctx.w3, assertion_id, gone=False)
        for assertion_id in settled:
            self.store.undo_settle(assertion_id)

    def _drop_vanished_above(self, target: int, result: ScanResult) -> None:
        """Events stored above the confirmed range, which only happens when a reorg left a shorter chain (or
        `confirmations` grew): a chunk will not cover them, so check their blocks here."""
        vanished = self._vanished(target + 1, 2**62, [])
        if any(vanished):
            with self.store.transaction():
                self._undo(vanished, result)

    def _fork_point(self) -> int | None:
        """The newest past checkpoint still on the chain, by binary search: past it, every older one is too."""
        history = sorted(self.store.checkpoint_history(self.chain_id, self.oov3))
        lo, hi, found = 0, len(history) - 1, None
        while lo <= hi:
            mid = (lo + hi) // 2
            number, block_hash = history[mid]
            if self._hash(number) == block_hash:
                found, lo = number, mid + 1
            else:
                hi = mid - 1
        return found

    def _backfill_start(self, target: int) -> int:
        """The first block at or after `backfill_s` before the head's time (binary search on timestamps)."""
        cutoff = self._timestamp(target + self.confirmations) - self.backfill_s
        lo, hi = 0, target + 1  # the answer is in [lo, hi]; hi = target + 1 means no confirmed block is that recent
        while lo < hi:
            mid = (lo + hi) // 2
            if self._timestamp(mid) >= cutoff:
                hi = mid
            else:
                lo = mid + 1
        return lo

    # -- blocks --------------------------------------------------------------------------------------------
    def _hash(self, number: int) -> bytes | None:
        """The canonical hash of a block now, or None when the chain is not that long."""
        if number not in self._hashes:
            try:
                self._hashes[number] = bytes(self.ctx.w3.eth.get_block(number)["hash"])
            except BlockNotFound:
                self._hashes[number] = None
        return self._hashes[number]

    def _require_hash(self, number: int) -> bytes:
        found = self._hash(number)
        if found is None:
            raise ChainError(
                f"block {number} of {self.ctx.network.name} vanished while it was being scanned (a reorg); "
                "the next poll scans it again"
            )
        return found

    def _timestamp(self, number: int) -> int:
        return int(self.ctx.w3.eth.get_block(number)["timestamp"])
