"""The FTS5 index held in memory: every term's BM25 contribution to every chunk, computed once from the index's own
postings with FTS5's bm25 arithmetic, so a process that searches many times ranks without SQL.

A query through FTS5 costs about a millisecond even when its answer is known from the rarest term: SQLite steps
through the postings of every term in the OR query and ranks each chunk in C, behind a statement, a cursor and a
virtual table. Held in memory, a term's chunks and contributions are two contiguous arrays; a query adds its terms'
arrays into one score per chunk (numpy's bincount, in C) and partitions out the top k. The scores are bit for bit
the ones FTS5's `bm25()` gives the plain OR query (same formula, same operations in the same order), so `ranked()`
returns the same chunks with or without it.
"""

from __future__ import annotations

import math
import sqlite3
from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt

from attest.kb.schema import HEADING_WEIGHT, TOKENIZER

_K1 = 1.2  # FTS5's bm25 constants
_B = 0.75
_MAX_PHRASES = 10_000  # phrases (EIP-1559) kept; beyond, the cache starts again


class Postings(NamedTuple):
    """A term's chunks (ascending ids) and its contribution to each, as contiguous arrays."""

    ids: npt.NDArray[np.int64]
    impacts: npt.NDArray[np.float64]

    @classmethod
    def of(cls, impacts: dict[int, float]) -> Postings:
        ids = np.fromiter(impacts, dtype=np.int64, count=len(impacts))
        values = np.fromiter(impacts.values(), dtype=np.float64, count=len(impacts))
        order = np.argsort(ids, kind="stable")
        return cls(ids[order], values[order])


_NONE = Postings.of({})
Row = tuple[Any, ...]  # (source, doc_cid, idx, text, sha256, heading_path JSON, score): what `Search._top` returns


def idf(rows: int, hits: int) -> float:
    """FTS5's bm25 idf, clamped the way it clamps it."""
    value = math.log((rows - hits + 0.5) / (hits + 0.5))
    return value if value > 0.0 else 1e-6


class MemoryIndex:
    """The index of one KB connection at one moment; `Search` drops it when the KB changes."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db
        self._rows = int(db.execute("SELECT count(*) FROM chunks_fts").fetchone()[0])
        self._size = 1  # one more than the largest chunk id: the length of a query's score buffer
        self._terms: dict[str, Postings] = {}
        self._tokens: dict[str, tuple[str, ...]] = {}  # query term ('"eip 1559"') -> FTS tokens ("eip", "1559")
        self._phrases: dict[str, Postings] = {}
        self._chunks: dict[int, Row] = {}
        self._load()

    def _load(self) -> None:
        """Every (term, chunk) frequency from the index's instance list, weighted per column as `bm25()` weighs it;
        a chunk's length is its number of instances, the token count FTS5 keeps for it. The contributions are
        computed elementwise in float64 with the operations of `bm25()` in its order, so each is FTS5's to the bit."""
        db = self._db
        db.execute(
            "CREATE VIRTUAL TABLE IF NOT EXISTS temp.attest_kb_instances USING fts5vocab(main, chunks_fts, instance)"
        )
        frequencies: dict[str, dict[int, float]] = {}
        lengths: dict[int, int] = {}
        postings: dict[int, float] = {}
        last = None
        for term, chunk, heading in db.execute("SELECT term, doc, col = 'heading' FROM temp.attest_kb_instances"):
            if term != last:
                postings = frequencies[term] = {}
                last = term
            postings[chunk] = postings.get(chunk, 0.0) + (HEADING_WEIGHT if heading else 1.0)
            lengths[chunk] = lengths.get(chunk, 0) + 1
        db.execute("DROP TABLE temp.attest_kb_instances")
        if not self._rows or not lengths:
            return
        average = sum(lengths.values()) / self._rows
        self._size = max(lengths) + 1
        length = np.zeros(self._size, dtype=np.float64)
        length[np.fromiter(lengths, dtype=np.int64)] = np.fromiter(lengths.values(), dtype=np.float64)
        norm = _K1 * (1 - _B + _B * length / average)
        for term, tf in frequencies.items():
            weight = idf(self._rows, len(tf))
            ids, f = Postings.of(tf)
            self._terms[term] = Postings(ids, weight * ((f * (_K1 + 1.0)) / (f + norm[ids])))

    def top(self, terms: Sequence[str], limit: int) -> list[Row]:
        """The top `limit` rows of the plain OR query over `terms` (FTS5 quoted terms), as `Search._top` returns them:
        best first, ties by source and chunk index."""
        found = [postings for postings in map(self._postings, terms) if len(postings.ids)]
        if not found:
            return []
        ids: npt.NDArray[np.int64] | None = None  # the chunk at each place of `scores` (None: the place is the id)
        if len(found) == 1:
            ids, scores = found[0]
        else:
            # bincount adds each chunk's contributions in the order given, from 0.0: in query order, as bm25() sums
            # its phrases, so the sums are FTS5's to the bit. A chunk no term holds scores 0, below any that one does.
            every = np.concatenate([postings.ids for postings in found])
            weights = np.concatenate([postings.impacts for postings in found])
            scores = np.bincount(every, weights, self._size).astype(np.float64, copy=False)
        cutoff = np.partition(scores, len(scores) - limit)[len(scores) - limit] if len(scores) > limit else 0.0
        # Every chunk tied with the limit-th best, for the tie order below.
        kept = np.flatnonzero(scores >= cutoff if cutoff > 0.0 else scores > 0.0)
        chunks = (kept if ids is None else ids[kept]).tolist()
        rows = self._rows_of(chunks)
        ranked = sorted(
            ((*rows[chunk], score) for chunk, score in zip(chunks, scores[kept].tolist(), strict=True)),
            key=lambda r: (-r[-1], r[0], r[2]),
        )
        return ranked[:limit]

    def _postings(self, term: str) -> Postings:
        """A quoted query term's contributions: a word's from the index; a phrase's from FTS5 (positions are not
        kept in memory), computed once."""
        tokens = self._tokens.get(term)
        if tokens is None:
            tokens = self._tokens[term] = self._tokenize(term)
        if len(tokens) == 1:
            return self._terms.get(tokens[0], _NONE)
        if not tokens:
            return _NONE
        found = self._phrases.get(term)
        if found is None:
            if len(self._phrases) >= _MAX_PHRASES:
                self._phrases.clear()
            query = f"SELECT rowid, -bm25(chunks_fts, {HEADING_WEIGHT}, 1.0) FROM chunks_fts WHERE chunks_fts MATCH ?"
            found = self._phrases[term] = Postings.of(dict(self._db.execute(query, (term,)).fetchall()))
        return found

    def _tokenize(self, term: str) -> tuple[str, ...]:
        """The tokens FTS5 makes of a query term, from a scratch FTS5 table with the index's tokenizer."""
        db = self._db
        db.execute(f'CREATE VIRTUAL TABLE IF NOT EXISTS temp.attest_kb_query USING fts5(q, tokenize = "{TOKENIZER}")')
        db.execute(
            "CREATE VIRTUAL TABLE IF NOT EXISTS temp.attest_kb_query_terms "
            "USING fts5vocab(temp, attest_kb_query, instance)"
        )
        db.execute("INSERT INTO temp.attest_kb_query(q) VALUES (?)", (term[1:-1].replace('""', '"'),))
        tokens = tuple(row[0] for row in db.execute("SELECT term FROM temp.attest_kb_query_terms ORDER BY offset"))
        db.execute("DELETE FROM temp.attest_kb_query")
        return tokens

    def _rows_of(self, chunks: list[int]) -> dict[int, Row]:
        """The stored rows of these chunks (without score), read once."""
        missing = [chunk for chunk in chunks if chunk not in self._chunks]
        for start in range(0, len(missing), 500):
            part = missing[start : start + 500]
            marks = ",".join("?" * len(part))
            for chunk_id, *row in self._db.execute(
                "SELECT c.id, d.source, c.doc_cid, c.idx, c.text, c.sha256, c.heading_path FROM chunks c "
                f"JOIN documents d ON d.id = c.document_id WHERE c.id IN ({marks})",
                part,
            ):
                self._chunks[chunk_id] = tuple(row)
        return {chunk: self._chunks[chunk] for chunk in chunks}
