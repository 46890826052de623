"""`attest ask | resume | discard | settle | status | list | export`: the main job and what follows it."""

from __future__ import annotations

import sys
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import click

from attest import interrupts
from attest.cli.output import echo_json, short, table
from attest.llm.registry import provider_names

if TYPE_CHECKING:
    from attest.flow.ask import AskResult


def _progress(enabled: bool) -> Any:
    started = time.perf_counter()

    def show(step: str, detail: str) -> None:
        # Warnings (a raw key from the environment, a nonce another machine used, a stuck transaction replaced, a
        # bond insisted on or withheld)
        # show on stderr even under --json.
        if enabled or step in ("account", "nonce", "fees", "warning", "no bond"):
            elapsed = (time.perf_counter() - started) * 1000
            click.echo(f"  ✓ {step:<9} {detail}  ({elapsed:,.0f} ms)", err=True)

    return show


def _when(expiration: int | None, chain_now: int | None) -> str:
    if expiration is None:
        return "-"
    local = datetime.fromtimestamp(expiration, UTC).astimezone().strftime("%Y-%m-%d %H:%M:%S %Z")
    if chain_now is None:
        return local
    left = expiration - chain_now
    if left <= 0:
        return f"{local} (expired; settle it: `attest settle`)"
    hours, rest = divmod(left, 3600)
    return f"{local} (in {hours} h {rest // 60} min)" if hours else f"{local} (in {rest // 60} min {rest % 60} s)"


@click.command()
@click.argument("query", required=False)
@click.option(
    "--query-file", type=click.File("r", encoding="utf-8"), help="Read the question from this file (- for stdin)."
)
@click.option("--network", help="local (default), sepolia, ethereum, ... (see `attest networks`).")
@click.option("--account", help="ape keystore alias, or dev:N on the local devnet.")
@click.option("--provider", type=click.Choice(provider_names()), help="Model provider.")
@click.option("--model", help="Model name (default: the provider's default).")
@click.option(
    "-k", "--top-k", default=5, show_default=True, type=click.IntRange(1, 50), help="Passages to retrieve (1-50)."
)
@click.option("--bond", help="Bond in currency units (default: the oracle's minimum bond).")
@click.option(
    "--liveness",
    type=click.IntRange(1, 10 * 365 * 86400),
    help="Seconds the assertion stays disputable (10 years at most).",
)
@click.option("--currency", help="Bond currency address (default: the oracle's default currency).")
@click.option("--identifier", help="UMA price identifier (default: ASSERT_TRUTH2).")
@click.option("--answer", "answer_text", help="Attest an answer produced elsewhere (provider recorded as external).")
@click.option("--no-assert", is_flag=True, help="Sign and pin the record only; send nothing on chain.")
@click.option(
    "--assert-anyway",
    is_flag=True,
    help="Assert even when nothing was retrieved or the answer says the knowledge base does not answer (the bond "
    "is likely lost).",
)
@click.option(
    "--publish-elsewhere",
    is_flag=True,
    help="Off the devnet with no IPFS remote configured: assert anyway, because you publish the record, rules, "
    "cited documents and corpus manifest by other means (with a warning).",
)
@click.option(
    "--batch", "batch", is_flag=True, help="Sign and pin now; assert later in one Merkle batch (`attest batch`)."
)
@click.option("--compare", is_flag=True, help="Two answers from the same context, paired for `attest rank`.")
@click.option("--vs-model", help="With --compare: the second answer's model (default: a second sample).")
@click.option("--vs-provider", type=click.Choice(provider_names()), help="With --compare: the second's provider.")
@click.option("--assert", "assert_pair", is_flag=True, help="With --compare: assert both answers (default: pin only).")
@click.option("--json", "as_json", is_flag=True, help="One JSON object on stdout, no progress display.")
def ask(
    query: str | None,
    query_file: click.utils.LazyFile | None,
    network: str | None,
    account: str | None,
    provider: str | None,
    model: str | None,
    top_k: int,
    bond: str | None,
    liveness: int | None,
    currency: str | None,
    identifier: str | None,
    answer_text: str | None,
    no_assert: bool,
    assert_anyway: bool,
    publish_elsewhere: bool,
    batch: bool,
    compare: bool,
    vs_model: str | None,
    vs_provider: str | None,
    assert_pair: bool,
    as_json: bool,
) -> None:
    """Answer QUERY from the knowledge base, sign and pin the record, and assert it on UMA's Optimistic Oracle V3.
    QUERY `-` reads the question from stdin, as does --query-file -."""
    from attest.errors import KbError
    from attest.flow.ask import AskRequest
    from attest.flow.ask import ask as run

    if (query is None) == (query_file is None):
        raise KbError('give the question once: `attest ask "..."`, `attest ask -` (stdin) or --query-file FILE')
    if query_file is not None:
        query = query_file.read().strip()
    elif query == "-":
        query = sys.stdin.read().strip()
    assert query is not None
    if not compare and (vs_model or vs_provider or assert_pair):
        raise click.UsageError("--vs-model, --vs-provider and --assert go with --compare")

    request = AskRequest(
        query=query, network=network, account=account, provider=provider, model=model, top_k=top_k, bond=bond,
        liveness=liveness, currency=currency, identifier=identifier, answer=answer_text,
        do_assert=assert_pair if compare else not no_assert, assert_anyway=assert_anyway,
        publish_elsewhere=publish_elsewhere, batch=batch,
    )  # fmt: skip
    if compare:
        from attest.cli.ranking import show_compare
        from attest.flow.compare import compare as run_compare

        pair = run_compare(request, vs_model=vs_model, vs_provider=vs_provider, progress=_progress(not as_json))
        show_compare(pair, as_json)
        return
    result = run(request, progress=_progress(not as_json))
    with interrupts.ignored():  # the job is done (its assertion mined): Ctrl-C no longer hides its result
        _show_ask(result, as_json)


def _show_ask(result: AskResult, as_json: bool) -> None:
    a = result.attestation
    chain_now = None
    if a.expiration is not None:
        from attest.connect import connect

        chain_now = int(connect(a.network).w3.eth.get_block("latest")["timestamp"])
    token = result.token
    bond_text = token.show(a.bond) if token is not None and a.bond is not None else None
    if as_json:
        echo_json(
            {
                "id": a.id,
                "answer": result.answer,
                "citations": list(result.citations),
                "sources": [{"n": i, "source": c.source, "doc_cid": c.doc_cid} for i, c in enumerate(result.chunks, 1)],
                "model": result.model,
                "record_cid": a.cid,
                "digest": a.digest,
                "network": a.network,
                "assertion_id": a.assertion_id,
                "tx_hash": a.assert_tx,
                "log_index": a.log_index,
                "bond": str(a.bond) if a.bond is not None else None,
                "bond_display": bond_text,
                "currency": a.currency,
                "expiration": a.expiration,
                "oracle_ui": result.ui_link,
                "not_asserted": result.not_asserted,
                "status": a.status,
                "timings_ms": result.timings_ms,
            }
        )
        return
    click.echo("")
    click.echo(click.style(f"Answer ({result.model})", bold=True))
    click.echo(result.answer)
    if result.chunks:
        click.echo("")
        click.echo(click.style("Sources", bold=True))
        for n, chunk in enumerate(result.chunks, 1):
            heading = f" § {short(' / '.join(chunk.heading_path), 50)}" if chunk.heading_path else ""
            where = f"ipfs://{chunk.doc_cid}"
            if chunk.source in (chunk.doc_cid, where):  # a governed KB's document has no path: its CID, said once
                click.echo(f"  [{n}] {where}{heading}")
            else:
                click.echo(f"  [{n}] {chunk.source}{heading}  {where}")
    click.echo("")
    click.echo(click.style(f"Attestation #{a.id}", bold=True))
    rows: list[tuple[str, str]] = [("record", f"ipfs://{a.cid}"), ("digest", a.digest), ("network", a.network)]
    if a.assertion_id is not None:
        rows += [
            ("assertion", a.assertion_id),
            ("bond", bond_text or "-"),
            ("expires", _when(a.expiration, chain_now)),
            ("oracle UI", result.ui_link or result.network.ui_note()),
            ("next", f"attest verify {a.assertion_id}   ·   attest settle {a.id} after expiry"),
        ]
    elif a.status == "queued":
        rows.append(("next", "queued for the next batch: `attest batch flush` asserts now, `attest batch run` loops"))
    elif result.not_asserted is not None:
        rows.append(("no bond", f"{result.not_asserted}; nothing was sent on chain (--assert-anyway insists)"))
    else:
        rows.append(("next", "pinned only (--no-assert); nothing was sent on chain"))
    for label, value in rows:
        click.echo(f"  {label:<10} {value}")


@click.command()
@click.argument("ref", required=False)
def resume(ref: str | None) -> None:
    """Finish every attestation (and Merkle batch) a crash interrupted, or the one REF names (ledger number,
    assertion id or CID), without sending any transaction twice. Cancelled ones are left alone unless named."""
    from attest.flow.batch import resume_batches
    from attest.flow.lifecycle import resume as run

    outcomes = run(ref, progress=_progress(True))
    batches = [] if ref is not None else resume_batches(progress=_progress(True))
    if not outcomes and not batches:
        click.echo("Nothing to resume: every attestation in the ledger is at rest.")
    for o in outcomes:
        click.echo(f"#{o.attestation.id}: {o.detail} ({o.attestation.status})")
    for b in batches:
        click.echo(f"batch #{b.batch.id}: {b.action} ({b.batch.count} records, assertion {b.batch.assertion_id})")


@click.command()
@click.argument("ref")
def discard(ref: str) -> None:
    """Cancel an attestation nothing of which was sent on chain (by ledger number, assertion id or CID), so that
    `attest resume` leaves it alone. Refused once a transaction of it is out."""
    from attest.flow.lifecycle import discard as run

    a = run(ref)
    click.echo(f"#{a.id}: cancelled; nothing of it was sent on chain (`attest resume {a.id}` takes it up again)")


@click.command()
@click.argument("refs", nargs=-1)
@click.option("--all", "settle_all", is_flag=True, help="Every asserted attestation that can settle now.")
def settle(refs: tuple[str, ...], settle_all: bool) -> None:
    """Settle attestations by ledger number, assertion id or record CID: expired ones, or resolved disputes."""
    from attest.errors import LedgerError
    from attest.flow.lifecycle import settle as run

    if not refs and not settle_all:
        raise LedgerError("name what to settle (`attest settle 3`, an assertion id or a CID) or pass --all")
    from attest.flow.batch import settle_batches

    outcomes = run(list(refs), settle_all=settle_all, progress=_progress(False))
    batch_ids = sorted({o.attestation.batch_id for o in outcomes if o.attestation.batch_id is not None})
    batches = settle_batches(None if settle_all else batch_ids, progress=_progress(False))
    if not outcomes and not batches:
        click.echo("Nothing to settle.")
    for o in outcomes:
        if o.attestation.batch_id is None:
            click.echo(f"#{o.attestation.id}: {o.action}{f' - {o.detail}' if o.detail else ''}")
    for b in batches:
        click.echo(f"batch #{b.batch.id}: {b.action}{f' - {b.detail}' if b.detail else ''} ({b.batch.count} records)")


@click.command()
@click.argument("ref")
@click.option("--json", "as_json", is_flag=True)
def status(ref: str, as_json: bool) -> None:
    """One attestation: the ledger's steps and the chain's view."""
    from attest.flow.batch import batch_of
    from attest.flow.lifecycle import status as run
    from attest.flow.lifecycle import status_document
    from attest.ledger import Ledger

    if as_json:
        echo_json(status_document(ref))
        return
    a, chain, standing, error = run(ref)
    with Ledger() as ledger:
        steps = ledger.steps(a.id)
    batch = None if a.batch_id is None else batch_of(a.batch_id)
    click.echo(f"Attestation #{a.id}  {a.status}{f' ({a.outcome})' if a.outcome else ''}  on {a.network}")
    click.echo(f"  query      {short(a.query, 100)}")
    click.echo(f"  record     ipfs://{a.cid}" if a.cid else "  record     not pinned yet")
    if a.assertion_id:
        click.echo(f"  assertion  {a.assertion_id}")
    if batch is not None:
        leaf = f"leaf {a.leaf_index}" if a.leaf_index is not None else "its record is another row's leaf"
        click.echo(f"  batch      #{batch.id} {batch.status}, {leaf} of {batch.count}, root {batch.root}")
        click.echo(f"  manifest   ipfs://{batch.manifest_cid}" if batch.manifest_cid else "  manifest   not pinned yet")
        if batch.assertion_id:
            click.echo(f"  assertion  {batch.assertion_id} (the batch's)")
    if a.status == "orphaned":
        from attest.flow.lifecycle import chain_gone

        click.echo(f"  on chain   {chain_gone(a)}")
    elif chain is not None and not chain.exists:
        click.echo(f"  on chain   not found: {a.network} has no assertion {a.assertion_id} now")
    elif chain is not None:
        state = "settled" if chain.settled else ("disputed" if chain.disputed else "open")
        resolution = f", resolved {'true' if chain.settlement_resolution else 'false'}" if chain.settled else ""
        click.echo(f"  on chain   {state}{resolution}")
    if standing is not None:
        click.echo(f"  registry   {standing.status}{f' - {standing.reason}' if standing.reason else ''}")
    if error:
        click.echo(f"  on chain   not checked: {error}")
    click.echo("  steps")
    for s in steps:
        detail = ", ".join(f"{k}={v}" for k, v in s.detail.items())
        click.echo(f"    {s.at}  {s.step:<16} {detail}")


@click.command("list")
@click.option("--status", "statuses", multiple=True, help="Only these statuses (repeatable).")
@click.option("--network")
@click.option("--since", help="Created at or after this date (YYYY-MM-DD, UTC).")
@click.option("--until", help="Created before this date (YYYY-MM-DD, UTC).")
@click.option("--json", "as_json", is_flag=True)
def list_(statuses: tuple[str, ...], network: str | None, since: str | None, until: str | None, as_json: bool) -> None:
    """Every attestation in the ledger, oldest first."""
    from attest.errors import LedgerError
    from attest.ledger import STATUSES, Ledger

    for s in statuses:
        if s not in STATUSES:
            raise LedgerError(f"unknown status {s!r}; use one of: {', '.join(STATUSES)}")
    for value in (since, until):
        if value is not None:
            try:
                datetime.strptime(value, "%Y-%m-%d")
            except ValueError:
                raise LedgerError(f"{value!r} is not a date; write YYYY-MM-DD") from None
    with Ledger() as ledger:
        rows = ledger.select(statuses=statuses, network=network, since=since, until=until)
    if as_json:
        echo_json(
            [
                {"id": a.id, "status": a.status, "outcome": a.outcome, "network": a.network, "created_at": a.created_at,
                 "record_cid": a.cid, "assertion_id": a.assertion_id, "query": a.query}
                for a in rows
            ]
        )  # fmt: skip
        return
    if not rows:
        click.echo('No attestations yet; make one with `attest ask "..."`.')
        return
    click.echo(
        table(
            ("#", "created (UTC)", "network", "status", "outcome", "assertion", "query"),
            [
                (
                    a.id,
                    a.created_at[:19].replace("T", " "),
                    a.network,
                    a.status,
                    a.outcome or "-",
                    short(a.assertion_id or "-", 14),
                    short(a.query, 50),
                )
                for a in rows
            ],
            numeric=frozenset({0}),
        )
    )


@click.command()
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["jsonl", "csv", "tsv", "dpo", "tt-tsv", "tt-json"]),
    default="jsonl",
    show_default=True,
    help="jsonl, csv, tsv: one row per attestation; dpo, tt-tsv, tt-json: the rankings of `attest rank`.",
)
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False, writable=True, allow_dash=True),
    help="File to write (- or none: stdout).",
)
@click.option("--status", "statuses", multiple=True, help="Only these statuses (repeatable).")
def export(fmt: str, output: str | None, statuses: tuple[str, ...]) -> None:
    """The ledger as an evaluation dataset: query, answer, context, model, outcome, dispute and judge data."""
    from attest.flow.export import write_export

    if statuses and fmt in ("dpo", "tt-tsv", "tt-json"):
        raise click.UsageError("--status filters attestations; the dpo and tt formats export every current ranking")
    if output is None or output == "-":  # `-o -` is stdout, as for most tools
        count = write_export(sys.stdout, fmt, statuses)
        return
    else:
        from pathlib import Path

        count = write_export(Path(output), fmt, statuses)
    click.echo(f"wrote {count} rows to {output}", err=True)
