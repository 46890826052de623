"""The other BM25 engines of the knowledge-base bench (bench/kb.py), each run in its own process over the chunks our
ingest stored: rank_bm25 (the BM25 behind LangChain's BM25Retriever, three tokenizations), bm25s (sparse
precomputed scores in numpy) and tantivy (Lucene-like, in Rust). Each child prints its index build time and,
per question set, its latencies and top chunks (bench.kb._measure).
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from attest.kb.schema import HEADING_WEIGHT as HEADING_BOOST
from attest.text import STOPWORDS
from bench.kb import Search, _measure, _question_sets


# -- tokenizers for rank_bm25 --------------------------------------------------------------------------------
def split_tokens(text: str) -> list[str]:
    """LangChain's BM25Retriever default `preprocess_func`: whitespace split, case and punctuation kept."""
    return text.split()


_WORD = re.compile(r"\w+")


def word_tokens(text: str) -> list[str]:
    """Lowercase words: close to what FTS5's unicode61 tokenizer indexes, so the comparison is of ranking."""
    return _WORD.findall(text.lower())


@dataclass(frozen=True)
class Variant:
    label: str
    tokenize: Callable[[str], list[str]]
    with_headings: bool  # index the file name and heading path too, as our FTS index does (in its own column)


VARIANTS = {
    "split": Variant("rank_bm25 BM25Okapi, `text.split()` of the chunk (BM25Retriever default)", split_tokens, False),
    "words": Variant("rank_bm25 BM25Okapi, lowercase `\\w+` words of the chunk", word_tokens, False),
    "words+headings": Variant(
        "rank_bm25 BM25Okapi, lowercase words of file name + headings + chunk", word_tokens, True
    ),
}
BM25S = "bm25s 0.3 (Lucene BM25, English stop words, no stemmer), file name + headings + chunk"
TANTIVY = f"tantivy 0.27 (`en_stem`, our stop words, headings boosted {HEADING_BOOST:g}x), file name + headings, chunk"


def _exported(chunks: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(Path(chunks).read_text())
    return data


def _with_headings(exported: dict[str, Any]) -> list[str]:
    return [f"{heading}\n{text}" for heading, text in zip(exported["headings"], exported["texts"], strict=True)]


def _report(build_s: float, questions: str, search: Search, rounds: str, descriptions: str) -> None:
    measured = _measure(_question_sets(questions), search, int(rounds), descriptions)
    print(json.dumps({"build_s": build_s, "sets": measured}))


def child_bm25(chunks: str, questions: str, rounds: str, variant: str, descriptions: str) -> None:
    from rank_bm25 import BM25Okapi  # type: ignore[import-untyped]

    chosen = VARIANTS[variant]
    exported = _exported(chunks)
    sources: list[str] = exported["sources"]
    indexes: list[int] = exported["indexes"]
    texts = _with_headings(exported) if chosen.with_headings else exported["texts"]
    del exported
    start = time.perf_counter()
    bm25 = BM25Okapi([chosen.tokenize(text) for text in texts])
    build_s = time.perf_counter() - start
    del texts
    positions = list(range(len(sources)))

    def search(q: str, k: int) -> list[tuple[str, int]]:
        return [(sources[i], indexes[i]) for i in bm25.get_top_n(chosen.tokenize(q), positions, n=k)]

    _report(build_s, questions, search, rounds, descriptions)


def child_bm25s(chunks: str, questions: str, rounds: str, descriptions: str) -> None:
    """bm25s as its README indexes and queries: its tokenizer (lowercase `\\w\\w+`, English stop words; PyStemmer,
    its optional stemmer, is not installed), the default Lucene BM25, `retrieve` on the query's token ids."""
    import bm25s  # type: ignore[import-untyped]

    exported = _exported(chunks)
    sources: list[str] = exported["sources"]
    indexes: list[int] = exported["indexes"]
    texts = _with_headings(exported)
    del exported
    start = time.perf_counter()
    tokenizer = bm25s.tokenization.Tokenizer(stopwords="en")
    retriever = bm25s.BM25()
    retriever.index(tokenizer.tokenize(texts, show_progress=False), show_progress=False)
    build_s = time.perf_counter() - start
    del texts

    def search(q: str, k: int) -> list[tuple[str, int]]:
        tokens = tokenizer.tokenize([q], update_vocab=False, show_progress=False)
        found, _scores = retriever.retrieve(tokens, k=k, show_progress=False)
        return [(sources[i], indexes[i]) for i in found[0].tolist()]

    _report(build_s, questions, search, rounds, descriptions)


def child_tantivy(chunks: str, questions: str, rounds: str, descriptions: str) -> None:
    """tantivy with an in-memory index: the file name and headings in one field, boosted as our heading column
    is, the chunk in another, both with its English stemming tokenizer; the query's words but stop words (ours
    drops the same ones; `en_stem` keeps them) OR-ed over both."""
    import tantivy

    exported = _exported(chunks)
    sources: list[str] = exported["sources"]
    indexes: list[int] = exported["indexes"]
    start = time.perf_counter()
    builder = tantivy.SchemaBuilder()
    builder.add_text_field("heading", stored=False, tokenizer_name="en_stem")
    builder.add_text_field("body", stored=False, tokenizer_name="en_stem")
    builder.add_integer_field("pos", stored=True, fast=True)
    index = tantivy.Index(builder.build())
    writer = index.writer(heap_size=100_000_000, num_threads=1)
    for pos, (heading, text) in enumerate(zip(exported["headings"], exported["texts"], strict=True)):
        writer.add_document(tantivy.Document(heading=heading, body=text, pos=pos))
    writer.commit()
    writer.wait_merging_threads()
    index.reload()
    searcher = index.searcher()
    build_s = time.perf_counter() - start
    del exported

    def search(q: str, k: int) -> list[tuple[str, int]]:
        # Plain words (the query language's operators cannot appear), without the stop words ours drops too.
        words = " ".join(w for w in word_tokens(q) if w not in STOPWORDS)
        if not words:
            return []
        query = index.parse_query(words, ["heading", "body"], field_boosts={"heading": HEADING_BOOST})
        found = [searcher.doc(address)["pos"][0] for _score, address in searcher.search(query, k).hits]
        return [(sources[i], indexes[i]) for i in found]

    _report(build_s, questions, search, rounds, descriptions)
