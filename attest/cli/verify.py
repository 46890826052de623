"""`attest verify ID|CID`: check an assertion, a record or a preference record the way a UMA voter would, one
line per check."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from attest.cli.output import echo_json

if TYPE_CHECKING:
    from collections.abc import Sequence

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
def verify(target: str, network: str | None, as_json: bool, require_assertion: bool) -> None:
    """Verify an assertion id (0x + 64 hex) or a record CID: record bytes, schema, signature, digest, the
    assertion's claim and settings, and the cited context. Exits 1 when any check fails."""
    from attest.config import load_config
    from attest.errors import AttestError
    from attest.flow.rank import read_preference
    from attest.ipfs.local import LocalStore
    from attest.ipfs.remotes import Remotes
    from attest.verify import ASSERTION_ID
    from attest.verify import verify as run_verify

    config = load_config()
    net = config.resolve_network(network or config.defaults.network)
    ipfs = config.ipfs_for(net.name)
    readers = (LocalStore(), *Remotes.from_config(ipfs).readers)
    if not ASSERTION_ID.fullmatch(target) and (found := read_preference(target, readers, timeout_s=ipfs.timeout_s)):
        _verify_preference(target, found, readers, ipfs.timeout_s, as_json)
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


def _verify_preference(
    target: str, found: tuple[bytes, str], readers: Sequence[ContentStore], timeout_s: float, as_json: bool
) -> None:
    """A preference record: its signature, and both answer records it ranks (fetched, checked, digests)."""
    from attest.flow.rank import check_json, verify_preference

    checks = verify_preference(*found, readers, timeout_s=timeout_s)
    failed = [c for c in checks if c.ok is False]
    if as_json:
        echo_json({"target": target, "kind": "preference", "ok": not failed, "checks": check_json(checks)})
    else:
        width = max(len(c.name) for c in checks)
        for c in checks:
            status = "skip" if c.ok is None else "ok" if c.ok else "fail"
            click.echo(f"{status.upper():4}  {c.name:{width}}  {c.detail}")
        click.echo(f"{target}: " + (f"{len(failed)} check(s) failed" if failed else "all checks passed"))
    if failed:
        raise SystemExit(1)


def _connect(network: str) -> ChainContext:
    from attest.connect import connect

    # Verifying never starts a devnet: a stopped one has no assertions to show.
    return connect(network, start_devnet=False)
