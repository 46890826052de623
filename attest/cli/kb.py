"""`attest kb`: the knowledge base under ATTEST_HOME (documents, BM25 search, the corpus manifest)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from attest.cli.output import echo_json, short, table

if TYPE_CHECKING:
    from attest.ipfs.cid import CID
    from attest.kb import KnowledgeBase


def _open() -> KnowledgeBase:
    from attest.ipfs.local import LocalStore
    from attest.kb import KnowledgeBase

    return KnowledgeBase(document_store=LocalStore())


def _target(text: str) -> Path | CID:
    """An existing path, else a CID; a string that is neither says so."""
    from attest.errors import IngestError, InvalidCid
    from attest.ipfs.cid import CID

    path = Path(text)
    if path.exists():
        return path
    try:
        return CID.parse(text)
    except InvalidCid:
        raise IngestError(f"{text} is neither a file or folder that exists nor a CID") from None


@click.group()
def kb() -> None:
    """Knowledge base: documents chunked by headings, BM25 search, and the manifest that names a snapshot."""


@kb.command("add")
@click.argument("targets", nargs=-1, required=True)
@click.option("--skip-bad", is_flag=True, help="Skip documents that cannot be ingested (empty, binary), naming each.")
def kb_add(targets: tuple[str, ...], skip_bad: bool) -> None:
    """Add files, folders (their Markdown, text and HTML files, recursively) or IPFS CIDs.

    Everything is added in one transaction: if one document cannot be read, nothing changes (unless --skip-bad).
    A document whose bytes did not change is left as it is; a changed one replaces its chunks.
    """
    from attest.ipfs.cid import CID
    from attest.ipfs.store import ContentStore

    items = [_target(t) for t in targets]
    sources: tuple[ContentStore, ...] = ()
    timeout_s = 30.0
    if any(isinstance(item, CID) for item in items):
        from attest.config import load_config
        from attest.ipfs.local import LocalStore
        from attest.ipfs.remotes import Remotes

        config = load_config().ipfs
        sources = (LocalStore(), *Remotes.from_config(config).readers)
        timeout_s = config.timeout_s
    with _open() as base:
        results = base.add(items, sources, timeout_s=timeout_s, skip_bad=skip_bad)
    for skipped in (r for r in results if r.status == "skipped"):
        click.echo(f"skipped {skipped.source}: {skipped.reason}", err=True)
    results = [r for r in results if r.status != "skipped"]
    changed = [r for r in results if r.status != "unchanged"]
    if changed:
        click.echo(
            table(
                ["STATUS", "CHUNKS", "CID", "SOURCE"],
                [[r.status, r.chunks, r.doc_cid, r.source] for r in changed],
                frozenset({1}),
            )
        )
    counts = {status: sum(r.status == status for r in results) for status in ("added", "replaced", "unchanged")}
    click.echo(
        f"{len(results)} document(s): {counts['added']} added, {counts['replaced']} replaced, "
        f"{counts['unchanged']} unchanged; {sum(r.chunks for r in results)} chunks"
    )


@kb.command("remove")
@click.argument("targets", nargs=-1, required=True)
def kb_remove(targets: tuple[str, ...]) -> None:
    """Remove documents by source (as `attest kb list` shows it), by the absolute path of the file that was added,
    or by document CID."""
    with _open() as base:
        for target in targets:
            for source in base.remove(target):
                click.echo(f"removed {source}")


@kb.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def kb_list(as_json: bool) -> None:
    """Every document: source, chunks, media type, CID and title."""
    with _open() as base:
        documents = base.documents()
        governed = base.governance() is not None
    if as_json:
        echo_json([d.__dict__ for d in documents])
        return
    if not documents:
        how = "`attest kb request` and `attest kb sync`" if governed else "`attest kb add PATH|CID`"
        click.echo(f"The knowledge base is empty; add documents with {how}.")
        return
    rows = [[d.source, d.chunks, d.media_type, d.doc_cid, short(d.title, 48)] for d in documents]
    click.echo(table(["SOURCE", "CHUNKS", "TYPE", "CID", "TITLE"], rows, frozenset({1})))


def _embedder() -> tuple[Any, str]:
    """The configured embedder and its model name, or a KbError saying how to configure one."""
    import os

    from attest.config import load_config
    from attest.errors import KbError
    from attest.kb.embeddings import OpenAIEmbedder

    config = load_config().embeddings
    if config.model is None:
        raise KbError("embeddings are off: set [embeddings] model (and base_url for a local server) in config.toml")
    key = os.environ.get(config.key_env) or None
    embedder = OpenAIEmbedder(config.model, base_url=config.base_url, api_key=key, batch_size=config.batch_size)
    return embedder, config.model


@kb.command("embed")
def kb_embed() -> None:
    """Compute and store vectors for every chunk that has none, with the [embeddings] model of config.toml."""
    from attest.kb.embeddings import embed_missing

    embedder, model = _embedder()
    with _open() as base:
        added = embed_missing(base, embedder, model)
    click.echo(f"embedded {added} chunk(s) with {model}")


@kb.command("search")
@click.argument("query", nargs=-1, required=True)
@click.option("-k", "--top-k", "k", type=click.IntRange(1, 100), default=5, show_default=True, help="How many chunks.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (full chunk texts) instead of a summary.")
@click.option("--hybrid", is_flag=True, help="Fuse BM25 with embedding similarity (needs `attest kb embed`).")
def kb_search(query: tuple[str, ...], k: int, as_json: bool, hybrid: bool) -> None:
    """The chunks that best match QUERY, best first, with their scores and sources."""
    with _open() as base:
        if hybrid:
            from attest.kb.embeddings import hybrid_search

            embedder, model = _embedder()
            hits = hybrid_search(base, embedder, model, " ".join(query), k=k)
        else:
            hits = base.search(" ".join(query), k=k)
    if as_json:
        echo_json([{**hit.__dict__, "heading_path": list(hit.heading_path)} for hit in hits])
        return
    if not hits:
        click.echo("No chunk matches.")
        return
    for rank, hit in enumerate(hits, 1):
        where = " > ".join(hit.heading_path)
        # Three significant digits: BM25 of a word in most chunks is tiny (4e-06), and "0.00" hid it.
        line = f"{rank}. score {hit.score:.3g}  {hit.source}#{hit.chunk_index}"
        click.echo(line + (f"  ({where})" if where else ""))
        click.echo(f"   {short(hit.text, 200)}")


@kb.command("stats")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def kb_stats(as_json: bool) -> None:
    """Sizes and settings of the knowledge base."""
    with _open() as base:
        stats = base.stats()
    if as_json:
        echo_json(stats.as_dict())
        return
    media = ", ".join(f"{kind} {n}" for kind, n in stats.media_types.items()) or "-"
    models = ", ".join(f"{model} {n}" for model, n in stats.embeddings.items()) or "-"
    rows: list[list[object]] = [
        ["path", stats.path],
        ["schema", f"v{stats.schema_version}"],
        ["documents", f"{stats.documents} ({media})"],
        ["chunks", stats.chunks],
        ["document bytes", stats.bytes],
        ["chunk characters", stats.chars],
        ["file bytes", stats.file_bytes],
        ["chunking", f"max {stats.params.max_chars} chars, overlap {stats.params.overlap_chars}"],
        ["embeddings", models],
    ]
    click.echo(table(["", ""], rows).split("\n", 1)[1])


@kb.command("manifest")
@click.option("--json", "as_json", is_flag=True, help="Print the CID and the manifest as JSON.")
def kb_manifest(as_json: bool) -> None:
    """Pin the corpus manifest to the local store and print its CID, the name of this KB snapshot."""
    from attest.ipfs.local import LocalStore

    with _open() as base:
        cid = base.pin_manifest(LocalStore())
        manifest = base.manifest()
    if as_json:
        echo_json({"cid": cid, "manifest": manifest})
    else:
        click.echo(cid)
