"""The knowledge base's tables, as named migrations (attest/storage applies and records them), and how a
chunk is indexed for full-text search."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from pathlib import PurePosixPath

from attest.storage import Migration, run_script

HEADING_WEIGHT = 4.0  # a query word in a document's name or heading path counts this much more than in its body

# FTS5 with porter stemming; `_` is a word character, so a snake_case identifier (max_fee_per_gas) is one term,
# as it is one name in the specs it comes from, rather than four common words.
TOKENIZER = "porter unicode61 remove_diacritics 2 tokenchars '_'"
_FTS_TABLE = f"""
    CREATE VIRTUAL TABLE chunks_fts USING fts5(heading, body, tokenize = "{TOKENIZER}");
    INSERT INTO chunks_fts(chunks_fts, rank) VALUES ('rank', 'bm25({HEADING_WEIGHT}, 1.0)');
"""

# A migration is SQL, or a function run on the connection (inside the migration's transaction).


def index_heading(source: str, heading_path: Sequence[str]) -> str:
    """The heading column of a chunk: its file name (not for ipfs:// sources, whose name is a CID) and heading path."""
    name = "" if source.startswith("ipfs://") else PurePosixPath(source).name
    return " ".join((name, *heading_path))


def _rebuild_fts(db: sqlite3.Connection) -> None:
    """A new FTS table with the current tokenizer, indexed again from the stored chunks (which it never changes)."""
    db.execute("DROP TABLE IF EXISTS chunks_fts")
    run_script(db, _FTS_TABLE)
    rows = db.execute(
        "SELECT c.id, d.source, c.heading_path, c.text FROM chunks c JOIN documents d ON d.id = c.document_id"
    )
    db.executemany(
        "INSERT INTO chunks_fts(rowid, heading, body) VALUES (?, ?, ?)",
        ((chunk_id, index_heading(source, json.loads(path)), text) for chunk_id, source, path, text in rows),
    )


MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        "documents, chunks, FTS5 index, embeddings",
        f"""
        CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
        CREATE TABLE documents(
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            source TEXT NOT NULL UNIQUE,
            doc_cid TEXT NOT NULL,
            title TEXT NOT NULL,
            media_type TEXT NOT NULL,
            bytes INTEGER NOT NULL,
            added_at TEXT NOT NULL
        );
        CREATE INDEX documents_by_cid ON documents(doc_cid);
        CREATE TABLE chunks(
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            document_id INTEGER NOT NULL REFERENCES documents(id) ON DELETE CASCADE,
            doc_cid TEXT NOT NULL,
            idx INTEGER NOT NULL,
            text TEXT NOT NULL,
            sha256 TEXT NOT NULL,
            heading_path TEXT NOT NULL,
            start_char INTEGER NOT NULL,
            end_char INTEGER NOT NULL,
            UNIQUE(document_id, idx)
        );
        CREATE VIRTUAL TABLE chunks_fts USING fts5(
            heading, body, tokenize = 'porter unicode61 remove_diacritics 2'
        );
        INSERT INTO chunks_fts(chunks_fts, rank) VALUES ('rank', 'bm25({HEADING_WEIGHT}, 1.0)');
        CREATE TABLE embeddings(
            chunk_id INTEGER PRIMARY KEY REFERENCES chunks(id) ON DELETE CASCADE,
            model TEXT NOT NULL,
            dim INTEGER NOT NULL,
            vector BLOB NOT NULL
        );
        CREATE INDEX embeddings_by_model ON embeddings(model);
        """,
    ),
    Migration("FTS index keeps snake_case identifiers whole (tokenchars '_')", _rebuild_fts),
    Migration(
        "governed documents (the signed request each entered by) and the request nonces used",
        """
        CREATE TABLE governed_documents(
            doc_cid TEXT PRIMARY KEY,
            contributor TEXT NOT NULL,
            request TEXT NOT NULL,
            synced_at TEXT NOT NULL
        );
        CREATE TABLE used_nonces(
            contributor TEXT NOT NULL,
            nonce TEXT NOT NULL,
            doc_cid TEXT NOT NULL,
            used_at TEXT NOT NULL,
            PRIMARY KEY(contributor, nonce)
        );
        """,
    ),
)
SCHEMA_VERSION = len(MIGRATIONS)
