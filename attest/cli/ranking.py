"""`attest ask --compare`'s display and `attest rank PAIR`: two answers side by side, and the signed choice."""

from __future__ import annotations

import sys
import textwrap
from typing import TYPE_CHECKING

import click

from attest.cli.output import echo_json

if TYPE_CHECKING:
    from attest.flow.anchor import AnchorResult
    from attest.flow.compare import CompareResult
    from attest.flow.pairs import Pair

COLUMN = 58


def show_compare(result: CompareResult, as_json: bool) -> None:
    sides = [result.first, result.second]
    if as_json:
        echo_json(
            {
                "pair": result.pair_id,
                "answers": [
                    {
                        "n": n,
                        "id": r.attestation.id,
                        "model": r.model,
                        "answer": r.answer,
                        "record_cid": r.attestation.cid,
                        "digest": r.attestation.digest,
                        "assertion_id": r.attestation.assertion_id,
                        "not_asserted": r.not_asserted,
                    }
                    for n, r in enumerate(sides, 1)
                ],
            }
        )
        return
    click.echo("")
    _side_by_side(
        [f"[{n}] #{r.attestation.id} {r.model}" for n, r in enumerate(sides, 1)],
        [r.answer for r in sides],
        [f"ipfs://{r.attestation.cid}" for r in sides],
    )
    click.echo("")
    click.echo(f"Pair #{result.pair_id}: rank it with `attest rank {result.pair_id}`")


def _side_by_side(titles: list[str], texts: list[str], footers: list[str]) -> None:
    left, right = ([title[:COLUMN], *textwrap.wrap(text, COLUMN)] for title, text in zip(titles, texts, strict=True))
    for i in range(max(len(left), len(right))):
        one = left[i] if i < len(left) else ""
        two = right[i] if i < len(right) else ""
        if i == 0:  # the titles, bold (styled after padding: escape codes have no width)
            one, two = click.style(one, bold=True) + " " * (COLUMN - len(one)), click.style(two, bold=True)
        click.echo(f"{one:<{COLUMN}} │ {two}".rstrip())
    click.echo("")
    for n, footer in enumerate(footers, 1):  # in full, below: a CID is wider than a column
        click.echo(f"[{n}] {footer}")


def _show_pair(pair: Pair) -> None:
    from attest.record.codec import decode_record

    sides = (pair.first, pair.second)
    records = [decode_record(a.record) for a in sides]
    click.echo(click.style(f"Pair #{pair.id}: {records[0].query}", bold=True))
    click.echo("")
    _side_by_side(
        [
            f"[{n}] #{a.id} {r.model.provider}:{r.model.requested_model}"
            for n, (a, r) in enumerate(zip(sides, records, strict=True), 1)
        ],
        [r.answer for r in records],
        [f"ipfs://{a.cid}" for a in sides],
    )
    click.echo("")


def _pick() -> str:
    """One key press on a terminal (any other key is ignored); a line when stdin is a pipe or a file, so a
    script or a test can drive it."""
    if not sys.stdin.isatty():
        return str(click.prompt("Prefer 1, 2 or t (tie)", type=click.Choice(["1", "2", "t"]), show_choices=False))
    click.echo("Prefer 1, 2 or t (tie): ", nl=False)
    while (key := click.getchar().lower()) not in ("1", "2", "t"):
        pass
    click.echo(key)
    return key


@click.command()
@click.argument("pair")
@click.option("--prefer", type=click.Choice(["1", "2", "tie"]), help="The preferred answer (asked when not given).")
@click.option("--reason", help="Why, recorded in the signed preference.")
@click.option("--change", is_flag=True, help="Supersede your earlier ranking of this pair with a new record.")
@click.option("--account", help="The account you expect to rank with; refused unless it is the configured one.")
@click.option(
    "--no-anchor", is_flag=True, help="Do not anchor it on chain now (`attest rank anchor` anchors many in one tx)."
)
@click.option("--json", "as_json", is_flag=True, help="One JSON object on stdout.")
def rank(
    pair: str, prefer: str | None, reason: str | None, change: bool, account: str | None, no_anchor: bool, as_json: bool
) -> None:
    """Rank the two answers of PAIR (from `attest ask --compare`): a signed, pinned preference record, anchored on
    chain by the registry's Anchored event (sent by the ranking account) unless --no-anchor. Without --prefer both
    answers are shown and a key picks 1, 2 or t (tie).

    `attest rank anchor` anchors every preference of the ranking account not anchored yet in one transaction
    (and finishes an anchor a crash left open)."""
    from attest.flow.rank import load_pair
    from attest.flow.rank import rank as run

    if pair == "anchor":
        if prefer or reason or change or account or no_anchor:
            raise click.UsageError("`attest rank anchor` takes only --json")
        _anchor(as_json)
        return
    if prefer is None:
        _show_pair(load_pair(pair))
        key = _pick()
        prefer = "tie" if key == "t" else key
        if reason is None:
            reason = click.prompt("Reason (Enter for none)", default="", show_default=False)
    result = run(pair, prefer, reason=reason, account=account, change=change, anchor=not no_anchor)
    record = result.record
    anchored = result.anchor
    if as_json:
        echo_json(
            {
                "pair": result.pair.id,
                "preference_cid": result.cid,
                "choice": record.choice,
                "ranker": record.ranker,
                "reason": record.reason,
                "supersedes": record.supersedes,
                "answers": [ref.model_dump() for ref in record.pair],
                "anchor": None if anchored is None else _anchor_json(anchored),
                "anchor_error": result.anchor_error,
            }
        )
    else:
        chosen = "a tie" if record.choice == "tie" else f"answer {record.choice}"
        click.echo(f"Pair #{result.pair.id}: {chosen}, signed by {record.ranker}")
        click.echo(f"  preference  ipfs://{result.cid}")
        if record.supersedes:
            click.echo(f"  supersedes  ipfs://{record.supersedes}")
        if anchored is not None:
            a = anchored.anchor
            click.echo(f"  anchored    tx {a.tx_hash}, block {a.block_number} (root {a.root})")
            click.echo(f"  receipt     ipfs://{anchored.receipts[anchored.cids.index(result.cid)]}")
        elif no_anchor:
            click.echo("  anchor      not yet: `attest rank anchor` anchors every pending preference in one tx")
    if result.anchor_error:
        click.echo(
            f"error: the preference is signed and pinned, but not anchored: {result.anchor_error}; "
            "`attest rank anchor` retries",
            err=True,
        )
        raise SystemExit(1)


def _anchor_json(result: AnchorResult) -> dict[str, object]:
    a = result.anchor
    return {
        "id": a.id, "root": a.root, "tx": a.tx_hash, "block": a.block_number, "block_time": a.block_time,
        "network": a.network, "registry": a.registry, "ranker": a.ranker,
        "preferences": [{"cid": c, "receipt": r} for c, r in zip(result.cids, result.receipts, strict=True)],
    }  # fmt: skip


def _anchor(as_json: bool) -> None:
    from attest.flow.anchor import anchor_pending

    results = anchor_pending()
    if as_json:
        echo_json({"anchors": [_anchor_json(r) for r in results]})
        return
    if not results:
        click.echo("Nothing to anchor: every preference of the ranking account is anchored.")
    for r in results:
        a = r.anchor
        click.echo(f"Anchor #{a.id}: {a.count} preference(s) in one tx {a.tx_hash}, block {a.block_number}")
        click.echo(f"  root     {a.root} (by {a.ranker}, {a.network})")
        for cid, receipt in zip(r.cids, r.receipts, strict=True):
            click.echo(f"  ipfs://{cid}  receipt ipfs://{receipt}")
