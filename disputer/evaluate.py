"""Evaluating one assertion: fetch its record by CID (verified), run every deterministic check, then the judge.

A failed deterministic check (schema, signature, digest == domainId, asserter, callback, claim, context chunks
in their documents, corpus, and every cited document approved when the claim's rules (v3) say the knowledge
base is governed) is decisive on its own: the judge is not called. A record or document that no
source can serve right now is not a failed check but an undecided evaluation, retried later: an IPFS outage on
our side must not cost someone else a bond. The same holds for bytes that do not hash to the CID: that is one
source lying (skipped, the next one tried), never evidence against the asserter, whose claim names the CID.
A record larger than the size limit is decisive (a failed schema check): its bytes were verified block by
block, so the record itself is that large, and the download stops at the limit instead of fetching it all.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from attest.batch.manifest import decode_manifest
from attest.chain.oov3 import AssertionMade
from attest.claim import governed_rules, parse_claim, rules_cid
from attest.context import RetrievedChunk
from attest.errors import AttestError, BatchError, ClaimError, ContentTooLarge, NotFound, RecordError, TamperedContent
from attest.ipfs.cid import CID
from attest.ipfs.gateway import Gateway
from attest.ipfs.remotes import read_anywhere
from attest.ipfs.store import DEFAULT_TIMEOUT_S, ContentStore, PinResult
from attest.kb.governed import ApprovedAt
from attest.record.codec import check_size, decode_record, decode_utf8, max_record_bytes, parse_json
from attest.record.model import AttestationRecord, validate_record
from attest.verify import Check, check_record
from attest.verify_batch import assertion_checks, batch_claim_of, check_member
from disputer.judge import Judge, Verdict
from disputer.policy import batch_out_of_time

BATCH_CONCURRENCY = 8  # records of one batch fetched and judged at once, unless the daemon's config says


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
    out_of_time: str | None = None  # a batch not judged: it could not be judged before its safety margin

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
        if self.out_of_time is not None:
            return self.out_of_time
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
            **self.extra,  # a batch's manifest, failing records and weakest record: what the decision names
        }


def evaluation_json(evaluation: Evaluation) -> str:
    """`evaluation` as the JSON a queue worker keeps for the leader (`evaluation_of` reads it back whole)."""
    verdict = evaluation.verdict
    return json.dumps(
        {
            "assertion_id": evaluation.assertion_id.hex(),
            "record_cid": evaluation.record_cid,
            "checks": [[c.name, c.ok, c.detail] for c in evaluation.checks],
            "verdict": None if verdict is None else verdict.as_dict(),
            "unavailable": evaluation.unavailable,
            "latency_ms": evaluation.latency_ms,
            "judge_calls": evaluation.judge_calls,
            "extra": evaluation.extra,
            "out_of_time": evaluation.out_of_time,
        },
        ensure_ascii=False,
    )


def evaluation_of(text: str) -> Evaluation:
    """The evaluation `evaluation_json` wrote (the disputer's own state: trusted, not hostile input)."""
    data = json.loads(text)
    verdict = data["verdict"]
    return Evaluation(
        assertion_id=bytes.fromhex(data["assertion_id"]),
        record_cid=data["record_cid"],
        checks=tuple(Check(name, ok, detail) for name, ok, detail in data["checks"]),
        verdict=None if verdict is None else Verdict(**{**verdict, "samples": tuple(verdict["samples"])}),
        unavailable=data["unavailable"],
        latency_ms=data["latency_ms"],
        judge_calls=data["judge_calls"],
        extra=data["extra"],
        out_of_time=data["out_of_time"],
    )


class Evaluator:
    """Evaluates assertions against `readers` (tried in order: the local store first, then remotes)."""

    def __init__(
        self,
        judge: Judge,
        readers: Sequence[ContentStore],
        *,
        registry: str | None,
        timeout_s: float = 30.0,
        batch_concurrency: int = BATCH_CONCURRENCY,
        record_judge_s: float = 5.0,
        approved_at: ApprovedAt | None = None,
    ) -> None:
        self.judge = judge
        self.readers = tuple(readers)
        self.registry = registry
        self.timeout_s = timeout_s
        self.batch_concurrency = batch_concurrency
        self.record_judge_s = record_judge_s
        self.approved_at = approved_at  # a governed corpus's KnowledgeRegistry (None: that check is not made)

    def evaluate(self, made: AssertionMade, *, left_s: int | None = None, safety_margin_s: int = 0) -> Evaluation:
        """The evaluation of `made`. With `left_s` (seconds until it expires), a batch whose records could not all
        be judged before the last `safety_margin_s` is not judged at all (`out_of_time`)."""
        started = time.perf_counter()
        aid = made.assertion_id
        try:
            claim = parse_claim(made.claim)
        except ClaimError as err:
            batch = batch_claim_of(made)
            if batch is not None:
                return self._evaluate_batch(made, batch.manifest_cid, started, left_s, safety_margin_s)
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
                data, claim.record_cid, made=made, registry=self.registry, rules_cid=rules, fetch_document=fetch,
                approved_at=self.approved_at,
            )
        )  # fmt: skip
        if not governed_rules(claim.rules_cid):
            # Rules v1 promise nothing about governance: an unapproved document is no reason to dispute the claim.
            checks = tuple(
                Check(c.name, None, f"not claimed (the claim's rules are not v3): {c.detail}")
                if c.name == "governed_context" and c.ok is False
                else c
                for c in checks
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

    def _evaluate_batch(
        self, made: AssertionMade, manifest_cid: str, started: float, left_s: int | None, safety_margin_s: int
    ) -> Evaluation:
        """A batch (rules v2): the manifest, the assertion's fit to it, then every record checked and judged with
        bounded concurrency. One failing record fails the batch; the weakest verdict is the batch's score, and
        `extra` names every failing record and the weakest one, for the decision and the evidence voters read."""
        aid = made.assertion_id
        try:
            data, _ = read_anywhere(CID.parse(manifest_cid), self.readers, timeout_s=self.timeout_s)
        except (NotFound, TamperedContent) as err:
            return Evaluation(aid, manifest_cid, (), None, unavailable=str(err), latency_ms=_since(started))
        try:
            manifest = decode_manifest(data)
        except BatchError as err:
            return Evaluation(
                aid, manifest_cid, (Check("manifest", False, str(err)),), None, latency_ms=_since(started)
            )
        checks = [Check("manifest", True, f"{manifest.count} records, root {manifest.root}")]
        checks += assertion_checks(made, manifest, manifest_cid, None)
        if self.registry is not None and made.callback_recipient != self.registry:
            checks.append(Check("callback", False, f"callback recipient {made.callback_recipient} is not ours"))
        if any(c.ok is False for c in checks):
            return Evaluation(aid, manifest_cid, tuple(checks), None, latency_ms=_since(started))
        if left_s is not None:
            too_late = batch_out_of_time(
                manifest.count, left_s=left_s - int(time.perf_counter() - started), safety_margin_s=safety_margin_s,
                concurrency=self.batch_concurrency, record_judge_s=self.record_judge_s,
            )  # fmt: skip
            if too_late is not None:
                batch = {"manifest": manifest_cid, "root": manifest.root, "count": manifest.count}
                return Evaluation(
                    aid, manifest_cid, tuple(checks), None, latency_ms=_since(started), out_of_time=too_late,
                    extra={"batch": batch},
                )  # fmt: skip
        tree = manifest.tree_of()
        bounded = [_SizeBounded(r, max_record_bytes()) for r in self.readers]

        def fetch(cid: str) -> bytes:
            return read_anywhere(CID.parse(cid), bounded, timeout_s=self.timeout_s)[0]

        def judge_leaf(index: int) -> tuple[int, str | None, Verdict | None, str | None]:
            """(leaf index, why it fails deterministically, verdict, why it could not be fetched)."""
            try:
                data = fetch(manifest.leaves[index].cid)
            except (NotFound, TamperedContent) as err:
                return index, None, None, str(err)
            except ContentTooLarge as err:
                return index, f"the record is over the size limit: {err}", None, None
            why = check_member(manifest, index, tree, lambda _cid: data)
            if why is not None:
                return index, why, None, None
            record = decode_record(data)
            return index, None, self.judge.judge(record.query, chunks_of(record), record.answer), None

        with ThreadPoolExecutor(max_workers=self.batch_concurrency) as pool:
            results = list(pool.map(judge_leaf, range(manifest.count)))
        unavailable = [f"leaf {i}: {missing}" for i, _, _, missing in results if missing is not None]
        failing = [(i, manifest.leaves[i].cid, why) for i, why, _, _ in results if why is not None]
        for index, cid, why in failing:
            checks.append(Check(f"record {index}", False, f"{cid}: {why}"))
        judged = [(i, v) for i, _, v, _ in results if v is not None]
        weakest = min(judged, key=lambda item: _rank(item[1]), default=None)
        extra: dict[str, Any] = {
            "batch": {"manifest": manifest_cid, "root": manifest.root, "count": manifest.count},
            "failing": [{"leaf_index": i, "record": cid, "why": why} for i, cid, why in failing],
            "scores": {str(i): v.calibrated_score for i, v in judged},
        }
        if weakest is not None:
            extra["weakest"] = {"leaf_index": weakest[0], "record": manifest.leaves[weakest[0]].cid}
        if unavailable and not failing:
            return Evaluation(
                aid, manifest_cid, tuple(checks), None, unavailable="; ".join(unavailable[:3]),
                latency_ms=_since(started), judge_calls=len(judged), extra=extra,
            )  # fmt: skip
        verdict = None if failing or weakest is None else weakest[1]
        return Evaluation(
            aid, manifest_cid, tuple(checks), verdict, latency_ms=_since(started), judge_calls=len(judged),
            extra=extra,
        )  # fmt: skip

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


def _rank(verdict: Verdict) -> tuple[int, float]:
    """Undecided verdicts first (the batch cannot be called true while one is), then the lowest score."""
    return (0, 0.0) if verdict.calibrated_score is None else (1, verdict.calibrated_score)


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
