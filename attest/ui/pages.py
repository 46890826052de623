"""What each dashboard page shows, gathered from the index, IPFS, the chain and the ledger: plain data for the
templates. Every check comes from attest.verify / attest.verify_batch, the same code `attest verify` runs."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from html import escape
from pathlib import Path
from typing import TYPE_CHECKING, Any

from attest.batch.manifest import Manifest, decode_manifest
from attest.chain.knowledge import KnowledgeRegistry
from attest.claim import ui_view
from attest.config import storage_location
from attest.errors import AttestError, VerifyError
from attest.flow.token import Token
from attest.ipfs.cid import CID
from attest.ipfs.remotes import read_anywhere
from attest.kb import Governance, KnowledgeBase
from attest.kb.store import DocumentInfo
from attest.ledger import Attestation, Ledger, Stake
from attest.oracle import oracle_for
from attest.paths import attest_home
from attest.record.codec import decode_utf8, parse_json
from attest.record.model import AttestationRecord, validate_record
from attest.ui.charts import calibration_chart, roc_chart, stacked_bar_chart, step_chart
from attest.ui.disputer_view import DisputerView, EvalResult
from attest.ui.index import PAGE_SIZE, Row
from attest.ui.markdown import render
from attest.ui.series import OUTCOME_KINDS, bucket_counts, outcome_events, stake_series
from attest.units import format_units
from attest.verify import ASSERTION_ID, Check, find_assertion, verify
from attest.verify_batch import verify_batch

if TYPE_CHECKING:
    from attest.connect import ChainContext
    from attest.ipfs.store import ContentStore

__all__ = ["ASSERTION_ID", "PAGE_SIZE"]

SHOWN_LEAVES = 200  # a batch page lists this many records; every one is still checked
_CITATION = re.compile(r"\[(\d{1,3})\]")


@dataclass(frozen=True)
class Event:
    what: str
    block: int | None
    tx_hash: str | None
    detail: str = ""


@dataclass(frozen=True)
class ClaimView:
    title: str | None  # None: the Oracle UI shows no title for it (not JSON with title and description)
    description_html: str
    raw: str  # the claim's text as UTF-8 (replacement characters where it is not), for when there is no title


@dataclass
class AssertionPage:
    row: Row
    claim: ClaimView
    timeline: list[Event]
    oracle_link: str | None
    checks: list[Check] = field(default_factory=list)
    record_cid: str | None = None
    manifest: Manifest | None = None
    leaves: list[dict[str, Any]] = field(default_factory=list)
    failing: dict[int, str] = field(default_factory=dict)
    bond: str = ""  # in the currency's units with its symbol, when the chain can say


def utc(seconds: int | None) -> str:
    """A chain time stamp as people read it."""
    if seconds is None:
        return "—"
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def claim_view(claim: bytes) -> ClaimView:
    view = ui_view(claim)
    raw = bytes(claim).decode("utf-8", errors="replace")
    if view is None:
        return ClaimView(None, "", raw)
    return ClaimView(view[0], render(view[1]), raw)


def timeline(row: Row, now: int | None, answered: bool | None = None) -> list[Event]:
    """Asserted, disputed, voted (the oracle's answer, seen at settlement), settled; or what is still to come."""
    at = f" at {utc(row.made_at)}" if row.made_at is not None else ""
    events = [Event("asserted", row.block_number, row.tx_hash, f"by {row.asserter}{at}")]
    if row.disputed:
        events.append(Event("disputed", row.dispute_block, row.dispute_tx, f"by {row.disputer}"))
    if row.resolution is not None:
        if row.disputed:
            verdict = "true" if row.resolution else "false"
            events.append(Event("voted", row.settle_block, None, f"the oracle resolved the dispute: {verdict}"))
        outcome = "true: the asserter keeps the bond" if row.resolution else "false: the disputer wins the bonds"
        events.append(Event("settled", row.settle_block, row.settle_tx, outcome))
    elif not row.disputed:
        left = "" if now is None else f" ({max(0, row.expiration - now)} s from now)" if now < row.expiration else ""
        state = "expired, can be settled" if now is not None and now >= row.expiration else "disputable until"
        events.append(Event("liveness", None, None, f"{state} {utc(row.expiration)}{left}"))
    elif answered:
        events.append(Event("voted", None, None, "the oracle has answered the dispute; it can be settled now"))
    else:
        unknown = " (the oracle could not be asked)" if answered is None else ""
        events.append(Event("voting", None, None, f"the oracle has not resolved the dispute yet{unknown}"))
    return events


def oracle_answered(ctx: ChainContext, row: Row) -> bool | None:
    """Whether the oracle behind OOv3 has a price for a disputed assertion's request; None when it cannot say."""
    aid = bytes.fromhex(row.assertion_id[2:])
    try:
        chain = ctx.oov3.get_assertion(aid)
        ancillary = bytes(ctx.oov3.contract.functions.stampAssertion(aid).call())
        return oracle_for(ctx).has_price(chain.identifier, chain.assertion_time, ancillary, requester=ctx.oov3.address)
    except Exception:  # any failure to ask leaves the step unknown, shown as such
        return None


def assertion_page(
    row: Row, ctx: ChainContext | None, readers: Sequence[ContentStore], timeout_s: float, now: int | None
) -> AssertionPage:
    link = ctx.network.oracle_ui_link(row.tx_hash, row.log_index) if ctx is not None else None
    page = AssertionPage(row, claim_view(row.claim), timeline(row, now), link, record_cid=row.record_cid)
    if ctx is None:
        page.checks = [Check("chain", False, "the chain cannot be reached, so nothing was checked")]
        return page
    if row.disputed and row.resolution is None:
        page.timeline = timeline(row, now, oracle_answered(ctx, row))
    try:
        page.bond = Token(ctx.w3, row.currency).show(row.bond)
    except Exception:  # not an ERC-20 we can read: the base units are shown
        page.bond = ""
    if row.kind == "record":
        page.checks = list(verify(row.assertion_id, ctx, readers, timeout_s=timeout_s).checks)
    elif row.kind == "batch":
        made = find_assertion(ctx, bytes.fromhex(row.assertion_id[2:]))
        if made is None:
            raise VerifyError(f"assertion {row.assertion_id} is not on {ctx.network.name} any more")
        report = verify_batch(made, ctx, readers, timeout_s=timeout_s)
        page.checks = list(report.checks)
        page.failing = {index: why for index, _, why in report.failing}
        if report.manifest_cid is not None:
            page.manifest = _manifest(report.manifest_cid, readers, timeout_s)
        if page.manifest is not None:
            tree = page.manifest.tree_of()
            page.leaves = [
                {"index": i, "cid": leaf.cid, "digest": leaf.digest, "proof": ["0x" + p.hex() for p in tree.proof(i)]}
                for i, leaf in enumerate(page.manifest.leaves[:SHOWN_LEAVES])
            ]
    else:
        page.checks = [Check("claim", None, "not an llm-attest claim: only the Oracle UI's view of it is shown")]
    return page


def _manifest(cid: str, readers: Sequence[ContentStore], timeout_s: float) -> Manifest | None:
    try:
        return decode_manifest(read_anywhere(CID.parse(cid), readers, timeout_s=timeout_s)[0])
    except AttestError:
        return None  # the manifest check already says why


def fetch_record(cid: str, readers: Sequence[ContentStore], timeout_s: float) -> tuple[AttestationRecord, bytes]:
    """A record by CID, validated against the schema (its signature is a check on the page, not a refusal)."""
    try:
        parsed = CID.parse(cid)
    except AttestError:
        raise VerifyError(f"{cid[:80]!r} is not a CID; a record's address looks like bafy… or Qm…") from None
    data, _ = read_anywhere(parsed, readers, timeout_s=timeout_s)
    try:
        return validate_record(parse_json(decode_utf8(data))), data
    except AttestError as err:
        raise VerifyError(f"the content at {cid} is not an attestation record: {err}") from None


def answer_html(record: AttestationRecord, cid: str) -> str:
    """The answer, escaped, with each [n] citation linked to the cited chunk's page."""
    cited = len(record.context)

    def link(m: re.Match[str]) -> str:
        n = int(m.group(1))
        if not 1 <= n <= cited:
            return m.group(0)
        return f'<a href="/record/{escape(cid)}/context/{n}" aria-label="cited passage {n}">[{n}]</a>'

    return "<br>\n".join(_CITATION.sub(link, escape(line)) for line in record.answer.split("\n"))


def chunk_checks(record: AttestationRecord, n: int, fetch: Callable[[str], bytes]) -> list[Check]:
    """The cited chunk's own checks: its text hashes to its sha256, and is text of the document at its doc_cid."""
    chunk = record.context[n - 1]
    digest = hashlib.sha256(chunk.text.encode()).hexdigest()
    checks = [Check("sha256", digest == chunk.sha256, f"sha256 of the text is {digest}")]
    try:
        document = decode_utf8(fetch(chunk.doc_cid))
    except AttestError as err:
        checks.append(Check("document", False, f"the document {chunk.doc_cid} cannot be read: {err}"))
        return checks
    inside = chunk.text in document
    detail = "the text is in the document" if inside else "the text is NOT in the document it names"
    checks.append(Check("document", inside, f"{detail} ({chunk.doc_cid}, {len(document)} characters)"))
    return checks


def fetcher(readers: Sequence[ContentStore], timeout_s: float) -> Callable[[str], bytes]:
    def fetch(cid: str) -> bytes:
        return read_anywhere(CID.parse(cid), readers, timeout_s=timeout_s)[0]

    return fetch


def record_checks(cid: str, ctx: ChainContext | None, readers: Sequence[ContentStore], timeout_s: float) -> list[Check]:
    """`attest verify CID`'s checks; off-chain when the chain cannot be reached (the chain checks say so)."""
    return list(verify(cid, ctx, readers, timeout_s=timeout_s).checks)


def decisions_chart(view: DisputerView, chain_id: int) -> str:
    """The disputer's decisions on this chain over time (SVG)."""
    events = [(e.at, ("dry run: " if e.dry_run else "") + e.action) for e in view.decisions(chain_id)]
    buckets = bucket_counts(events, kinds=("dispute", "none", "undecided", "skip", "vote"))
    return stacked_bar_chart(buckets, title="The disputer's decisions over time", chart_id="decisions")


def eval_charts(run: EvalResult) -> tuple[str, str]:
    """The latest `disputer eval`'s ROC curve and calibration diagram (SVG), as `disputer eval --plot` draws them."""
    judge = f"{run.judge} (raw)"
    return (
        roc_chart(run.scores, run.labels, title="ROC curve, raw scores", judge=judge, chart_id="roc-raw"),
        calibration_chart(run.scores, run.labels, title="Calibration, raw scores", judge=judge, chart_id="cal-raw"),
    )


@dataclass(frozen=True)
class GovernedDocument:
    contributor: str  # whose signed request brought it in ("" when none did)
    approved_now: bool | None  # the registry's isApproved(contributor, CID) at its latest block; None: not asked
    approved_then: bool | None  # wasApprovedAt(CID, the block the KB's approved set was read at)

    @property
    def status(self) -> tuple[str, str]:
        """(pass | fail | skip, what it means), as the checks are shown."""
        if self.approved_then is None:
            return "skip", "not checked"
        if not self.approved_then:
            return "fail", "NOT approved at the KB's block: records citing it fail the governed-context check"
        if not self.approved_now:
            return "warn", "approved at the KB's block, revoked since: the next `attest kb sync` removes it"
        return "pass", "approved"


@dataclass(frozen=True)
class KbGovernance:
    governance: Governance  # the KnowledgeRegistry, its chain and the block of the approved set the KB holds
    documents: dict[str, GovernedDocument]  # doc_cid -> its contributor and approval
    asked: str  # whether the registry was asked, or why not


@dataclass(frozen=True)
class KbView:
    documents: list[DocumentInfo]
    manifest_cid: str | None
    chunks: int
    governed: KbGovernance | None = None  # None: not governed (documents added with `attest kb add`)


def kb_view(chain: Callable[[], ChainContext | None] = lambda: None) -> KbView | None:
    """The knowledge base of this home (documents, CIDs, the manifest CID that names this snapshot), or None; for a
    governed one, its registry and each document's approval, asked of the chain `chain()` gives (None: down)."""
    path = attest_home() / "kb.sqlite3"
    if not path.exists():
        return None
    with KnowledgeBase(path) as kb:
        documents = kb.documents()
        gov, contributors = kb.governance(), kb.contributors()
        view = KbView(documents, kb.manifest_cid() if documents else None, sum(d.chunks for d in documents))
    if gov is None:
        return view
    by_cid = {d.doc_cid: contributors.get(d.doc_cid, "") for d in documents}
    return replace(view, governed=kb_governance(gov, by_cid, chain()))


def kb_governance(gov: Governance, contributors: dict[str, str], ctx: ChainContext | None) -> KbGovernance:
    """Each document's approval in the KB's KnowledgeRegistry: in force now, and at the KB's block."""
    unasked = {cid: GovernedDocument(who, None, None) for cid, who in contributors.items()}
    if ctx is None:
        return KbGovernance(gov, unasked, "the chain cannot be reached, so the registry was not asked")
    if ctx.chain_id != gov.chain_id:
        return KbGovernance(gov, unasked, f"the registry is on chain {gov.chain_id}, not this network's "
                            f"{ctx.chain_id}: start the dashboard with that chain's --network to ask it")  # fmt: skip
    registry = KnowledgeRegistry(ctx.w3, gov.registry)
    try:
        documents = {
            cid: GovernedDocument(
                who, registry.is_approved(who, cid) if who else None, registry.was_approved_at(cid, gov.block)
            )
            for cid, who in contributors.items()
        }
        latest = int(ctx.w3.eth.block_number)
    except Exception as err:  # no registry there, or the node failed mid-way: nothing is concluded
        return KbGovernance(gov, unasked, f"the registry could not be asked ({type(err).__name__})")
    return KbGovernance(gov, documents, f"asked the registry at block {latest}")


@dataclass(frozen=True)
class MineView:
    attestations: list[Attestation]
    at_stake: dict[str, str]  # currency symbol -> bonds of open assertions, in its units
    settleable: set[int]  # ledger numbers `attest settle` may settle now (a dispute once the oracle answered)
    on_chain: dict[int, str] = field(default_factory=dict)  # ledger number -> the index's status, where it differs
    charts: tuple[str, ...] = ()  # SVG: bonds at stake over time, outcomes over time


def mine_view(network: str, now: int | None, chain: Callable[[str], Row | None]) -> MineView:
    """This home's attestations on `network`, newest first, the bonds still at stake and what can be settled.
    `chain(assertion_id)` is the index's row: the chain's word on disputes, which the ledger learns only when
    `attest status` or `settle` reads it."""
    where = storage_location("ledger.sqlite")  # the home's file, or the `[storage] url` server
    if isinstance(where, Path) and not where.exists():
        return MineView([], {}, set())
    with Ledger(where) as ledger:
        rows = list(reversed(ledger.select(network=network)))
        stakes = ledger.stakes(network)
    settleable: set[int] = set()
    for a in rows:
        if a.status in ("asserted", "disputed") and a.bond is not None:
            row = chain(a.assertion_id) if a.assertion_id else None
            expired = now is not None and a.expiration is not None and now >= a.expiration
            if a.status == "disputed" or (row is not None and row.disputed) or expired:
                settleable.add(a.id)
    on_chain: dict[int, str] = {}
    for a in rows:
        row = chain(a.assertion_id) if a.assertion_id else None
        if row is not None and row.status != a.status:
            on_chain[a.id] = row.status
    return MineView(rows, at_stake(stakes), settleable, on_chain, _mine_charts(stakes))


def at_stake(stakes: Sequence[Stake]) -> dict[str, str]:
    """The bonds not settled yet (a batch's once), per currency in its units: the same stakes as the chart's."""
    total: dict[tuple[str, int | None], int] = {}
    for stake in stakes:
        if stake.ended_at is None:
            key = (stake.symbol or stake.currency, stake.decimals)
            total[key] = total.get(key, 0) + stake.bond
    return {
        name if decimals is not None else f"{name} (base units)": format_units(bond, decimals or 0)
        for (name, decimals), bond in total.items()
    }


def _mine_charts(stakes: Sequence[Stake]) -> tuple[str, ...]:
    bonds = step_chart(
        stake_series(stakes, until=datetime.now(UTC)), title="Bonds at stake", y_label="bond currency units",
        chart_id="bonds-at-stake",
    )  # fmt: skip
    outcomes = stacked_bar_chart(
        bucket_counts(outcome_events(stakes), kinds=OUTCOME_KINDS), title="Outcomes over time", chart_id="outcomes"
    )
    return bonds, outcomes
