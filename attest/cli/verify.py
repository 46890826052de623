"""`attest verify ID|CID`: check an assertion or a record the way a UMA voter would, one line per check."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from attest.cli.output import echo_json

if TYPE_CHECKING:
    from attest.connect import ChainContext


@click.command()
@click.argument("target")
@click.option("--network", "network", default=None, help="Network of the assertion (default: the config's).")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.option(
    "--require-assertion",
    is_flag=True,
    help="For a CID: fail when no assertion of the record is found on chain (by default that is only reported).",
)
def verify(target: str, network: str | None, as_json: bool, require_assertion: bool) -> None:
    """Verify an assertion id (0x + 64 hex), a record CID, or an attestation by its ledger number (as `attest
    status` takes it): record bytes, schema, signature, digest, the assertion's claim and settings, and the cited
    context. Exits 1 when any check fails."""
    from attest.config import load_config
    from attest.errors import AttestError
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
    chain_needed = bool(ASSERTION_ID.fullmatch(target)) or network is not None or require_assertion
    ctx: ChainContext | None
    try:
        ctx = _connect(net.name)
    except AttestError:
        # A record can be checked off-chain; only an assertion id or an explicit network needs the chain.
        if chain_needed:
            raise
        ctx = None
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


def _connect(network: str) -> ChainContext:
    from attest.connect import connect

    # Verifying never starts a devnet: a stopped one has no assertions to show.
    return connect(network, start_devnet=False)
