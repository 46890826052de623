"""Evaluating one assertion: fetch its record by CID (verified), run every deterministic check, then the judge.

A failed deterministic check (schema, signature, digest == domainId, asserter, callback, claim, context chunks
in their documents, corpus) is decisive on its own: the judge is not called. A record or document that no
source can serve right now is not a failed check but an undecided evaluation, retried later: an IPFS outage on
our side must not cost someone else a bond. The same holds for bytes that do not hash to the CID: that is one
source lying (skipped, the next one tried), never evidence against the asserter, whose claim names the CID.
A record larger than the size limit is decisive (a failed schema check): its bytes were verified block by
block, so the record itself is that large, and the download stops at the limit instead of fetching it all.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from attest.chain.oov3 import AssertionMade
from attest.claim import parse_claim, rules_cid
from attest.context import RetrievedChunk
from attest.errors import AttestError, ClaimError, ContentTooLarge, NotFound, RecordError, TamperedContent
from attest.ipfs.cid import CID
from attest.ipfs.gateway import Gateway
from attest.ipfs.remotes import read_anywhere
from attest.ipfs.store import DEFAULT_TIMEOUT_S, ContentStore, PinResult
from attest.record.codec import check_size, decode_utf8, max_record_bytes, parse_json
from attest.record.model import AttestationRecord, validate_record
from attest.verify import Check, check_record
from disputer.judge import Judge, Verdict


@dataclass(frozen=True)
class Evaluation:
    assertion_id: bytes
    record_cid: str | None
    checks: tuple[Check, ...]
    verdict: Verdict | None  # None when the judge was not called (a failed check, or no record)
    unavailable: str | None = None  # why the record (or a cited document) could not be fetched: retry later
    latency_ms: float = 0.0
    judge_calls: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def failed(self) -> tuple[Check, ...]:
        return tuple(c for c in self.checks if c.ok is False)

    @property
    def failed_checks(self) -> tuple[str, ...]:
        return tuple(f"{c.name}: {c.detail}" for c in self.failed)

    @property
    def score(self) -> float | None:
        """The calibrated score (what the policy compares with the threshold)."""
        return None if self.verdict is None else self.verdict.calibrated_score

    @property
    def undecided_reason(self) -> str | None:
        if self.failed:
            return None
        if self.unavailable is not None:
            return self.unavailable
        if self.verdict is None:
            return "not judged"
        return self.verdict.undecided_reason

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON for the decision row (`checks` column) and `disputer score --json`."""
        return {
            "record": self.record_cid,
            "checks": [{"name": c.name, "status": c.status, "detail": c.detail} for c in self.checks],
            "failed": [c.name for c in self.failed],
            "unavailable": self.unavailable,
            "verdict": None if self.verdict is None else self.verdict.as_dict(),
        }


class Evaluator:
    """Evaluates assertions against `readers` (tried in order: the local store first, then remotes)."""

    def __init__(
        self,
        judge: Judge,
        readers: Sequence[ContentStore],
        *,
        registry: str | None,
        timeout_s: float = 30.0,
    ) -> None:
        self.judge = judge
        self.readers = tuple(readers)
        self.registry = registry
        self.timeout_s = timeout_s

    def evaluate(self, made: AssertionMade) -> Evaluation:
        started = time.perf_counter()
        aid = made.assertion_id
        try:
            claim = parse_claim(made.claim)
        except ClaimError as err:
            return Evaluation(aid, None, (Check("claim", False, str(err)),), None, latency_ms=_since(started))
        limit = max_record_bytes()
        readers = [_SizeBounded(r, limit) for r in self.readers]
        try:
            data, _source = read_anywhere(CID.parse(claim.record_cid), readers, timeout_s=self.timeout_s)
        except (NotFound, TamperedContent) as err:
            return Evaluation(aid, claim.record_cid, (), None, unavailable=str(err), latency_ms=_since(started))
        except ContentTooLarge as err:
            oversize = Check("schema", False, f"the record is over the {limit:,}-byte limit: {err}")
            return Evaluation(aid, claim.record_cid, (oversize,), None, latency_ms=_since(started))
        missing: list[str] = []
        fetch = self._fetch_document(missing)
        rules = rules_cid(CID.parse(claim.rules_cid).version)  # the same rules bytes, in the claim's CID version
        checks = tuple(
            check_record(
                data, claim.record_cid, made=made, registry=self.registry, rules_cid=rules, fetch_document=fetch
            )
        )
        failed = [c for c in checks if c.ok is False]
        if missing and all(c.name in ("context", "corpus") for c in failed):
            # Only documents we could not fetch failed: that says nothing about the record yet.
            why = "cited documents could not be fetched: " + "; ".join(missing)
            checks = tuple(Check(c.name, None, f"not checked: {c.detail}") if c.ok is False else c for c in checks)
            return Evaluation(aid, claim.record_cid, checks, None, unavailable=why, latency_ms=_since(started))
        if failed:
            return Evaluation(aid, claim.record_cid, checks, None, latency_ms=_since(started))
        record = _decode(data)
        verdict = self.judge.judge(record.query, chunks_of(record), record.answer)
        return Evaluation(aid, claim.record_cid, checks, verdict, latency_ms=_since(started), judge_calls=1)

    def _fetch_document(self, missing: list[str]) -> Callable[[str], bytes]:
        def fetch(cid: str) -> bytes:
            try:
                return read_anywhere(CID.parse(cid), self.readers, timeout_s=self.timeout_s)[0]
            except (NotFound, TamperedContent) as err:
                missing.append(str(err))
                raise

        return fetch


class _SizeBounded:
    """A reader of records: more than `limit` verified bytes raise ContentTooLarge. A gateway stops downloading
    at the limit; other stores (the local disk, our own Kubo node) are checked once they have read the file."""

    def __init__(self, store: ContentStore, limit: int) -> None:
        self.store = store
        self.name = store.name
        self.limit = limit

    def get(self, cid: CID, *, timeout_s: float = DEFAULT_TIMEOUT_S) -> bytes:
        if isinstance(self.store, Gateway):
            return self.store.get(cid, timeout_s=timeout_s, max_bytes=self.limit)
        data = self.store.get(cid, timeout_s=timeout_s)
        if len(data) > self.limit:
            raise ContentTooLarge(f"{cid} is {len(data):,} bytes, over the {self.limit:,}-byte limit")
        return data

    def put(self, data: bytes, *, cid_version: int = 1) -> CID:
        return self.store.put(data, cid_version=cid_version)

    def pin(self, cid: CID) -> PinResult:
        return self.store.pin(cid)

    def has(self, cid: CID) -> bool:
        return self.store.has(cid)


def chunks_of(record: AttestationRecord) -> list[RetrievedChunk]:
    return [
        RetrievedChunk(
            source=c.source, doc_cid=c.doc_cid, chunk_index=c.chunk_index, text=c.text, sha256=c.sha256, score=0.0
        )
        for c in record.context
    ]


def _decode(data: bytes) -> AttestationRecord:
    try:
        check_size(len(data), max_record_bytes(), "read")
        return validate_record(parse_json(decode_utf8(data)))
    except RecordError as err:  # check_record passed the schema, so this is a bug, not hostile input
        raise AttestError(f"a record that passed its checks did not decode: {err}") from None


def _since(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 3)
