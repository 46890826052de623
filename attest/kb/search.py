"""Search: any text as FTS5 terms, and the exact BM25 top k found without ranking every chunk (MaxScore)."""

from __future__ import annotations

import functools
import json
import math
import re
import sqlite3
from collections.abc import Sequence
from typing import Any

from attest.context import RetrievedChunk
from attest.errors import KbError
from attest.kb.memory import MemoryIndex, idf
from attest.kb.schema import HEADING_WEIGHT
from attest.text import document_stem, is_stub, named_documents

MAX_QUERY_TERMS = 32
_CITED_WEIGHT = 0.08  # checked on the tuning questions; the held-out recall@5 is unchanged by it
_STUB_DEPTH = 1000  # how deep search looks past "moved to" stubs for real chunks
_WHOLE_DOCUMENT = 500  # chunks read of a document the query only names
_BM25 = f"bm25(chunks_fts, {HEADING_WEIGHT}, 1.0)"
_BM25_MAX = 1.2 + 1.0  # FTS5's k1 + 1: the most one term adds to a score, per unit of its idf
# Below these many matching chunks a plain OR query is already fast: FTS5 steps through every chunk an OR
# matches (~1 µs each) and ranks each (~4 µs), so common words, not ranking, are what make a query slow.
_PLAIN_BELOW = 1000
_PROBE_ROWS = 400  # how many chunks the rarest terms may match in the query that finds a first k-th best score

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


# Per query, search reads the headings of ~20 chunks and asks of ~40 whether they are stubs: the same few thousand
# chunks again and again, so both answers are kept (a text's hash is cached in the str, so a hit costs little).
@functools.lru_cache(maxsize=1 << 16)
def _heading_path(path: str) -> tuple[str, ...]:
    return tuple(json.loads(path))


_is_stub = functools.lru_cache(maxsize=1 << 16)(is_stub)


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


class Search:
    """The search half of `KnowledgeBase`: reads the chunks and their index on `_db`."""

    _db: sqlite3.Connection
    # Corpus statistics; `PRAGMA data_version` tells when another connection changed them, and a commit of
    # our own resets `_stats_version`.
    _stats_version: int
    _rows: int | None
    _hits: dict[str, int]
    _citations: dict[str, int]  # source -> how many other documents name it
    # The index held in memory (`hold_in_memory`), and the data_version it was read at (-1: a commit of our own
    # since).
    _memory: MemoryIndex | None
    _memory_version: int

    def hold_in_memory(self) -> None:
        """Read the whole FTS5 index into memory once (about a second per 10,000 chunks) so that every later
        `search` and `ranked` ranks in Python, without SQL, in a fraction of the time; the results are the same.
        For processes that search many times; read again by the first search after the KB changes."""
        self._memory_version = self._data_version()
        self._memory = MemoryIndex(self._db)

    def _data_version(self) -> int:
        return int(self._db.execute("PRAGMA data_version").fetchone()[0])

    def data_version(self) -> int:
        """Changes whenever another connection changes the KB: when to derive again what was derived from it."""
        return self._data_version()

    def search(self, query: str, k: int = 5) -> list[RetrievedChunk]:
        """The `k` chunks that best answer `query`: the BM25 ranking (`ranked`), except that a document many other
        documents name ("EIP-1559", named by 62 EIPs) gains a little (its score times 1 + 0.08 ln(1 + that many)),
        the best chunks of a document the query names come first, up to about half of them, and "moved to …"
        stubs of documents it does not name come last. Without the first, "base fee" finds the EIPs with "base
        fee" in their titles, and not the one that defines it. A stub is short, so BM25 ranks it above the real
        text on any word it holds, but it answers nothing; and a question about EIP-1559 is answered by EIP-1559
        before the EIPs that mention it.
        """
        if k < 1:
            raise KbError(f"k must be at least 1 (got {k})")
        named = named_documents(query)
        depth = 4 * k
        pool = self.ranked(query, depth)
        # Enough real chunks to fill k, unless the corpus has no more: a common word ("ERC") can match hundreds
        # of stubs before the first real chunk.
        while len(pool) == depth and sum(not _is_stub(c.text) for c in pool) < k and depth < _STUB_DEPTH:
            depth *= 4
            pool = self.ranked(query, depth)
        first = self._named(query, named, k // 2 + 1) if named else []
        taken = {(c.doc_cid, c.chunk_index) for c in first}
        rest = [c for c in pool if (c.doc_cid, c.chunk_index) not in taken]
        self._corpus_counts([])  # clears the citation counts when the KB changed
        rest = [self._with_citations(c) for c in rest]
        rest.sort(key=lambda c: -c.score)
        rest.sort(key=lambda c: _is_stub(c.text) and document_stem(c.source) not in named)  # stable: order kept
        return [*first, *rest][:k]

    def _with_citations(self, chunk: RetrievedChunk) -> RetrievedChunk:
        """The chunk with the score search ranks it by: its BM25 score, raised when other documents name it."""
        cited = self._cited_by(chunk.source)
        if not cited:
            return chunk
        score = chunk.score * (1 + _CITED_WEIGHT * math.log1p(cited))
        # The constructor, not dataclasses.replace: this runs for every chunk of every search, and replace costs 4x.
        c = chunk
        return RetrievedChunk(c.source, c.doc_cid, c.chunk_index, c.text, c.sha256, c.heading_path, score)

    def _cited_by(self, source: str) -> int:
        """How many other documents name an eip-N document (0 for any other name); cached until the KB changes
        (`search` clears the cache through `_corpus_counts`)."""
        found = self._citations.get(source)
        if found is None:
            stem = document_stem(source)
            found = 0
            if named_documents(stem):
                phrase = '"' + " ".join(_TOKEN.findall(stem)) + '"'
                found = int(
                    self._db.execute(
                        "SELECT count(DISTINCT c.document_id) FROM chunks_fts f JOIN chunks c ON c.id = f.rowid "
                        "JOIN documents d ON d.id = c.document_id WHERE chunks_fts MATCH ? AND d.source != ?",
                        (f"body : {phrase}", source),
                    ).fetchone()[0]
                )
            self._citations[source] = found
        return found

    def _named(self, query: str, named: frozenset[str], limit: int) -> list[RetrievedChunk]:
        """The best chunks of the documents `query` names, found through their file names in the heading column."""
        names = " OR ".join('"' + " ".join(_TOKEN.findall(stem)) + '"' for stem in sorted(named))
        others = [t for t in query_terms(query) if t.strip('"').replace(" ", "-") not in named]
        match = f"heading : ({names})" + (f" AND ({' OR '.join(others)})" if others else "")
        found: list[RetrievedChunk] = []
        for _ in range(2):  # the named documents' chunks that hold another query word, else any of their chunks
            rows = self._top(match, 4 * limit if others else _WHOLE_DOCUMENT)
            found = [
                RetrievedChunk(source, doc_cid, idx, text, sha256, tuple(json.loads(path)), float(score))
                for source, doc_cid, idx, text, sha256, path, score in rows
                if document_stem(source) in named
            ]
            if not others:  # nothing but the name was asked ("What is EIP-4844?"): the document from its start
                found.sort(key=lambda c: (c.source, c.chunk_index))
            found = found[:limit]
            if found:
                break
            match = f"heading : ({names})"
        return found

    def ranked(self, query: str, k: int = 5) -> list[RetrievedChunk]:
        """The `k` chunks that best match `query` (BM25; a match in a heading or file name weighs more).

        Exactly the top k of the plain OR query over the query's words, found without stepping through the
        chunks that hold only common words when those cannot reach the top k. The same chunk of the same bytes
        under two sources is returned once.
        """
        if k < 1:
            raise KbError(f"k must be at least 1 (got {k})")
        terms = query_terms(query)
        if self._memory is not None and self._memory_version != self._data_version():
            self.hold_in_memory()
        limit = k
        while True:
            if self._memory is not None:
                rows = self._memory.top(terms, limit)
            else:
                match, rows = self._plan(terms, limit)
                if not match:
                    return []
            found: list[RetrievedChunk] = []
            seen: set[tuple[str, int]] = set()
            for source, doc_cid, idx, text, sha256, path, score in rows:
                if (doc_cid, idx) not in seen and len(found) < k:
                    seen.add((doc_cid, idx))
                    chunk = RetrievedChunk(source, doc_cid, idx, text, sha256, _heading_path(path), float(score))
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
        bounds = {t: _BM25_MAX * idf(rows, hits[t]) for t in terms}
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
        version = self._data_version()
        if version != self._stats_version or len(self._hits) > 100_000:
            self._stats_version = version
            self._hits.clear()
            self._citations.clear()
            self._rows = None
        if self._rows is None:
            self._rows = int(self._db.execute("SELECT count(*) FROM chunks").fetchone()[0])
        for term in terms:
            if term not in self._hits:
                query = "SELECT count(*) FROM chunks_fts WHERE chunks_fts MATCH ?"
                self._hits[term] = int(self._db.execute(query, (term,)).fetchone()[0])
        return self._rows, self._hits
