"""`attest doctor`: one line per check of a network's setup, pass / warn / fail; exit 1 on any failure."""

from __future__ import annotations

import click

from attest.cli.output import echo_json


@click.command()
@click.option("--network", help="sepolia, ethereum, ... (default: the config's [defaults] network).")
@click.option("--account", help="The asserting account (default: the config's, or dev:1 on the devnet).")
@click.option(
    "--attestations",
    type=click.IntRange(1),
    default=10,
    show_default=True,
    help="How many attestations (approve, assert, settle) the gas money must cover at current fees.",
)
@click.option("--json", "as_json", is_flag=True, help="The findings as JSON.")
def doctor(network: str | None, account: str | None, attestations: int, as_json: bool) -> None:
    """Check a network's setup before money moves: RPC and chain id, OOv3 and UMA's parameters, the currency,
    our registry, the account's gas money and bond, IPFS remotes, the model key and the disputer's budgets.
    Nothing is signed or sent. Exits 1 when any check fails."""
    from attest.flow.doctor import diagnose

    findings = diagnose(network, account=account, attestations=attestations)
    failures = sum(1 for f in findings if f.status == "fail")
    if as_json:
        echo_json(
            {
                "ok": failures == 0,
                "checks": [{"name": f.name, "status": f.status, "detail": f.detail, "fix": f.fix} for f in findings],
            }
        )
    else:
        width = max(len(f.name) for f in findings)
        for f in findings:
            click.echo(f"{f.status.upper():4}  {f.name:{width}}  {f.line}")
        warnings = sum(1 for f in findings if f.status == "warn")
        verdict = "ready" if failures == 0 else f"{failures} check(s) failed"
        click.echo(f"{verdict}" + (f" ({warnings} warning(s))" if warnings else ""))
    if failures:
        raise SystemExit(1)
