"""The knowledge base: documents chunked by headings, ranked by BM25, named by a pinned corpus manifest."""

from attest.kb.chunking import (
    CHUNKER,
    Chunk,
    ChunkParams,
    ParsedDocument,
    chunk_html,
    chunk_markdown,
    chunk_text,
    html_to_text,
    parse_document,
)
from attest.kb.governed import MANIFEST_SCHEMA, Governance
from attest.kb.schema import SCHEMA_VERSION
from attest.kb.search import fts_query, query_terms
from attest.kb.store import AddResult, DocumentInfo, KbStats, KnowledgeBase

__all__ = [
    "CHUNKER",
    "MANIFEST_SCHEMA",
    "SCHEMA_VERSION",
    "AddResult",
    "Chunk",
    "ChunkParams",
    "DocumentInfo",
    "Governance",
    "KbStats",
    "KnowledgeBase",
    "ParsedDocument",
    "chunk_html",
    "chunk_markdown",
    "chunk_text",
    "fts_query",
    "html_to_text",
    "parse_document",
    "query_terms",
]
