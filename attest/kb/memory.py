"""The FTS5 index held in memory: every term's BM25 contribution to every chunk, computed once from the index's own
postings with FTS5's bm25 arithmetic, so a process that searches many times ranks in Python without SQL.

A query through FTS5 costs about a millisecond even when its answer is known from the rarest term: SQLite steps
through the postings of every term in the OR query and ranks each chunk in C, behind a statement, a cursor and a
virtual table. Held in memory, a term's contributions are a dict, the top k is found by MaxScore over those dicts,
and the scores are bit for bit the ones FTS5's `bm25()` gives the plain OR query (same formula, same operations in
the same order), so `ranked()` returns the same chunks with or without it.
"""

from __future__ import annotations

import bisect
import heapq
import math
import sqlite3
from collections.abc import Sequence
from itertools import repeat
from typing import Any

from attest.kb.schema import HEADING_WEIGHT, TOKENIZER

_K1 = 1.2  # FTS5's bm25 constants
_B = 0.75
_CHAMPIONS = 16  # each term's best chunks, scored first to find a k-th best score to prune with
# Bounds are sums in another order than the exact scores: a hair of slack keeps a chunk whose score ties the
# threshold.
_SLACK = 1e-9
_MAX_PHRASES = 10_000  # phrases (EIP-1559) kept; beyond, the cache starts again


class Postings:
    """A term's contribution to each chunk that holds it, the largest of them (its MaxScore bound), and its chunks
    from the largest contribution down (sorted on first use)."""

    __slots__ = ("_by_impact", "_descending", "bound", "impacts")

    def __init__(self, impacts: dict[int, float]) -> None:
        self.impacts = impacts
        self.bound = max(impacts.values(), default=0.0)
        self._by_impact: list[int] = []
        self._descending: list[float] = []  # the contributions negated, ascending, for bisect

    def at_least(self, floor: float) -> list[int]:
        """The chunks this term contributes at least `floor` to."""
        return self._sorted()[: bisect.bisect_right(self._descending, -floor)]

    def champions(self) -> list[int]:
        """The chunks this term contributes most to."""
        return self._sorted()[:_CHAMPIONS]

    def _sorted(self) -> list[int]:
        if not self._by_impact:
            self._by_impact = sorted(self.impacts, key=self.impacts.__getitem__, reverse=True)
            self._descending = [-self.impacts[chunk] for chunk in self._by_impact]
        return self._by_impact


_NONE = Postings({})
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
        self._terms: dict[str, Postings] = {}
        self._tokens: dict[str, tuple[str, ...]] = {}  # query term ('"eip 1559"') -> FTS tokens ("eip", "1559")
        self._phrases: dict[str, Postings] = {}
        self._chunks: dict[int, Row] = {}
        self._load()

    def _load(self) -> None:
        """Every (term, chunk) frequency from the index's instance list, weighted per column as `bm25()` weighs it;
        a chunk's length is its number of instances, the token count FTS5 keeps for it."""
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
        if not self._rows:
            return
        average = sum(lengths.values()) / self._rows
        norm = {chunk: _K1 * (1 - _B + _B * length / average) for chunk, length in lengths.items()}
        for term, tf in frequencies.items():
            weight = idf(self._rows, len(tf))
            impacts = {chunk: weight * ((f * (_K1 + 1.0)) / (f + norm[chunk])) for chunk, f in tf.items()}
            self._terms[term] = Postings(impacts)

    def top(self, terms: Sequence[str], limit: int) -> list[Row]:
        """The top `limit` rows of the plain OR query over `terms` (FTS5 quoted terms), as `Search._top` returns them:
        best first, ties by source and chunk index."""
        found = [postings for postings in map(self._postings, terms) if postings.impacts]
        if not found:
            return []
        candidates, scores = self._candidates(found, limit)
        if len(scores) > limit:
            cutoff = heapq.nlargest(limit, scores)[-1]
            picked = [(s, c) for s, c in zip(scores, candidates, strict=True) if s >= cutoff]
        else:
            picked = list(zip(scores, candidates, strict=True))
        rows = self._rows_of([chunk for _, chunk in picked])
        ranked = sorted(((*rows[chunk], score) for score, chunk in picked), key=lambda r: (-r[-1], r[0], r[2]))
        return ranked[:limit]

    def _candidates(self, found: list[Postings], limit: int) -> tuple[list[int], list[float]]:
        """The chunks that can reach the top `limit`, with their scores (MaxScore, a term at a time): each term's best
        chunks are scored first, and the limit-th best score so far bounds the final limit-th best from below. The
        terms are then taken strongest first: a chunk first met in a term can score at most its contribution there
        plus the bounds of the weaker terms, so only the chunks the term gives at least the bound minus those are
        scored; once the weaker terms' bounds together fall short of the bound, no chunk not yet met can reach it.
        """
        lists = [postings.impacts for postings in found]
        candidates = list(set().union(*(postings.champions() for postings in found)))
        scores = self._scores(lists, candidates)
        seen = set(candidates)
        order = sorted(found, key=lambda postings: postings.bound, reverse=True)
        weaker = [sum(postings.bound for postings in order[i + 1 :]) for i in range(len(order))]
        best = heapq.nlargest(limit, scores)  # the limit best scores so far, as a min-heap
        heapq.heapify(best)
        for postings, slack in zip(order, weaker, strict=True):
            threshold = best[0] if len(best) == limit else -math.inf
            if postings.bound + slack < threshold - _SLACK:
                break
            new = [chunk for chunk in postings.at_least(threshold - slack - _SLACK) if chunk not in seen]
            seen.update(postings.impacts)
            if new:
                more = self._scores(lists, new)
                candidates += new
                scores += more
                for score in more:
                    if len(best) < limit:
                        heapq.heappush(best, score)
                    elif score > best[0]:
                        heapq.heapreplace(best, score)
        return candidates, scores

    @staticmethod
    def _scores(lists: list[dict[int, float]], candidates: list[int]) -> list[float]:
        """Each candidate's score: its contributions summed in query order, as FTS5's bm25() sums its phrases."""
        columns = [list(map(postings.get, candidates, repeat(0.0))) for postings in lists]
        return list(map(sum, zip(*columns, strict=True)))

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
            found = self._phrases[term] = Postings(dict(self._db.execute(query, (term,)).fetchall()))
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
