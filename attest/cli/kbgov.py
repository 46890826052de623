"""`attest kb request` and `attest kb sync`: a contributor's signed ingest request, and the governed knowledge
base following its KnowledgeRegistry.

A request travels as a small JSON file (stdout by default): the contributor and the KB's operator are usually
different people on different machines, a file can be mailed, attached to a proposal or pinned, and the
signature, not the channel, is what makes it trustworthy."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import click

from attest.cli.output import echo_json, table


@click.command("request")
@click.argument("cid")
@click.option("--account", help="The contributor's account (alias, dev:N); the registry must approve it for CID.")
@click.option("--network", help="The network of the KnowledgeRegistry (default: [defaults] network).")
@click.option("--registry", help="The KnowledgeRegistry (default: [networks.N] kb_registry, else the devnet's).")
@click.option("--expires", default="1h", show_default=True, help="How long the request stays valid (30m, 2h, 1d).")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), help="Write it here, not stdout.")
def kb_request(
    cid: str, account: str | None, network: str | None, registry: str | None, expires: str, output: Path | None
) -> None:
    """Sign an EIP-712 request to ingest CID into the knowledge base the registry governs (nonce and expiry)."""
    from attest.cli.accounts import resolve_account
    from attest.cli.devnet import parse_duration
    from attest.config import load_config
    from attest.connect import connect
    from attest.errors import IngestRequestError
    from attest.flow.kbsync import knowledge_registry
    from attest.kb.request import sign_request

    config = load_config()
    net = config.resolve_network(network or config.defaults.network)
    seconds = parse_duration(expires)
    if seconds <= 0:
        raise IngestRequestError("--expires must be positive, such as 30m or 1h")
    ctx = connect(net.name, config=config)
    kr = knowledge_registry(ctx, registry)
    loaded = resolve_account(account, net.name, config.defaults.account)
    request = sign_request(
        loaded.account, chain_id=ctx.chain_id, registry=kr.address, cid=cid, expiry=int(time.time()) + seconds
    )
    if output is None:
        click.echo(request.dumps(), nl=False)
        return
    try:
        output.write_text(request.dumps())
    except OSError as err:
        raise IngestRequestError(f"cannot write {output}: {err.strerror}") from None
    click.echo(f"signed: ingest {request.cid} by {request.contributor}, until {request.expiry}; wrote {output}")


@click.command("sync")
@click.argument("requests", nargs=-1, type=click.Path(dir_okay=False, allow_dash=True))
@click.option("--network", help="The network of the KnowledgeRegistry (default: [defaults] network).")
@click.option("--registry", help="The KnowledgeRegistry (default: [networks.N] kb_registry, else the devnet's).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def kb_sync(requests: tuple[str, ...], network: str | None, registry: str | None, as_json: bool) -> None:
    """Ingest the documents of the signed REQUESTS (files, - for stdin) the registry approves, and remove those
    whose approval was revoked: one transaction, nothing changed on any refusal."""
    from attest.config import load_config
    from attest.connect import connect
    from attest.errors import IngestRequestError
    from attest.flow.kbsync import knowledge_registry, sync_knowledge_base
    from attest.ipfs.local import LocalStore
    from attest.ipfs.remotes import Remotes
    from attest.kb import KnowledgeBase
    from attest.kb.request import parse_request

    parsed = []
    for name in requests:
        try:
            data = sys.stdin.buffer.read() if name == "-" else Path(name).read_bytes()
        except OSError as err:
            raise IngestRequestError(f"cannot read the request {name}: {err.strerror}") from None
        parsed.append(parse_request(data, f"the request {name}"))
    config = load_config()
    net = config.resolve_network(network or config.defaults.network)
    ctx = connect(net.name, config=config)
    kr = knowledge_registry(ctx, registry)
    readers = (LocalStore(), *Remotes.from_config(config.ipfs).readers)
    with KnowledgeBase(document_store=LocalStore()) as kb:
        result = sync_knowledge_base(
            kb, kr, ctx.chain_id, parsed, readers, now=int(time.time()), timeout_s=config.ipfs.timeout_s
        )
        manifest = kb.manifest_cid()
    gov = result.governance
    if as_json:
        echo_json(
            {
                "governance": gov.as_dict(),
                "ingested": [{"cid": r.doc_cid, "status": r.status, "chunks": r.chunks} for r in result.results],
                "removed": list(result.removed),
                "manifest": manifest,
            }
        )
        return
    rows = [[r.status, r.chunks, r.doc_cid] for r in result.results]
    rows += [["removed", "-", cid] for cid in result.removed]
    if rows:
        click.echo(table(["STATUS", "CHUNKS", "CID"], rows, frozenset({1})))
    click.echo(
        f"synced with {gov.registry} on chain {gov.chain_id} at block {gov.block}: {len(result.results)} "
        f"ingested, {len(result.removed)} removed; corpus manifest {manifest}"
    )
