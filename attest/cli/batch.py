"""`attest batch status | flush | run`: records asked with --batch, asserted together under one Merkle root."""

from __future__ import annotations

import click

from attest.cli.attestations import _progress
from attest.cli.output import echo_json


@click.group()
def batch() -> None:
    """Merkle batches: many records under one assertion and one bond."""


@batch.command()
@click.option("--json", "as_json", is_flag=True)
def status(as_json: bool) -> None:
    """The queue and every batch."""
    from attest.flow.batch import describe
    from attest.flow.batch import status as run

    queued, oldest, batches = run()
    if as_json:
        echo_json({"queued": queued, "oldest_queued_at": oldest, "batches": [describe(b) for b in batches]})
        return
    click.echo(f"Queued: {queued} record{'s' if queued != 1 else ''}" + (f" (oldest {oldest})" if oldest else ""))
    for b in batches:
        outcome = f" ({b.outcome})" if b.outcome else ""
        click.echo(f"  batch #{b.id}  {b.status}{outcome}  {b.count} records  root {b.root or '-'}")
        if b.assertion_id:
            click.echo(f"             assertion {b.assertion_id}  manifest ipfs://{b.manifest_cid}")


@batch.command()
@click.option("--network", help="Only records queued on this network.")
def flush(network: str | None) -> None:
    """Put every queued record into batches and assert each batch now."""
    from attest.flow.batch import flush as run

    outcomes = run(network=network, progress=_progress(True))
    if not outcomes:
        click.echo("Nothing queued: ask with `attest ask --batch` first.")
    for o in outcomes:
        b = o.batch
        click.echo(f"batch #{b.id}: {b.count} records, root {b.root}, assertion {b.assertion_id}")


@batch.command()
@click.option("--max-records", type=click.IntRange(1, 10_000), help="Flush at this many queued records.")
@click.option("--max-age", "max_age_s", type=click.FloatRange(min=0, min_open=True), help="...or at this age (s).")
@click.option("--poll", "poll_s", default=1.0, show_default=True, type=click.FloatRange(min=0.01))
@click.option("--rounds", type=click.IntRange(1), help="Stop after this many polls (default: run until Ctrl-C).")
def run(max_records: int | None, max_age_s: float | None, poll_s: float, rounds: int | None) -> None:
    """Flush whenever [batch] max_records are queued or the oldest has waited max_age_s."""
    from attest.config import load_config
    from attest.flow.batch import run as loop

    config = load_config()
    asserted = loop(
        max_records=max_records or config.batch.max_records,
        max_age_s=max_age_s or config.batch.max_age_s,
        poll_s=poll_s,
        rounds=rounds,
        config=config,
        progress=_progress(True),
    )
    click.echo(f"{asserted} batch{'es' if asserted != 1 else ''} asserted.")
