"""The knowledge base: documents, their chunks, a BM25 full-text index and embeddings, in one SQLite file.

Each document is stored under its source (a path relative to the folder or file's parent it was added from,
or ipfs://CID) and its CID, the one `ipfs add` gives its bytes. Every ingest runs in one transaction: a
document that cannot be read rolls back the whole call. The corpus manifest (document CIDs, chunking
parameters) is canonical JSON; its CID names the snapshot a record was answered from.
"""

from __future__ import annotations

import array
import json
import math
import os
import re
import sqlite3
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any, Literal

import rfc8785

from attest.context import RetrievedChunk
from attest.errors import AttestError, IngestError, KbError, StoreError
from attest.ipfs.cid import CID
from attest.ipfs.store import DEFAULT_TIMEOUT_S, ContentStore
from attest.ipfs.unixfs import cid_of
from attest.kb.chunking import CHUNKER, SUFFIXES, ChunkParams, ParsedDocument, parse_document
from attest.paths import attest_home

MANIFEST_SCHEMA = "llm-attest/kb-manifest/v1"
MAX_DOCUMENT_BYTES = 64 * 1024 * 1024
MAX_QUERY_TERMS = 32
HEADING_WEIGHT = 4.0  # a query word in a document's name or heading path counts this much more than in its body
_BM25 = f"bm25(chunks_fts, {HEADING_WEIGHT}, 1.0)"
_BM25_MAX = 1.2 + 1.0  # FTS5's k1 + 1: the most one term adds to a score, per unit of its idf
# Below these many matching chunks a plain OR query is already fast: FTS5 steps through every chunk an OR
# matches (~1 µs each) and ranks each (~4 µs), so common words, not ranking, are what make a query slow.
_PLAIN_BELOW = 1000
_PROBE_ROWS = 400  # how many chunks the rarest terms may match in the query that finds a first k-th best score

Status = Literal["added", "unchanged", "replaced"]

# FTS5 with porter stemming; `_` is a word character, so a snake_case identifier (max_fee_per_gas) is one term,
# as it is one name in the specs it comes from, rather than four common words.
_TOKENIZER = "porter unicode61 remove_diacritics 2 tokenchars '_'"
_FTS_TABLE = f"""
    CREATE VIRTUAL TABLE chunks_fts USING fts5(heading, body, tokenize = "{_TOKENIZER}");
    INSERT INTO chunks_fts(chunks_fts, rank) VALUES ('rank', 'bm25({HEADING_WEIGHT}, 1.0)');
"""

# A migration is SQL, or a function run on the connection (inside the migration's transaction).
Migration = str | Callable[[sqlite3.Connection], None]
_MIGRATIONS: tuple[tuple[int, str, Migration], ...] = (
    (
        1,
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
    (2, "FTS index keeps snake_case identifiers whole (tokenchars '_')", lambda db: _rebuild_fts(db)),
)
SCHEMA_VERSION = _MIGRATIONS[-1][0]

# Dropped from queries (unless nothing else is left): they match nearly every chunk and only slow ranking.
_STOPWORD_TEXT = """
    a about above after again all also am an and any are as at be because been before being below between both
    but by can could did do does doing down during each few for from further had has have having he her here
    hers how i if in into is it its itself just me more most my no nor not now of off on once only or other
    our ours out over own same she should so some such than that the their theirs them then there these they
    this those through to too under until up very was we were what when where which while who whom why will
    with would you your yours
"""
_STOPWORDS = frozenset(_STOPWORD_TEXT.split())
_TOKEN = re.compile(r"\w+")  # what the FTS tokenizer keeps together (`_` included)
# "the user's wallet" means the user; left in, the "s" would turn the word into the phrase "user s".
_POSSESSIVE = re.compile(r"(?<=\w)['\u2019]s\b", re.IGNORECASE)


@dataclass(frozen=True)
class AddResult:
    doc_cid: str
    status: Status
    chunks: int
    source: str = ""


@dataclass(frozen=True)
class DocumentInfo:
    source: str
    doc_cid: str
    title: str
    media_type: str
    bytes: int
    chunks: int
    added_at: str


@dataclass(frozen=True)
class KbStats:
    path: str
    schema_version: int
    documents: int
    chunks: int
    bytes: int  # of the documents as added
    chars: int  # of all chunk texts
    file_bytes: int  # the database file (its write-ahead log aside)
    params: ChunkParams
    media_types: dict[str, int]
    embeddings: dict[str, int]  # model -> chunks embedded with it

    def as_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "schema_version": self.schema_version,
            "documents": self.documents,
            "chunks": self.chunks,
            "bytes": self.bytes,
            "chars": self.chars,
            "file_bytes": self.file_bytes,
            "chunking": {
                "chunker": CHUNKER,
                "max_chars": self.params.max_chars,
                "overlap_chars": self.params.overlap_chars,
            },
            "media_types": self.media_types,
            "embeddings": self.embeddings,
        }


@dataclass(frozen=True)
class _Incoming:
    source: str
    data: bytes
    media_type: str | None
    doc_cid: str


def query_terms(text: str) -> list[str]:
    """Any user text as FTS5 terms that cannot fail to parse: each word quoted, stop words dropped.

    A word the tokenizer splits (EIP-1559, max_fee_per_gas) becomes a phrase, so its parts must be adjacent.
    Stop words are kept only when nothing else is left.
    """
    terms: list[str] = []
    stop: list[str] = []
    for word in _POSSESSIVE.sub("", text).split():
        tokens = _TOKEN.findall(word.lower())
        if not tokens:
            continue
        term = '"' + " ".join(tokens).replace('"', '""') + '"'
        target = stop if len(tokens) == 1 and tokens[0] in _STOPWORDS else terms
        if term not in target:
            target.append(term)
    return (terms or stop)[:MAX_QUERY_TERMS]


def fts_query(text: str) -> str:
    """The FTS5 MATCH expression for `text`: its terms joined by OR ("" when it has none)."""
    return " OR ".join(query_terms(text))


def _idf(rows: int, hits: int) -> float:
    """FTS5's bm25 idf, clamped the way it clamps it."""
    return max(math.log((rows - hits + 0.5) / (hits + 0.5)), 1e-6)


def split_by_bound(terms: Sequence[str], bounds: dict[str, float], threshold: float) -> tuple[list[str], list[str]]:
    """(required, optional): the optional terms are the weakest ones whose bounds together stay below `threshold`.

    A chunk that holds only optional terms scores less than `threshold`, so when `threshold` is at most the
    k-th best score it cannot be in the top k (MaxScore), and the search only has to rank chunks that hold
    a required term.
    """
    optional: list[str] = []
    total = 0.0
    for term in sorted(terms, key=lambda t: bounds[t]):
        if total + bounds[term] >= threshold:
            break
        optional.append(term)
        total += bounds[term]
    return [t for t in terms if t not in optional], optional


def restricted_match(required: Sequence[str], optional: Sequence[str]) -> str:
    """Chunks with a required term, each scored on every term exactly as the plain OR query scores it.

    `(R OR O) NOT (O NOT R)`: the NOT side removes chunks with only optional terms and adds no score. FTS5 steps
    through every chunk of R OR O to evaluate it, so search uses `required_match`, which steps through R's only,
    unless a term is a phrase of several tokens.
    """
    r = "(" + " OR ".join(required) + ")"
    if not optional:
        return r
    o = "(" + " OR ".join(optional) + ")"
    return f"(({r} OR {o}) NOT ({o} NOT {r}))"


def required_match(required: Sequence[str], optional: Sequence[str]) -> str:
    """The same chunks scored the same way as `restricted_match`, found by stepping through the required terms'
    chunks only: `(R AND O) OR (R NOT O)`.

    FTS5 scores only the phrases of the branch a chunk matches (the other branch's phrases count nothing), so
    each chunk's score is its plain OR score when every term is one token (a phrase of several can lose
    instances); but where `restricted_match` steps through every chunk any term matches, both branches here step
    through R's chunks and only look up O in them.
    """
    r = "(" + " OR ".join(required) + ")"
    if not optional:
        return r
    o = "(" + " OR ".join(optional) + ")"
    return f"(({r} AND {o}) OR ({r} NOT {o}))"


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _hidden(name: str) -> bool:
    return name.startswith(".")


def _run_script(db: sqlite3.Connection, sql: str) -> None:
    """Statements separated by `;` (none holds one inside a literal), each on its own: `executescript` would
    commit the open transaction."""
    for statement in sql.split(";"):
        if statement.strip():
            db.execute(statement)


def _index_heading(source: str, heading_path: Sequence[str]) -> str:
    """The heading column of a chunk: its file name (not for ipfs:// sources, whose name is a CID) and heading path."""
    name = "" if source.startswith("ipfs://") else PurePosixPath(source).name
    return " ".join((name, *heading_path))


def _rebuild_fts(db: sqlite3.Connection) -> None:
    """A new FTS table with the current tokenizer, indexed again from the stored chunks (which it never changes)."""
    db.execute("DROP TABLE IF EXISTS chunks_fts")
    _run_script(db, _FTS_TABLE)
    rows = db.execute(
        "SELECT c.id, d.source, c.heading_path, c.text FROM chunks c JOIN documents d ON d.id = c.document_id"
    )
    db.executemany(
        "INSERT INTO chunks_fts(rowid, heading, body) VALUES (?, ?, ?)",
        ((chunk_id, _index_heading(source, json.loads(path)), text) for chunk_id, source, path, text in rows),
    )


class KnowledgeBase:
    """One SQLite file (default `ATTEST_HOME/kb.sqlite3`). Use as a context manager, or call `close()`."""

    def __init__(
        self, path: Path | None = None, params: ChunkParams | None = None, *, document_store: ContentStore | None = None
    ) -> None:
        self.path = path if path is not None else attest_home() / "kb.sqlite3"
        # Where ingested documents' bytes are kept and pinned, so a record citing them can be checked by CID.
        self.document_store = document_store
        self._depth = 0
        # Corpus statistics for search; `PRAGMA data_version` tells when another connection changed them.
        self._stats_version = -1
        self._rows: int | None = None
        self._hits: dict[str, int] = {}
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, isolation_level=None, timeout=10.0)
        except (OSError, sqlite3.Error) as err:
            raise KbError(f"cannot open the knowledge base at {self.path}: {err}") from None
        try:
            self._db.execute("PRAGMA journal_mode = WAL")
            self._db.execute("PRAGMA synchronous = NORMAL")
            # The write-ahead log is cut back to 8 MiB when next reset, so a big ingest leaves no big file behind.
            self._db.execute("PRAGMA journal_size_limit = 8388608")
            self._db.execute("PRAGMA foreign_keys = ON")
            self._db.execute("PRAGMA cache_size = -32768")  # 32 MiB: the FTS index of a large corpus stays in memory
            self._migrate()
            self.params = self._settle_params(params)
        except sqlite3.DatabaseError as err:
            self._db.close()
            raise KbError(
                f"{self.path} is not a readable knowledge base ({err}); move it away or set ATTEST_HOME"
            ) from None
        except AttestError:
            self._db.close()
            raise

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> KnowledgeBase:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- schema --------------------------------------------------------------------------------------------
    def _migrate(self) -> None:
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS migrations(version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT)"
        )
        current = self._db.execute("SELECT coalesce(max(version), 0) FROM migrations").fetchone()[0]
        if current > SCHEMA_VERSION:
            raise KbError(
                f"{self.path} has knowledge base schema v{current}, newer than this release reads "
                f"(v{SCHEMA_VERSION}); upgrade llm-attest"
            )
        for version, name, sql in _MIGRATIONS:
            if version <= current:
                continue
            with self.transaction():
                if callable(sql):
                    sql(self._db)
                else:
                    _run_script(self._db, sql)
                self._db.execute("INSERT INTO migrations VALUES (?, ?, ?)", (version, name, _now()))

    def _settle_params(self, wanted: ChunkParams | None) -> ChunkParams:
        """The chunking parameters are the KB's: fixed by its first use, since the manifest names them."""
        stored = dict(self._db.execute("SELECT key, value FROM meta WHERE key IN ('max_chars', 'overlap_chars')"))
        current = ChunkParams(int(stored["max_chars"]), int(stored["overlap_chars"])) if stored else None
        if current is not None and (wanted is None or wanted == current):
            return current
        wanted = wanted or ChunkParams()
        if current is not None and self._db.execute("SELECT 1 FROM documents LIMIT 1").fetchone():
            raise KbError(
                f"{self.path} is chunked with max_chars={current.max_chars}, overlap_chars={current.overlap_chars}; "
                "use those, or start a new knowledge base"
            )
        with self.transaction():
            self._db.executemany(
                "INSERT OR REPLACE INTO meta VALUES (?, ?)",
                [("max_chars", str(wanted.max_chars)), ("overlap_chars", str(wanted.overlap_chars))],
            )
        return wanted

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """All writes inside commit together or not at all; nested uses join the outer transaction."""
        if self._depth:
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
            return
        try:
            self._db.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as err:
            raise KbError(f"cannot write to {self.path}: {err}; is another attest process writing to it?") from None
        self._depth = 1
        try:
            yield
        except sqlite3.Error as err:
            self._db.execute("ROLLBACK")
            raise KbError(f"the knowledge base at {self.path} failed: {err}; nothing was changed") from None
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        else:
            self._db.execute("COMMIT")
        finally:
            self._depth = 0
            self._stats_version = -1  # our own commits do not change data_version

    # -- ingest --------------------------------------------------------------------------------------------
    def add_document(self, source: str, data: bytes, media_type: str | None = None) -> AddResult:
        """Add (or replace, or keep) one document given as bytes; `source` names it and guides its media type."""
        return self._write([self._incoming(source, data, media_type)])[0]

    def add_path(self, path: Path) -> list[AddResult]:
        """A file, or every Markdown, text and HTML file under a folder (hidden ones skipped), in one transaction."""
        return self._write(self._read_path(path))

    def add_cid(
        self, cid: CID | str, sources: Sequence[ContentStore], *, timeout_s: float = DEFAULT_TIMEOUT_S
    ) -> AddResult:
        """Fetch a document by CID from the first source that has it (bytes verified) and add it."""
        return self._write([self._fetch(cid, sources, timeout_s)])[0]

    def add(
        self,
        targets: Sequence[Path | CID],
        sources: Sequence[ContentStore] = (),
        *,
        timeout_s: float = DEFAULT_TIMEOUT_S,
    ) -> list[AddResult]:
        """Paths and CIDs together, read and fetched first, then written in one transaction."""
        incoming: list[_Incoming] = []
        for target in targets:
            if isinstance(target, CID):
                incoming.append(self._fetch(target, sources, timeout_s))
            else:
                incoming.extend(self._read_path(target))
        return self._write(incoming)

    def _incoming(self, source: str, data: bytes, media_type: str | None) -> _Incoming:
        if len(data) > MAX_DOCUMENT_BYTES:
            raise IngestError(f"{source} is {len(data)} bytes, over the {MAX_DOCUMENT_BYTES}-byte limit; split it")
        return _Incoming(source, data, media_type, str(cid_of(data, cid_version=1)))

    def _read_path(self, path: Path) -> list[_Incoming]:
        if path.is_file():
            return [self._incoming(path.name, self._read(path), None)]
        if not path.is_dir():
            raise IngestError(f"{path} does not exist; give a file, a folder or a CID")
        root = path.resolve()
        found: list[_Incoming] = []
        for folder, dirs, files in os.walk(root):
            dirs[:] = sorted(d for d in dirs if not _hidden(d))
            for name in sorted(files):
                file = Path(folder) / name
                if _hidden(name) or file.suffix.lower() not in SUFFIXES:
                    continue
                source = str(PurePosixPath(root.name) / file.relative_to(root).as_posix())
                found.append(self._incoming(source, self._read(file), None))
        if not found:
            raise IngestError(f"{path} holds no Markdown, text or HTML files ({', '.join(sorted(SUFFIXES))})")
        return sorted(found, key=lambda item: item.source)

    @staticmethod
    def _read(file: Path) -> bytes:
        try:
            return file.read_bytes()
        except OSError as err:
            raise IngestError(f"cannot read {file}: {err.strerror}") from None

    def _fetch(self, cid: CID | str, sources: Sequence[ContentStore], timeout_s: float) -> _Incoming:
        from attest.ipfs.remotes import read_anywhere

        try:
            parsed = cid if isinstance(cid, CID) else CID.parse(cid)
            data, _where = read_anywhere(parsed, sources, timeout_s=timeout_s)
        except AttestError as err:  # an invalid CID, nothing found, or only tampered bytes
            raise IngestError(f"cannot ingest {cid}: {err}") from None
        return self._incoming(f"ipfs://{parsed}", data, None)

    def _write(self, incoming: Sequence[_Incoming]) -> list[AddResult]:
        results: list[AddResult] = []
        with self.transaction():
            for item in incoming:
                results.append(self._write_one(item))
        if self.document_store is not None:
            for item in incoming:
                self.document_store.pin(self.document_store.put(item.data, cid_version=1))
        return results

    def _write_one(self, item: _Incoming) -> AddResult:
        db = self._db
        row = db.execute("SELECT id, doc_cid FROM documents WHERE source = ?", (item.source,)).fetchone()
        if row is not None and row[1] == item.doc_cid:
            count = db.execute("SELECT count(*) FROM chunks WHERE document_id = ?", (row[0],)).fetchone()[0]
            return AddResult(item.doc_cid, "unchanged", count, item.source)
        parsed = parse_document(item.data, item.source, item.media_type, self.params)
        if row is not None:
            self._delete_document(row[0])
        cur = db.execute(
            "INSERT INTO documents(source, doc_cid, title, media_type, bytes, added_at) VALUES (?, ?, ?, ?, ?, ?)",
            (item.source, item.doc_cid, parsed.title, parsed.media_type, len(item.data), _now()),
        )
        self._insert_chunks(cur.lastrowid, item, parsed)
        return AddResult(item.doc_cid, "added" if row is None else "replaced", len(parsed.chunks), item.source)

    def _insert_chunks(self, document_id: int | None, item: _Incoming, parsed: ParsedDocument) -> None:
        index_rows = []
        for chunk in parsed.chunks:
            cur = self._db.execute(
                "INSERT INTO chunks(document_id, doc_cid, idx, text, sha256, heading_path, start_char, end_char) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    document_id,
                    item.doc_cid,
                    chunk.index,
                    chunk.text,
                    chunk.sha256,
                    json.dumps(chunk.heading_path, ensure_ascii=False),
                    chunk.start,
                    chunk.end,
                ),
            )
            index_rows.append((cur.lastrowid, _index_heading(item.source, chunk.heading_path), chunk.text))
        self._db.executemany("INSERT INTO chunks_fts(rowid, heading, body) VALUES (?, ?, ?)", index_rows)

    def _delete_document(self, document_id: int) -> None:
        db = self._db
        for table, key in (("chunks_fts", "rowid"), ("embeddings", "chunk_id")):
            sql = f"DELETE FROM {table} WHERE {key} IN (SELECT id FROM chunks WHERE document_id = ?)"
            db.execute(sql, (document_id,))
        db.execute("DELETE FROM chunks WHERE document_id = ?", (document_id,))
        db.execute("DELETE FROM documents WHERE id = ?", (document_id,))

    def remove(self, doc_cid_or_source: str) -> list[str]:
        """Remove the document with this source, or every document with this CID; returns their sources."""
        rows = self._db.execute(
            "SELECT id, source FROM documents WHERE source = ? OR doc_cid = ? ORDER BY source",
            (doc_cid_or_source, doc_cid_or_source),
        ).fetchall()
        if not rows:
            raise KbError(f"{doc_cid_or_source} is neither a source nor a document CID in the KB; see `attest kb list`")
        by_source = [r for r in rows if r[1] == doc_cid_or_source]
        with self.transaction():
            for document_id, _ in by_source or rows:
                self._delete_document(document_id)
        return [source for _, source in by_source or rows]

    # -- reading -------------------------------------------------------------------------------------------
    def documents(self) -> list[DocumentInfo]:
        rows = self._db.execute(
            "SELECT d.source, d.doc_cid, d.title, d.media_type, d.bytes, "
            "(SELECT count(*) FROM chunks c WHERE c.document_id = d.id), d.added_at "
            "FROM documents d ORDER BY d.source"
        )
        return [DocumentInfo(*row) for row in rows]

    def search(self, query: str, k: int = 5) -> list[RetrievedChunk]:
        """The `k` chunks that best match `query` (BM25; a match in a heading or file name weighs more).

        Exactly the top k of the plain OR query over the query's words, found without stepping through the
        chunks that hold only common words when those cannot reach the top k. The same chunk of the same bytes
        under two sources is returned once.
        """
        if k < 1:
            raise KbError(f"k must be at least 1 (got {k})")
        terms = query_terms(query)
        limit = k
        while True:
            match, rows = self._plan(terms, limit)
            if not match:
                return []
            found: list[RetrievedChunk] = []
            seen: set[tuple[str, int]] = set()
            for source, doc_cid, idx, text, sha256, path, score in rows:
                if (doc_cid, idx) not in seen and len(found) < k:
                    seen.add((doc_cid, idx))
                    chunk = RetrievedChunk(source, doc_cid, idx, text, sha256, tuple(json.loads(path)), float(score))
                    found.append(chunk)
            if len(found) == k or len(rows) < limit:
                return found
            limit = 2 * limit + 8  # duplicates took places: look further

    def _top(self, match: str, limit: int) -> list[tuple[Any, ...]]:
        return self._db.execute(
            "SELECT d.source, c.doc_cid, c.idx, c.text, c.sha256, c.heading_path, hits.score FROM "
            f"(SELECT rowid, -{_BM25} AS score FROM chunks_fts WHERE chunks_fts MATCH ? "
            "ORDER BY score DESC LIMIT ?) AS hits "
            "JOIN chunks c ON c.id = hits.rowid JOIN documents d ON d.id = c.document_id "
            "ORDER BY hits.score DESC, d.source, c.idx",
            (match, limit),
        ).fetchall()

    def _match(self, terms: list[str], limit: int) -> str:
        """The MATCH expression whose top `limit` are the top `limit` of `terms` joined by OR."""
        return self._plan(terms, limit)[0]

    def _plan(self, terms: list[str], limit: int) -> tuple[str, list[tuple[Any, ...]]]:
        """The MATCH expression whose top `limit` are the top `limit` of `terms` joined by OR, and those rows.

        MaxScore over FTS5: the chunks holding one of the rarest terms are ranked first, on every term, and
        the limit-th of their exact scores is a lower bound of the limit-th best score overall. Every term whose
        bound, added to those of the terms weaker than it, stays below that score is optional: a chunk holding
        only optional terms cannot reach the top. When all required terms were among the rarest, the first
        ranking is already the answer; otherwise the chunks holding the other required terms are ranked too.
        """
        rows, hits = self._corpus_counts(terms)
        terms = [t for t in terms if hits[t]]
        everything = " OR ".join(terms)
        if not terms or sum(hits[t] for t in terms) < _PLAIN_BELOW:
            return everything, self._top(everything, limit) if terms else []
        # A phrase of several tokens (EIP-1559, s-value) is not always scored as in the plain OR query when it sits
        # in `required_match`'s branches (SQLite 3.40's FTS5 loses some of its instances there; the tests pin
        # this); `restricted_match` scores phrases exactly, at the cost of stepping through every term's chunks.
        combine = restricted_match if any(" " in t for t in terms) else required_match
        probe: list[str] = []
        probed = 0
        for term in sorted(terms, key=lambda t: hits[t]):
            if probe and probed + hits[term] > _PROBE_ROWS:
                break
            probe.append(term)
            probed += hits[term]
        first = combine(probe, [t for t in terms if t not in probe])
        top = self._top(first, limit)
        if len(top) < limit:  # fewer chunks hold a rare term than are asked for: no bound to prune with
            return everything, self._top(everything, limit)
        bounds = {t: _BM25_MAX * _idf(rows, hits[t]) for t in terms}
        required, _optional = split_by_bound(terms, bounds, top[-1][-1])
        rest = [t for t in required if t not in probe]
        if not rest:
            return first, top
        # Chunks holding a probe term are ranked already: the second ranking steps through the other required
        # terms' chunks only, and the two rankings merge (a chunk in both has the same score in each).
        match = combine(rest, [t for t in terms if t not in rest])
        merged = {(row[0], row[2]): row for row in [*top, *self._top(match, limit)]}
        return match, sorted(merged.values(), key=lambda row: (-row[-1], row[0], row[2]))[:limit]

    def _corpus_counts(self, terms: list[str]) -> tuple[int, dict[str, int]]:
        """How many chunks there are and how many hold each term; cached until the KB changes."""
        version = self._db.execute("PRAGMA data_version").fetchone()[0]
        if version != self._stats_version or len(self._hits) > 100_000:
            self._stats_version = version
            self._hits.clear()
            self._rows = None
        if self._rows is None:
            self._rows = int(self._db.execute("SELECT count(*) FROM chunks").fetchone()[0])
        for term in terms:
            if term not in self._hits:
                query = "SELECT count(*) FROM chunks_fts WHERE chunks_fts MATCH ?"
                self._hits[term] = int(self._db.execute(query, (term,)).fetchone()[0])
        return self._rows, self._hits

    def chunk(self, chunk_id: int) -> RetrievedChunk:
        row = self._db.execute(
            "SELECT d.source, c.doc_cid, c.idx, c.text, c.sha256, c.heading_path FROM chunks c "
            "JOIN documents d ON d.id = c.document_id WHERE c.id = ?",
            (chunk_id,),
        ).fetchone()
        if row is None:
            raise KbError(f"chunk {chunk_id} is not in the KB (its document was removed or replaced)")
        source, doc_cid, idx, text, sha256, path = row
        return RetrievedChunk(source, doc_cid, idx, text, sha256, tuple(json.loads(path)))

    def stats(self) -> KbStats:
        db = self._db
        documents, size = db.execute("SELECT count(*), coalesce(sum(bytes), 0) FROM documents").fetchone()
        chunks, chars = db.execute("SELECT count(*), coalesce(sum(length(text)), 0) FROM chunks").fetchone()
        media = dict(db.execute("SELECT media_type, count(*) FROM documents GROUP BY media_type ORDER BY 1"))
        models = dict(db.execute("SELECT model, count(*) FROM embeddings GROUP BY model ORDER BY 1"))
        file_bytes = self.path.stat().st_size
        return KbStats(
            path=str(self.path),
            schema_version=SCHEMA_VERSION,
            documents=documents,
            chunks=chunks,
            bytes=size,
            chars=chars,
            file_bytes=file_bytes,
            params=self.params,
            media_types=media,
            embeddings=models,
        )

    # -- embeddings (for hybrid search) --------------------------------------------------------------------
    def chunks_without_embedding(self, model: str) -> list[tuple[int, str]]:
        rows = self._db.execute(
            "SELECT c.id, c.text FROM chunks c LEFT JOIN embeddings e ON e.chunk_id = c.id AND e.model = ? "
            "WHERE e.chunk_id IS NULL ORDER BY c.id",
            (model,),
        )
        return [(chunk_id, text) for chunk_id, text in rows]

    def store_embeddings(self, model: str, rows: Sequence[tuple[int, Sequence[float]]]) -> None:
        """Store one vector per chunk (float32); a chunk keeps one embedding, so another model's is replaced."""
        if not rows:
            return
        dims = {len(vector) for _, vector in rows}
        known = self._db.execute("SELECT dim FROM embeddings WHERE model = ? LIMIT 1", (model,)).fetchone()
        if len(dims) != 1 or 0 in dims or (known is not None and known[0] not in dims):
            have = f" (stored ones have {known[0]})" if known else ""
            raise KbError(f"embeddings of {model} must all have one non-zero dimension; got {sorted(dims)}{have}")
        dim = dims.pop()
        packed = [(chunk_id, model, dim, _pack(vector)) for chunk_id, vector in rows]
        with self.transaction():
            try:
                self._db.executemany("INSERT OR REPLACE INTO embeddings VALUES (?, ?, ?, ?)", packed)
            except sqlite3.IntegrityError:
                raise KbError("some embeddings name chunks that are not in the KB; nothing was stored") from None

    def embeddings(self, model: str) -> list[tuple[int, list[float]]]:
        rows = self._db.execute("SELECT chunk_id, vector FROM embeddings WHERE model = ? ORDER BY chunk_id", (model,))
        return [(chunk_id, _unpack(blob)) for chunk_id, blob in rows]

    # -- the corpus manifest -------------------------------------------------------------------------------
    def manifest(self) -> dict[str, Any]:
        """What names this snapshot: the chunker and its parameters, and every document with its CID."""
        rows = self._db.execute(
            "SELECT d.source, d.doc_cid, d.media_type, (SELECT count(*) FROM chunks c WHERE c.document_id = d.id) "
            "FROM documents d ORDER BY d.source"
        )
        return {
            "schema": MANIFEST_SCHEMA,
            "chunking": {
                "chunker": CHUNKER,
                "max_chars": self.params.max_chars,
                "overlap_chars": self.params.overlap_chars,
            },
            "documents": [
                {"source": source, "doc_cid": doc_cid, "media_type": media_type, "chunks": chunks}
                for source, doc_cid, media_type, chunks in rows
            ],
        }

    def manifest_bytes(self) -> bytes:
        return rfc8785.dumps(self.manifest())

    def manifest_cid(self) -> str:
        """The snapshot's CID without storing anything (the CID `pin_manifest` would return)."""
        return str(cid_of(self.manifest_bytes(), cid_version=1))

    def pin_manifest(self, store: ContentStore) -> str:
        """Store and pin the manifest; returns its CID, the name of this snapshot."""
        data = self.manifest_bytes()
        cid = store.put(data, cid_version=1)
        if cid != cid_of(data, cid_version=1):
            raise StoreError(f"{store.name} computed {cid} for the corpus manifest; it chunks differently")
        result = store.pin(cid)
        if not result.ok:
            raise StoreError(f"{store.name} could not pin the corpus manifest {cid}: {result.detail}")
        return str(cid)


def _pack(vector: Sequence[float]) -> bytes:
    packed = array.array("f", vector)
    if sys.byteorder != "little":
        packed.byteswap()
    return packed.tobytes()


def _unpack(blob: bytes) -> list[float]:
    values = array.array("f")
    values.frombytes(blob)
    if sys.byteorder != "little":
        values.byteswap()
    return values.tolist()
