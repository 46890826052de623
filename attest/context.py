"""What retrieval hands to a model and to a record: one cited chunk of one document. Pure data."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RetrievedChunk:
    source: str  # where the document came from: a path relative to the ingest root, or ipfs://CID
    doc_cid: str  # the CID `ipfs add` gives the document's bytes
    chunk_index: int  # position of the chunk within its document, from 0
    text: str  # the chunk exactly as cited (its UTF-8 bytes hash to `sha256`)
    sha256: str  # 64 lowercase hex digits: sha256 of `text` encoded as UTF-8
    heading_path: tuple[str, ...] = ()  # Markdown headings above the chunk, outermost first
    score: float = 0.0  # the ranking score that selected it (higher is better)
