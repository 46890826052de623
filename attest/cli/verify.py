"""`attest verify ID|CID`: check an assertion, a record or a preference record the way a UMA voter would, one
line per check."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

import click

from attest.cli.output import echo_json

if TYPE_CHECKING:
    from click._termui_impl import ProgressBar

    from attest.connect import ChainContext
    from attest.ipfs.store import ContentStore


@click.command()
@click.argument("target")
@click.option("--network", "network", default=None, help="Network of the assertion (default: the config's).")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.option(
    "--require-assertion",
    is_flag=True,
    help="For a CID: fail when no assertion of the record is found on chain (by default that is only reported).",
)
@click.option(
    "--batch",
    "batch",
    metavar="MANIFEST_CID|ASSERTION_ID",
    help="For a record CID: the Merkle batch it is in (found in the ledger when omitted).",
)
@click.option(
    "--anchor",
    "anchor",
    metavar="RECEIPT_CID|FILE",
    help="For a preference CID: its anchor receipt (`attest export`'s anchor_receipt), when it is not in your ledger.",
)
def verify(
    target: str, network: str | None, as_json: bool, require_assertion: bool, batch: str | None, anchor: str | None
) -> None:
    """Verify an assertion id (0x + 64 hex), a record CID, or an attestation by its ledger number (as `attest
    status` takes it): record bytes, schema, signature, digest, the assertion's claim and settings, and the cited
    context. A batch assertion: its manifest and every record. A record in a batch: the record, its inclusion
    proof, the manifest and the batch assertion. Exits 1 when any check fails."""
    from attest.config import load_config
    from attest.errors import AttestError
    from attest.flow.rank import read_preference
    from attest.ipfs.local import LocalStore
    from attest.ipfs.remotes import Remotes
    from attest.verify import ASSERTION_ID
    from attest.verify import verify as run_verify

    config = load_config()
    if target.lstrip("#").isdigit():
        target, network = _from_ledger(target, network)
    net = config.resolve_network(network or config.defaults.network)
    ipfs = config.ipfs_for(net.name)
    readers = (LocalStore(), *Remotes.from_config(ipfs).readers)
    if not ASSERTION_ID.fullmatch(target) and (found := read_preference(target, readers, timeout_s=ipfs.timeout_s)):
        receipt = None if anchor is None else _read_receipt(anchor, readers, ipfs.timeout_s)
        _verify_preference(target, found, readers, ipfs.timeout_s, as_json, net.name, receipt)
        return
    chain_needed = bool(ASSERTION_ID.fullmatch(target)) or network is not None or require_assertion
    ctx: ChainContext | None
    try:
        ctx = _connect(net.name)
    except AttestError:
        # A record can be checked off-chain; only an assertion id or an explicit network needs the chain.
        if chain_needed:
            raise
        ctx = None
    if _verify_batch(target, batch, ctx, readers, ipfs.timeout_s, as_json):
        return
    report = run_verify(target, ctx, readers, timeout_s=ipfs.timeout_s, require_assertion=require_assertion)
    if as_json:
        echo_json(report.to_json())
    else:
        width = max(len(c.name) for c in report.checks)
        for check in report.checks:
            click.echo(f"{check.status.upper():4}  {check.name:{width}}  {check.detail}")
        verdict = "all checks passed" if report.ok else f"{len(report.failed)} check(s) failed"
        skipped = sum(1 for c in report.checks if c.ok is None)
        click.echo(f"{target}: {verdict}" + (f" ({skipped} not checked)" if skipped else ""))
    if not report.ok:
        raise SystemExit(1)


def _verify_batch(
    target: str,
    batch: str | None,
    ctx: ChainContext | None,
    readers: Sequence[ContentStore],
    timeout_s: float,
    as_json: bool,
) -> bool:
    """Verify `target` as (part of) a Merkle batch when it is one; False when it is not a batch target."""
    from attest.verify import ASSERTION_ID, find_assertion
    from attest.verify_batch import batch_claim_of, verify_batch, verify_record_in_batch

    if ASSERTION_ID.fullmatch(target) and ctx is not None:
        made = find_assertion(ctx, bytes.fromhex(target[2:]))
        claim = None if made is None else batch_claim_of(made)
        if made is None or claim is None:
            return False
        bar: ProgressBar[int]
        with click.progressbar(length=claim.count, label="records", file=sys.stderr, show_pos=True) as bar:
            report = verify_batch(made, ctx, readers, timeout_s=timeout_s, progress=bar.update)
    else:
        batch = batch or _ledger_batch(target)
        if batch is None:
            return False
        report = verify_record_in_batch(target, batch, ctx, readers, timeout_s=timeout_s)
    if as_json:
        echo_json(
            {
                "target": report.target, "ok": report.ok, "manifest": report.manifest_cid,
                "assertion": report.assertion_id, "records": report.records,
                "checks": [{"name": c.name, "status": c.status, "detail": c.detail} for c in report.checks],
                "failing": [{"leaf_index": i, "record": cid, "why": why} for i, cid, why in report.failing],
            }
        )  # fmt: skip
    else:
        width = max(len(c.name) for c in report.checks)
        for check in report.checks:
            click.echo(f"{check.status.upper():4}  {check.name:{width}}  {check.detail}")
        for index, cid, why in report.failing:
            click.echo(f"FAIL  leaf {index}  {cid}: {why}")
        summary = f"{report.records - len(report.failing)}/{report.records} records passed, " if report.records else ""
        verdict = "all checks passed" if report.ok else "the batch does not hold"
        click.echo(f"{target}: {summary}{verdict}")
    if not report.ok:
        raise SystemExit(1)
    return True


def _ledger_batch(target: str) -> str | None:
    """The batch the ledger has `target` (a record CID) in: its assertion id, or its manifest CID before that."""
    from attest.errors import LedgerError
    from attest.flow.batch import batch_of
    from attest.ledger import Ledger

    try:
        with Ledger() as ledger:
            a = ledger.find(target)
    except LedgerError:
        return None
    if a.batch_id is None:
        return None
    batch = batch_of(a.batch_id)
    return batch.assertion_id or batch.manifest_cid  # the assertion, once there is one: it is checked too


def _from_ledger(number: str, network: str | None) -> tuple[str, str | None]:
    """A ledger number as its assertion id (or its record's CID, when it was not asserted) and its network."""
    from attest.errors import LedgerError
    from attest.ledger import Ledger

    with Ledger() as ledger:
        a = ledger.find(number)
    if a.assertion_id is not None:
        return a.assertion_id, network or a.network
    if a.cid is None:
        raise LedgerError(f"attestation #{a.id} is not pinned yet, so there is nothing to verify; `attest resume`")
    return a.cid, network  # a record only: checked off-chain unless a network is named


def _read_receipt(ref: str, readers: Sequence[ContentStore], timeout_s: float) -> bytes:
    """An anchor receipt from a file, else by CID."""
    from pathlib import Path

    from attest.errors import AttestError, PreferenceError
    from attest.ipfs.cid import CID
    from attest.ipfs.remotes import read_anywhere

    if Path(ref).is_file():
        return Path(ref).read_bytes()
    try:
        return read_anywhere(CID.parse(ref), readers, timeout_s=timeout_s)[0]
    except AttestError as err:
        raise PreferenceError(f"--anchor {ref} is neither a file nor a readable CID: {err}") from None


def _verify_preference(
    target: str,
    found: tuple[bytes, str],
    readers: Sequence[ContentStore],
    timeout_s: float,
    as_json: bool,
    network: str,
    receipt: bytes | None,
) -> None:
    """A preference record: its signature, both answer records it ranks (fetched, checked, digests), its anchor."""
    from attest.flow.rank import check_json, verify_preference

    checks = verify_preference(*found, readers, timeout_s=timeout_s, cid=target, network=network, receipt=receipt)
    failed = [c for c in checks if c.ok is False]
    if as_json:
        echo_json({"target": target, "kind": "preference", "ok": not failed, "checks": check_json(checks)})
    else:
        width = max(len(c.name) for c in checks)
        for c in checks:
            status = ("pending" if c.name == "anchor" else "skip") if c.ok is None else "ok" if c.ok else "fail"
            click.echo(f"{status.upper():7}  {c.name:{width}}  {c.detail}")
        click.echo(f"{target}: " + (f"{len(failed)} check(s) failed" if failed else "all checks passed"))
    if failed:
        raise SystemExit(1)


def _connect(network: str) -> ChainContext:
    from attest.connect import connect

    # Verifying never starts a devnet: a stopped one has no assertions to show.
    return connect(network, start_devnet=False)
