"""The knowledge base: documents, their chunks, a BM25 full-text index and embeddings, in one SQLite file.

Each document is stored under its source (a path relative to the folder or file's parent it was added from,
or ipfs://CID) and its CID, the one `ipfs add` gives its bytes. Every ingest runs in one transaction: a
document that cannot be read rolls back the whole call. The corpus manifest (document CIDs, chunking
parameters) is canonical JSON; its CID names the snapshot a record was answered from.
"""

from __future__ import annotations

import array
import json
import os
import sqlite3
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Literal

import rfc8785

from attest.context import RetrievedChunk
from attest.errors import AttestError, IngestError, KbError, StoreError
from attest.ipfs.cid import CID
from attest.ipfs.store import DEFAULT_TIMEOUT_S, ContentStore
from attest.ipfs.unixfs import cid_of
from attest.kb.chunking import CHUNKER, SUFFIXES, ChunkParams, ParsedDocument, parse_document
from attest.kb.schema import MIGRATIONS, SCHEMA_VERSION, index_heading
from attest.kb.search import Search
from attest.paths import attest_home
from attest.storage import Database, utc_now

MANIFEST_SCHEMA = "llm-attest/kb-manifest/v1"
MAX_DOCUMENT_BYTES = 64 * 1024 * 1024

AddOutcome = Literal["added", "unchanged", "replaced", "skipped"]


@dataclass(frozen=True)
class AddResult:
    doc_cid: str
    status: AddOutcome
    chunks: int
    source: str = ""
    reason: str = ""  # why a document was skipped (`skip_bad`)


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


def _hidden(name: str) -> bool:
    return name.startswith(".")


class KnowledgeBase(Search):
    """One SQLite file (default `ATTEST_HOME/kb.sqlite3`). Use as a context manager, or call `close()`."""

    def __init__(
        self, path: Path | None = None, params: ChunkParams | None = None, *, document_store: ContentStore | None = None
    ) -> None:
        self.path = path if path is not None else attest_home() / "kb.sqlite3"
        # Where ingested documents' bytes are kept and pinned, so a record citing them can be checked by CID.
        self.document_store = document_store
        self._stats_version = -1
        self._rows = None
        self._hits = {}
        self._citations = {}
        self._memory = None
        self._memory_version = -1
        self._database = Database(self.path, MIGRATIONS, what="knowledge base", error=KbError)
        self._db = self._database.conn
        try:
            self._db.execute("PRAGMA cache_size = -32768")  # 32 MiB: the FTS index of a large corpus stays in memory
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
        self._database.close()

    def __enter__(self) -> KnowledgeBase:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

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
        """All writes inside commit together or not at all; an inner use is a savepoint of the outer one."""
        try:
            with self._database.transaction():
                yield
        finally:
            self._stats_version = -1  # our own commits do not change data_version
            self._memory_version = -1

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
        skip_bad: bool = False,
    ) -> list[AddResult]:
        """Paths and CIDs together, read and fetched first, then written in one transaction. `skip_bad`: a
        document that cannot be ingested (empty, binary, undecodable) is skipped, with its reason, instead of
        refusing all of them."""
        incoming: list[_Incoming] = []
        for target in targets:
            if isinstance(target, CID):
                incoming.append(self._fetch(target, sources, timeout_s))
            else:
                incoming.extend(self._read_path(target))
        return self._write(incoming, skip_bad=skip_bad)

    def _incoming(self, source: str, data: bytes, media_type: str | None) -> _Incoming:
        if len(data) > MAX_DOCUMENT_BYTES:
            raise IngestError(f"{source} is {len(data)} bytes, over the {MAX_DOCUMENT_BYTES}-byte limit; split it")
        return _Incoming(source, data, media_type, str(cid_of(data, cid_version=1)))

    def _read_path(self, path: Path) -> list[_Incoming]:
        if path.is_file():
            return [self._incoming(path.name, self._read(path), None)]
        if path.exists() and not path.is_dir():
            raise IngestError(f"{path} is not a regular file (a pipe, socket or device); give a file or a folder")
        if not path.is_dir():
            raise IngestError(f"{path} does not exist; give a file, a folder or a CID")
        root = path.resolve()
        found: list[_Incoming] = []
        for folder, dirs, files in os.walk(root):
            dirs[:] = sorted(d for d in dirs if not _hidden(d))
            for name in sorted(files):
                file = Path(folder) / name
                # A pipe or socket named *.md would block the read for ever: only regular files are documents.
                if _hidden(name) or file.suffix.lower() not in SUFFIXES or not file.is_file():
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

    def _write(self, incoming: Sequence[_Incoming], *, skip_bad: bool = False) -> list[AddResult]:
        results: list[AddResult] = []
        with self.transaction():
            for item in incoming:
                try:
                    results.append(self._write_one(item))
                except IngestError as err:  # raised before the document's first write
                    if not skip_bad:
                        more = " (`--skip-bad` adds the others)" if len(incoming) > 1 else ""
                        raise IngestError(f"{err}; nothing was added{more}") from None
                    results.append(AddResult(item.doc_cid, "skipped", 0, item.source, str(err)))
        if self.document_store is not None:
            for item, result in zip(incoming, results, strict=True):
                if result.status != "skipped":
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
            (item.source, item.doc_cid, parsed.title, parsed.media_type, len(item.data), utc_now()),
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
            index_rows.append((cur.lastrowid, index_heading(item.source, chunk.heading_path), chunk.text))
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
        if not rows and PurePosixPath(doc_cid_or_source).is_absolute():
            rows = self._rows_for_path(PurePosixPath(doc_cid_or_source))
            doc_cid_or_source = rows[0][1] if rows else doc_cid_or_source
        if not rows:
            raise KbError(f"{doc_cid_or_source} is neither a source nor a document CID in the KB; see `attest kb list`")
        by_source = [r for r in rows if r[1] == doc_cid_or_source]
        with self.transaction():
            for document_id, _ in by_source or rows:
                self._delete_document(document_id)
        return [source for _, source in by_source or rows]

    def _rows_for_path(self, path: PurePosixPath) -> list[tuple[int, str]]:
        """The document a file path was added as: its source is the path's longest tail that names one (a file
        added alone is named by its name, one of a folder by the folder's name and the path inside it)."""
        for start in range(1, len(path.parts)):
            tail = "/".join(path.parts[start:])
            row = self._db.execute("SELECT id, source FROM documents WHERE source = ?", (tail,)).fetchone()
            if row is not None:
                return [(int(row[0]), str(row[1]))]
        return []

    # -- reading -------------------------------------------------------------------------------------------
    def documents(self) -> list[DocumentInfo]:
        rows = self._db.execute(
            "SELECT d.source, d.doc_cid, d.title, d.media_type, d.bytes, "
            "(SELECT count(*) FROM chunks c WHERE c.document_id = d.id), d.added_at "
            "FROM documents d ORDER BY d.source"
        )
        return [DocumentInfo(*row) for row in rows]

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

    def chunk_at(self, doc_cid: str, index: int) -> RetrievedChunk:
        """A chunk by its document's CID and its position there: how a record cites it."""
        row = self._db.execute("SELECT id FROM chunks WHERE doc_cid = ? AND idx = ?", (doc_cid, index)).fetchone()
        if row is None:
            raise KbError(f"chunk {index} of document {doc_cid} is not in the KB; see `attest kb search QUERY`")
        return self.chunk(int(row[0]))

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
