"""Checking an attestation the way a UMA voter would: the record's bytes, schema, digest and signature, the
assertion that made it, its claim, and its cited context.

`check_record` is the pure core (the disputer runs it too): bytes and an event in, one `Check` per rule out.
`verify` is the I/O around it: it finds the assertion on chain and the record and documents on IPFS.

A CID given without its assertion is checked off-chain; the chain checks then report "not checked" when no
assertion of the record is found, and only `require_assertion=True` (`attest verify --require-assertion`) turns
that into a failure, because a record can be verified before, or without, being asserted.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from hexbytes import HexBytes

from attest.chain.knowledge import approval_reader
from attest.claim import build_claim, governed_rules, parse_claim, rules_cid
from attest.errors import AttestError, ClaimError, InvalidCid, RecordError, VerifyError
from attest.ipfs.cid import CID
from attest.ipfs.remotes import read_anywhere
from attest.ipfs.store import DEFAULT_TIMEOUT_S
from attest.ipfs.unixfs import cid_of
from attest.kb.governed import ApprovedAt, ParsedManifest, governed_context, parse_manifest
from attest.record.canonical import digest_hex
from attest.record.codec import check_size, decode_utf8, max_record_bytes, parse_json
from attest.record.model import AttestationRecord, validate_record
from attest.record.signing import verify_record

if TYPE_CHECKING:
    from attest.chain.oov3 import AssertionMade
    from attest.connect import ChainContext
    from attest.ipfs.store import ContentStore

ZERO_ADDRESS = "0x0000000000000000000000000000000000000000"
ASSERTION_ID = re.compile(r"0x[0-9a-fA-F]{64}")
# eth_getLogs ranges: public RPCs commonly cap a query at 10k blocks.
LOG_WINDOW = 10_000
MAX_LOG_WINDOWS = 100
# How far before the record's own created_at an assertion of it is looked for (clocks and time zones drift).
CREATED_AT_SLACK_S = 3600

FetchDocument = Callable[[str], bytes]


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool | None  # None: not checked, and `detail` says why
    detail: str

    @property
    def status(self) -> str:
        return "skip" if self.ok is None else "pass" if self.ok else "fail"


@dataclass(frozen=True)
class Report:
    target: str
    record_cid: str | None
    assertion_id: str | None  # 0x-hex
    network: str | None
    checks: tuple[Check, ...] = field(default_factory=tuple)

    @property
    def ok(self) -> bool:
        """True when no check failed (skipped checks do not fail a report)."""
        return all(c.ok is not False for c in self.checks)

    @property
    def failed(self) -> list[Check]:
        return [c for c in self.checks if c.ok is False]

    def to_json(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "ok": self.ok,
            "record": self.record_cid,
            "assertion": self.assertion_id,
            "network": self.network,
            "checks": [{"name": c.name, "status": c.status, "detail": c.detail} for c in self.checks],
        }


# -- the pure core ---------------------------------------------------------------------------------------
def check_record(
    record_bytes: bytes,
    cid: str,
    *,
    made: AssertionMade | None,
    registry: str | None,
    rules_cid: str,
    fetch_document: FetchDocument | None,
    approved_at: ApprovedAt | None = None,
) -> list[Check]:
    """Every rule of claim-rules-v1 that a program can check, for a record and (when given) its assertion.

    `fetch_document(doc_cid)` returns a document's bytes (they are re-checked against the CID here); None skips
    the context and corpus checks. `approved_at` asks a governed corpus's KnowledgeRegistry (None: not checked).
    """
    record, schema = _decode(record_bytes)
    checks = [_check_cid(record_bytes, cid), schema]
    no_record = "the record did not decode, so this was not checked"
    if record is None:
        checks.append(Check("signature", None, no_record))
    else:
        checks.append(_check_signature(record))
    checks += [
        _check_digest(record, made),
        _check_asserter(record, made),
        _check_callback(made, registry),
        _check_escalation_manager(made),
        _check_claim(record_bytes, record, made, rules_cid),
    ]
    if record is None:
        checks += [Check("context", None, no_record), Check("corpus", None, no_record)]
    elif fetch_document is None:
        checks += [Check(name, None, "no content store to fetch documents from") for name in ("context", "corpus")]
    else:
        cached = _cached(fetch_document)
        corpus, manifest = _check_corpus(record, cached)
        checks += [_check_context(record, cached), corpus]
        if manifest is not None and manifest.governance is not None:  # a corpus that promises governance
            ok, detail = governed_context([c.doc_cid for c in record.context], manifest, approved_at)
            checks.append(Check("governed_context", ok, detail))
        elif made is not None and _claims_governance(made):
            checks.append(
                Check(
                    "governed_context",
                    False,
                    "the claim's rules (v3) promise a governed corpus; the record's corpus manifest names none",
                )
            )
    return checks


def _decode(data: bytes) -> tuple[AttestationRecord | None, Check]:
    # decode_record would also check the signature; here schema and signature are reported apart.
    try:
        check_size(len(data), max_record_bytes(), "read")
        record = validate_record(parse_json(decode_utf8(data)))
    except RecordError as err:
        return None, Check("schema", False, str(err))
    return record, Check("schema", True, f"a well-formed {record.schema_} record")


def _check_cid(data: bytes, cid: str) -> Check:
    try:
        expected = CID.parse(cid)
    except InvalidCid as err:
        return Check("cid", False, str(err))
    actual = cid_of(data, cid_version=expected.version)
    if actual != expected:
        return Check("cid", False, f"the record bytes hash to {actual}, not {expected}: they were changed")
    return Check("cid", True, f"the bytes hash to {expected}")


def _check_signature(record: AttestationRecord) -> Check:
    try:
        signer = verify_record(record)
    except RecordError as err:
        return Check("signature", False, str(err))
    return Check("signature", True, f"EIP-191 signature by the asserter {signer}")


def _check_digest(record: AttestationRecord | None, made: AssertionMade | None) -> Check:
    if record is None:
        return Check("digest", None, "the record did not decode, so its digest is unknown")
    digest = digest_hex(record)
    if made is None:
        return Check("digest", None, f"no assertion to compare with; the record digest is {digest}")
    domain = "0x" + made.domain_id.hex()
    if domain != digest:
        return Check("digest", False, f"the record digest is {digest} but the assertion's domainId is {domain}")
    return Check("digest", True, f"{digest} is the assertion's domainId")


def _check_asserter(record: AttestationRecord | None, made: AssertionMade | None) -> Check:
    if made is None:
        return Check("asserter", None, "no assertion to compare with")
    if record is None:
        return Check("asserter", None, "the record did not decode, so its asserter is unknown")
    if made.asserter != record.asserter:
        return Check("asserter", False, f"the record's asserter is {record.asserter}, the assertion's {made.asserter}")
    return Check("asserter", True, f"{made.asserter} signed the record and is the assertion's asserter")


def _check_callback(made: AssertionMade | None, registry: str | None) -> Check:
    if made is None:
        return Check("callback", None, "no assertion to check")
    if registry is None:
        return Check(
            "callback", None, f"no AttestationRegistry is configured to compare {made.callback_recipient} with"
        )
    if made.callback_recipient.lower() != registry.lower():
        return Check(
            "callback", False, f"the callback recipient is {made.callback_recipient}, not the registry {registry}"
        )
    return Check("callback", True, f"the callback recipient is the registry {registry}")


def _check_escalation_manager(made: AssertionMade | None) -> Check:
    if made is None:
        return Check("escalation_manager", None, "no assertion to check")
    if made.escalation_manager != ZERO_ADDRESS:
        # An escalation manager can override the DVM's answer, so voters' rules would not decide the claim.
        return Check(
            "escalation_manager", False, f"the assertion uses escalation manager {made.escalation_manager}, not none"
        )
    return Check("escalation_manager", True, "none: disputes go to the UMA DVM")


def _check_claim(data: bytes, record: AttestationRecord | None, made: AssertionMade | None, rules: str) -> Check:
    if made is None:
        return Check("claim", None, "no assertion to read a claim from")
    try:
        claim = parse_claim(made.claim)
    except ClaimError as err:
        return Check("claim", False, str(err))
    problems = []
    named = CID.parse(claim.record_cid)
    if cid_of(data, cid_version=named.version) != named:
        problems.append(f"it names the record {claim.record_cid}, which is not these bytes")
    if claim.digest != "0x" + made.domain_id.hex():
        problems.append(f"its digest {claim.digest} is not the assertion's domainId")
    if claim.asserter != made.asserter:
        problems.append(f"its asserter {claim.asserter} is not the assertion's asserter {made.asserter}")
    if claim.rules_cid != rules and not governed_rules(claim.rules_cid):
        problems.append(f"it names the rules {claim.rules_cid}, not the current rules {rules}")
    if record is not None:
        if claim.asserter != record.asserter:
            problems.append(f"its asserter {claim.asserter} is not the record's asserter {record.asserter}")
        if claim.digest != digest_hex(record):
            problems.append(f"its digest {claim.digest} is not the record's digest {digest_hex(record)}")
        if not problems:
            expected = build_claim(claim.record_cid, claim.digest, claim.asserter, claim.rules_cid, record.query)
            if expected != made.claim:
                problems.append("its title is not the one llm-attest writes for this record's query")
    if problems:
        return Check("claim", False, "the claim " + "; ".join(problems))
    return Check("claim", True, f"names ipfs://{claim.record_cid}, its digest, its asserter and the rules")


def _claims_governance(made: AssertionMade) -> bool:
    try:
        return governed_rules(parse_claim(made.claim).rules_cid)
    except ClaimError:
        return False


def _cached(fetch: FetchDocument) -> FetchDocument:
    seen: dict[str, bytes] = {}

    def get(cid: str) -> bytes:
        if cid not in seen:
            seen[cid] = fetch(cid)
        return seen[cid]

    return get


def _fetch_verified(fetch: FetchDocument, cid: str) -> bytes:
    data = fetch(cid)
    expected = CID.parse(cid)
    if cid_of(data, cid_version=expected.version) != expected:
        raise VerifyError(f"the bytes fetched for {cid} do not hash to it")
    return data


def _check_context(record: AttestationRecord, fetch: FetchDocument) -> Check:
    from attest.kb.chunking import decode, html_to_text

    if not record.context:
        return Check("context", True, "the record cites no context")
    problems = []
    texts: dict[str, tuple[str, str | None]] = {}
    for i, chunk in enumerate(record.context):
        where = f"chunk {i} ({chunk.source})"
        if chunk.doc_cid not in texts:
            try:
                # The KB decodes documents this way (UTF-8 or UTF-16 with a BOM, LF line ends) before chunking.
                text = decode(_fetch_verified(fetch, chunk.doc_cid), chunk.doc_cid)
            except AttestError as err:
                problems.append(f"{where}: {err}")
                continue
            html = html_to_text(text)[0] if "<" in text else None
            texts[chunk.doc_cid] = (text, html)
        text, html = texts[chunk.doc_cid]
        if chunk.text not in text and (html is None or chunk.text not in html):
            problems.append(f"{where}: its text is not in the document {chunk.doc_cid}")
    if problems:
        return Check("context", False, "; ".join(problems))
    docs = len({c.doc_cid for c in record.context})
    return Check("context", True, f"all {len(record.context)} chunks are text from their {docs} document(s)")


def _check_corpus(record: AttestationRecord, fetch: FetchDocument) -> tuple[Check, ParsedManifest | None]:
    if record.corpus is None:
        return Check("corpus", None, "the record names no corpus manifest"), None
    try:
        manifest = parse_manifest(_fetch_verified(fetch, record.corpus))
    except (AttestError, ValueError) as err:
        return Check("corpus", False, f"the corpus manifest {record.corpus}: {err}"), None
    missing = [
        f"chunk {i} ({c.doc_cid} #{c.chunk_index})"
        for i, c in enumerate(record.context)
        if not c.chunk_index < manifest.chunks.get(c.doc_cid, 0)
    ]
    if missing:
        return Check("corpus", False, f"not in the corpus manifest {record.corpus}: {', '.join(missing)}"), manifest
    return Check("corpus", True, f"every chunk's document is in the corpus manifest {record.corpus}"), manifest


# -- I/O -------------------------------------------------------------------------------------------------
def verify(
    target: str,
    ctx: ChainContext | None,
    readers: Sequence[ContentStore],
    *,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    require_assertion: bool = False,
) -> Report:
    """Verify an assertion (0x + 64 hex) or a record (CID), reading content from `readers` in order."""
    network = ctx.network.name if ctx is not None else None

    def fetch(cid: str) -> bytes:
        return read_anywhere(CID.parse(cid), readers, timeout_s=timeout_s)[0]

    if ASSERTION_ID.fullmatch(target):
        if ctx is None:
            raise VerifyError(f"{target} is an assertion id; verifying it needs a network (--network)")
        made = find_assertion(ctx, bytes.fromhex(target[2:]))
        if made is None:
            raise VerifyError(f"there is no assertion {target} on {network}; check the id and --network")
        found = Check("assertion", True, _where(made))
        try:
            cid = parse_claim(made.claim).record_cid
        except ClaimError as err:
            return Report(target, None, target.lower(), network, (found, Check("claim", False, str(err))))
    else:
        try:
            cid = str(CID.parse(target))
        except InvalidCid:
            raise VerifyError(
                f"{target[:80]} is neither an assertion id (0x and 64 hex digits) nor a CID; pass one of them"
            ) from None
        made = None
    try:
        data = fetch(cid)
    except AttestError as err:
        unfetched = (Check("cid", False, str(err)), Check("record", None, "not fetched, so nothing else was checked"))
        if made is None:
            return Report(target, cid, None, network, unfetched)
        return Report(target, cid, target.lower(), network, (found, *unfetched))
    if made is None:
        found, made = _assertion_of(ctx, data, require_assertion)
    checks = check_record(
        data,
        cid,
        made=made,
        registry=ctx.registry if ctx is not None else None,
        rules_cid=rules_cid(),
        fetch_document=fetch,
        approved_at=approval_reader(ctx.w3, ctx.chain_id) if ctx is not None else None,
    )
    if made is not None and ctx is not None:
        # The callback check passes on the address alone; whether the registry counts the assertion is read there.
        checks = [_check_registry(ctx, made) if c.name == "callback" and c.ok else c for c in checks]
    assertion_id = "0x" + made.assertion_id.hex() if made is not None else None
    return Report(target, cid, assertion_id, network, (found, *checks))


def _check_registry(ctx: ChainContext, made: AssertionMade) -> Check:
    """Whether our registry counts the assertion (`attestationOf`, `isAttested`): one it rejects, or will reject as
    ineligible (too short a liveness, an escalation manager), is not an attestation, whatever OOv3 resolved."""
    from attest.chain.registry import is_attested

    registry = made.callback_recipient
    standing = ctx.standing(ctx.oov3.get_assertion(made.assertion_id), registry)
    if standing.status == "attested":
        attested = is_attested(ctx.w3, registry, made.domain_id)
        return Check("callback", attested, f"the registry {registry} attests it (isAttested: {str(attested).lower()})")
    if standing.reason:
        detail = f"the registry {registry} does not count it ({standing.status}): {standing.reason}"
        return Check("callback", False, detail)
    return Check("callback", True, f"the registry {registry} counts it once it resolves true ({standing.status} now)")


def _where(made: AssertionMade) -> str:
    return f"0x{made.assertion_id.hex()} in block {made.block_number}, transaction 0x{made.tx_hash.hex()}"


def _assertion_of(ctx: ChainContext | None, data: bytes, required: bool) -> tuple[Check, AssertionMade | None]:
    """The assertion of a record given by CID, found by its asserter and digest."""
    if ctx is None:
        return Check("assertion", False if required else None, "not connected to a chain"), None
    try:
        record = validate_record(parse_json(decode_utf8(data)))
    except RecordError:
        return Check("assertion", None, "the record did not decode, so its assertion cannot be looked up"), None
    made, searched = find_assertion_of_record(ctx, record)
    if made is None:
        detail = f"no assertion of this record on {ctx.network.name} ({searched})"
        return Check("assertion", False if required else None, detail), None
    return Check("assertion", True, _where(made)), made


def find_assertion(ctx: ChainContext, assertion_id: bytes) -> AssertionMade | None:
    """The AssertionMade event of an assertion id, or None when OOv3 has no such assertion."""
    assertion = ctx.oov3.get_assertion(assertion_id)
    if not assertion.exists:
        return None
    if ctx.deployment is not None:
        start, end = ctx.deployment.block_number, int(ctx.w3.eth.block_number)
    else:
        # OOv3 stamps assertionTime with its block's timestamp: only blocks of that second can hold the event.
        start = _first_block_at(ctx, assertion.assertion_time)
        end = _first_block_at(ctx, assertion.assertion_time + 1, low=start) - 1
    topics = [_made_topic(ctx), "0x" + assertion_id.hex()]
    for made in _made_events(ctx, topics, start, end):
        if made.assertion_id == assertion_id:
            return made
    return None


def find_assertion_of_record(ctx: ChainContext, record: AttestationRecord) -> tuple[AssertionMade | None, str]:
    """The latest assertion by the record's asserter whose domainId is the record's digest, and what was searched."""
    digest = bytes.fromhex(digest_hex(record)[2:])
    latest = int(ctx.w3.eth.block_number)
    if ctx.deployment is not None:
        start = ctx.deployment.block_number
    else:
        created = int(datetime.fromisoformat(record.created_at).timestamp())
        start = _first_block_at(ctx, created - CREATED_AT_SLACK_S)
    end = min(latest, start + LOG_WINDOW * MAX_LOG_WINDOWS - 1)
    searched = f"blocks {start} to {end}"
    topics: list[Any] = [_made_topic(ctx), None, "0x" + "00" * 12 + record.asserter[2:].lower()]
    found = None
    for made in _made_events(ctx, topics, start, end, domain_id=digest):
        found = made
    return found, searched


def _made_topic(ctx: ChainContext) -> str:
    return str(ctx.oov3.contract.events.AssertionMade().topic)


def _made_events(
    ctx: ChainContext, topics: list[Any], start: int, end: int, *, domain_id: bytes | None = None
) -> list[AssertionMade]:
    """AssertionMade events matching `topics` in [start, end], read in windows, decoded from their receipts."""
    found: list[AssertionMade] = []
    for low in range(start, end + 1, LOG_WINDOW):
        high = min(end, low + LOG_WINDOW - 1)
        try:
            logs = ctx.w3.eth.get_logs(
                {"address": ctx.oov3.address, "fromBlock": low, "toBlock": high, "topics": topics}  # type: ignore[typeddict-item]
            )
        except Exception as err:  # any RPC failure means the same to the user
            raise VerifyError(
                f"could not read OptimisticOracleV3 logs in blocks {low}-{high} ({type(err).__name__}); "
                "check the RPC endpoint, or retry"
            ) from None
        for log in logs:
            # domainId is the first non-indexed field, so the first word of the log data.
            if domain_id is not None and bytes(HexBytes(log["data"]))[:32] != domain_id:
                continue
            receipt = ctx.w3.eth.get_transaction_receipt(log["transactionHash"])
            found += [m for m in ctx.oov3.assertions_made(receipt) if m.log_index == int(log["logIndex"])]
    return found


def _first_block_at(ctx: ChainContext, timestamp: int, *, low: int = 0) -> int:
    """The first block whose timestamp is at least `timestamp` (latest + 1 when none is yet)."""
    high = int(ctx.w3.eth.block_number) + 1
    while low < high:
        mid = (low + high) // 2
        if int(ctx.w3.eth.get_block(mid)["timestamp"]) < timestamp:
            low = mid + 1
        else:
            high = mid
    return low
