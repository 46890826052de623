"""Knowledge-base retrieval: our SQLite FTS5 search against rank_bm25 (the BM25 behind LangChain's BM25Retriever)
and the two fastest BM25 engines on PyPI, bm25s and tantivy (bench/kb_engines.py runs the three).

Both sides rank exactly the same chunks (the ones our ingest stored) for the same labelled questions, in the
same run, over two question sets: bench/kb_questions.toml, the set ranking was tuned on, and
bench/kb_questions_holdout.toml, written before that tuning about other EIPs and never tuned on (its numbers are
the honest ones). Each side runs in its own process so its peak RSS is its own: ours
ingests the corpus into a fresh KB and searches it; rank_bm25 builds a BM25Okapi index over the chunk texts we
export and ranks them with `get_top_n`, as BM25Retriever does; bm25s and tantivy index the same export. rank_bm25
runs three ways: tokenized the way
BM25Retriever does by default (`text.split()`); with lowercase words, which is fairer to it; and with lowercase
words over the file name and headings too, which our index also sees. A third set needs no labelling: every
EIP's front-matter `description` asks for its own EIP (front-matter chunks, which hold the description verbatim,
are left out of both rankings); it is only scored, not timed.

    python -m bench.kb [--quick]
"""

from __future__ import annotations

import json
import re
import statistics
import sys
import tempfile
import time
import tomllib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bench.common import Table

# Neither bench.common (web3) nor anything heavy is imported at module level: the measured children import
# this module, and their peak RSS must be the retriever's, not the bench's.
HERE = Path(__file__).resolve().parent
CORPUS = HERE.parent.parent / "shared" / "corpus" / "eips"
QUESTIONS = HERE / "kb_questions.toml"
HOLDOUT = HERE / "kb_questions_holdout.toml"
QUESTION_SETS = {"tuning": QUESTIONS, "held-out": HOLDOUT}  # the goal is judged on the held-out set
SPEEDUP_GOAL = 10.0  # ours at least this many times faster (CPU p50) than BM25Retriever's default
INGEST_GOAL_S = 5.0  # the whole EIP corpus into a fresh KB
K = 5
DEEP = 20  # how far the description set looks, so that K remain once front-matter chunks are left out
DESCRIPTIONS = "descriptions"
UNUSED_MODEL = "bench:none"  # no vectors are ever stored under it, so it lists every chunk
MB = 1_000_000
OURS_MEMORY = "**ours**, index held in memory (`hold_in_memory`: the same ranking over numpy arrays)"


@dataclass(frozen=True)
class Question:
    q: str
    relevant: frozenset[str]
    style: str


def load_questions(path: Path = QUESTIONS) -> list[Question]:
    with path.open("rb") as f:
        raw = tomllib.load(f)["question"]
    return [Question(item["q"], frozenset(item["relevant"]), item["style"]) for item in raw]


_DESCRIPTION = re.compile(r"\A---\n(?:.*\n)*?description:[ \t]*(.+?)[ \t]*\n(?:.*\n)*?---", re.MULTILINE)


def description_questions(corpus: Path = CORPUS) -> list[Question]:
    """One question per EIP with a front-matter `description`: that description, answered by its own file."""
    out = []
    for path in sorted(corpus.glob("*.md")):
        found = _DESCRIPTION.match(path.read_text(encoding="utf-8", errors="replace"))
        if found:
            out.append(Question(found.group(1).strip("\"'"), frozenset({path.name}), "description"))
    return out


# -- the measured children -----------------------------------------------------------------------------------
def _percentile(samples: Sequence[float], p: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def _question_sets(paths: str) -> dict[str, list[str]]:
    """`name=path` pairs joined by commas (how the parent passes the question sets to a child)."""
    pairs = (item.split("=", 1) for item in paths.split(","))
    return {name: [q.q for q in load_questions(Path(path))] for name, path in pairs}


Search = Callable[[str, int], list[tuple[str, int]]]  # (query, k) -> the top k as (source, chunk index)


def _measure(sets: dict[str, list[str]], search: Search, rounds: int, descriptions: str) -> dict[str, Any]:
    """Per question set: its latencies (first pass and timed rounds) and each question's top K chunks; for the
    description questions (a JSON list in the file `descriptions`), the top DEEP chunks only."""
    out: dict[str, Any] = {}
    for name, queries in sets.items():
        latencies = _timed_rounds(queries, lambda q: search(q, K), rounds)
        out[name] = {**latencies, "top": [search(q, K) for q in queries]}
    out[DESCRIPTIONS] = {"top": [search(q, DEEP) for q in json.loads(Path(descriptions).read_text())]}
    return out


def _timed_rounds(queries: list[str], search: Callable[[str], object], rounds: int) -> dict[str, list[float]]:
    """Latencies of a first pass over the questions (each one new to the process) and of `rounds` more, in
    wall-clock time and in CPU time of the process (which other processes on a busy machine do not inflate)."""
    latencies: dict[str, list[float]] = {"first": [], "warm": [], "warm_cpu": []}
    for name, passes in (("first", 1), ("warm", rounds)):
        for _ in range(passes):
            for q in queries:
                cpu = time.process_time()
                start = time.perf_counter()
                search(q)
                latencies[name].append(time.perf_counter() - start)
                if name == "warm":
                    latencies["warm_cpu"].append(time.process_time() - cpu)
    return latencies


def child_ours(corpus: str, db: str, questions: str, rounds: str, descriptions: str) -> None:
    from attest.kb import KnowledgeBase

    sets = _question_sets(questions)
    start = time.perf_counter()
    kb = KnowledgeBase(Path(db))
    added = kb.add_path(Path(corpus))
    ingest_s = time.perf_counter() - start
    measured = _measure(
        sets, lambda q, k: [(hit.source, hit.chunk_index) for hit in kb.search(q, k=k)], int(rounds), descriptions
    )
    print(json.dumps({"ingest_s": ingest_s, "documents": len(added), "sets": measured}))


def child_ours_memory(db: str, questions: str, rounds: str, descriptions: str) -> None:
    """Ours over the KB `child_ours` built, with its index held in memory (`hold_in_memory`, timed as the build)."""
    from attest.kb import KnowledgeBase

    sets = _question_sets(questions)
    kb = KnowledgeBase(Path(db))
    start = time.perf_counter()
    kb.hold_in_memory()
    build_s = time.perf_counter() - start
    measured = _measure(
        sets, lambda q, k: [(hit.source, hit.chunk_index) for hit in kb.search(q, k=k)], int(rounds), descriptions
    )
    print(json.dumps({"build_s": build_s, "sets": measured}))


# -- scoring -------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Scores:
    recall: float  # share of questions with a relevant chunk in the top K
    recall_keyword: float
    recall_natural: float
    mrr: float  # mean reciprocal rank of the first relevant chunk within the top K (0 when none)
    ranks: tuple[int | None, ...]  # per question: the rank of its first relevant chunk, None when not in the top K


def score(questions: Sequence[Question], tops: Sequence[Sequence[str]]) -> Scores:
    """Recall and MRR at K of each question's ranked sources (only the first K are looked at)."""
    if len(questions) != len(tops):
        raise RuntimeError(f"{len(tops)} result lists for {len(questions)} questions")
    ranks: list[int | None] = []
    for question, top in zip(questions, tops, strict=True):
        names = [PurePosixPath(source).name for source in top[:K]]
        ranks.append(next((i + 1 for i, name in enumerate(names) if name in question.relevant), None))

    def recall(style: str | None) -> float:
        picked = [r for q, r in zip(questions, ranks, strict=True) if style is None or q.style == style]
        return sum(r is not None for r in picked) / len(picked) if picked else 0.0

    mrr = sum(1 / r for r in ranks if r is not None) / len(ranks)
    return Scores(recall(None), recall("keyword"), recall("natural"), mrr, tuple(ranks))


@dataclass(frozen=True)
class Side:
    """One retriever on one question set."""

    name: str
    speed_goal: float | None  # ours must be this many times faster at CPU p50 (None: recall only)
    setup_s: float  # ours: the whole ingest; rank_bm25: tokenizing and building the index
    first: list[float]  # each question's first run in the process
    latencies: list[float]  # the timed rounds after it
    cpu: list[float]  # the same rounds in CPU time of the process
    scores: Scores
    rss: int

    @property
    def first_p50(self) -> float:
        return statistics.median(self.first)

    @property
    def p50(self) -> float:
        return statistics.median(self.latencies)

    @property
    def p99(self) -> float:
        return _percentile(self.latencies, 99)

    @property
    def cpu_p50(self) -> float:
        return statistics.median(self.cpu)


# -- the parent ----------------------------------------------------------------------------------------------
def _run_child(module: str, function: str, *args: str) -> tuple[dict[str, Any], int]:
    from bench.common import measured_child  # here, not at module level: see the note above

    code = f"import sys; from {module} import {function}; {function}(*sys.argv[1:])"
    out, _, rss = measured_child([sys.executable, "-c", code, *args])
    return json.loads(out), rss


def _export_chunks(db: Path, path: Path) -> tuple[int, str, set[tuple[str, int]]]:
    """Every chunk our ingest stored (text, source, index, file name + heading path) in one file for rank_bm25;
    the number of chunks, the chunking parameters and the front-matter chunks (source, index)."""
    from attest.kb import KnowledgeBase

    kb = KnowledgeBase(db)
    rows = kb.chunks_without_embedding(UNUSED_MODEL)
    chunks = [kb.chunk(chunk_id) for chunk_id, _ in rows]
    params = f"chunks of at most {kb.params.max_chars} characters, {kb.params.overlap_chars} overlapping"
    kb.close()
    exported = {
        "texts": [c.text for c in chunks],
        "sources": [c.source for c in chunks],
        "indexes": [c.chunk_index for c in chunks],
        "headings": [" ".join((PurePosixPath(c.source).name, *c.heading_path)) for c in chunks],
    }
    path.write_text(json.dumps(exported))
    front = {(c.source, c.chunk_index) for c in chunks if c.chunk_index == 0 and c.text.startswith("---\n")}
    return len(chunks), params, front


def _warm(corpus: Path) -> int:
    """Read every file once so both sides read the corpus from the page cache; the number of files."""
    files = [p for p in corpus.rglob("*") if p.is_file()]
    for p in files:
        p.read_bytes()
    return len(files)


def run(quick: bool = False, corpus: Path = CORPUS) -> list[Table]:
    from bench import kb_engines as engines
    from bench.common import Table

    if not corpus.is_dir():
        raise FileNotFoundError(
            f"the KB benchmark needs the EIP corpus at {corpus} (ethereum/EIPs EIPS/*.md); put it there or pass "
            "corpus= to bench.kb.run"
        )
    rounds = 1 if quick else 10
    questions = {name: load_questions(path) for name, path in QUESTION_SETS.items()}
    described = description_questions(corpus)
    sets_arg = ",".join(f"{name}={path}" for name, path in QUESTION_SETS.items())
    files = _warm(corpus)
    with tempfile.TemporaryDirectory(prefix="attest-bench-kb-") as tmp:
        db = Path(tmp) / "kb.sqlite3"
        descriptions = Path(tmp) / "descriptions.json"
        descriptions.write_text(json.dumps([q.q for q in described]))
        ours_out, ours_rss = _run_child(
            "bench.kb", "child_ours", str(corpus), str(db), sets_arg, str(rounds), str(descriptions)
        )
        memory_out, memory_rss = _run_child(
            "bench.kb", "child_ours_memory", str(db), sets_arg, str(rounds), str(descriptions)
        )
        chunks_file = Path(tmp) / "chunks.json"
        n_chunks, chunking, front = _export_chunks(db, chunks_file)
        common = (str(chunks_file), sets_arg, str(rounds))
        others: list[tuple[str, float | None, tuple[str, ...]]] = [
            (engines.VARIANTS[name].label, SPEEDUP_GOAL if name == "split" else None, ("child_bm25", *common, name))
            for name in engines.VARIANTS
        ]
        others += [(engines.BM25S, 1.0, ("child_bm25s", *common)), (engines.TANTIVY, 1.0, ("child_tantivy", *common))]
        measured = [
            (label, goal, *_run_child("bench.kb_engines", *argv, str(descriptions))) for label, goal, argv in others
        ]
    runs: list[tuple[str, float | None, float, dict[str, Any], int]] = [
        ("**ours** (SQLite FTS5 BM25)", None, ours_out["ingest_s"], ours_out, ours_rss),
        (OURS_MEMORY, None, memory_out["build_s"], memory_out, memory_rss),
    ]
    runs += [(label, goal, out["build_s"], out, rss) for label, goal, out, rss in measured]
    by_set = {
        set_name: [
            Side(
                label,
                speed_goal,
                setup_s,
                out["sets"][set_name]["first"],
                out["sets"][set_name]["warm"],
                out["sets"][set_name]["warm_cpu"],
                score(questions[set_name], [[source for source, _ in top] for top in out["sets"][set_name]["top"]]),
                rss,
            )
            for label, speed_goal, setup_s, out, rss in runs
        ]
        for set_name in QUESTION_SETS
    }
    by_description = [
        (label, score(described, [without(front, top) for top in out["sets"][DESCRIPTIONS]["top"]]))
        for label, _, _, out, _ in runs
    ]
    return [
        _retrieval_table(Table, by_set, rounds),
        _description_table(Table, by_description, len(front)),
        _ingest_table(Table, by_set["held-out"], ours_out["documents"], files, n_chunks, chunking),
    ]


def without(front: set[tuple[str, int]], top: Sequence[Sequence[Any]]) -> list[str]:
    """The sources of a ranking once the front-matter chunks are taken out of it."""
    return [source for source, index in top if (source, index) not in front]


def verdict(ours: Side, others: Sequence[Side]) -> str:
    """Which other retrievers ours beats on this set: recall@K at least theirs and, where a side has a speed goal, a
    p50 in CPU time at least that many times lower (CPU time, since on a shared machine wall-clock time also
    counts the time other processes hold the CPU, and the sides run at different moments)."""
    beaten: list[str] = []
    not_beaten: list[str] = []
    for side in others:
        recall_ok = ours.scores.recall >= side.scores.recall
        speedup = side.cpu_p50 / ours.cpu_p50
        speed_ok = side.speed_goal is None or speedup >= side.speed_goal
        (beaten if recall_ok and speed_ok else not_beaten).append(
            f"{side.name} (recall@{K} {side.scores.recall:.3f} vs ours {ours.scores.recall:.3f}"
            + (f", ours {speedup:.2f}x as fast at CPU p50, goal {side.speed_goal:g}x" if side.speed_goal else "")
            + ")"
        )
    met = "MET" if not not_beaten else "NOT MET"
    lines = [f"Goal on this set: {met}."]
    if beaten:
        lines.append("Ours beats: " + "; ".join(beaten) + ".")
    if not_beaten:
        lines.append("Ours does not beat: " + "; ".join(not_beaten) + ".")
    return " ".join(lines)


def _retrieval_table(table: type[Table], by_set: dict[str, list[Side]], rounds: int) -> Table:
    from attest.kb.schema import HEADING_WEIGHT

    def row(set_name: str, side: Side, ours: Side) -> tuple[str, ...]:
        s = side.scores
        return (
            f"{set_name} ({len(s.ranks)} qs)",
            side.name,
            f"{s.recall:.3f}",
            f"{s.recall_keyword:.3f}",
            f"{s.recall_natural:.3f}",
            f"{s.mrr:.3f}",
            f"{side.p50 * 1000:.2f}",
            f"{side.p99 * 1000:.2f}",
            f"{side.p50 / ours.p50:.2f}x",
            f"{side.p99 / ours.p99:.2f}x",
            f"{side.cpu_p50 * 1000:.2f}",
            f"{side.cpu_p50 / ours.cpu_p50:.2f}x",
            f"{side.first_p50 * 1000:.2f}",
            f"{side.setup_s:.2f}",
            f"{side.rss / MB:.0f}",
        )

    rows = [row(name, side, sides[0]) for name, sides in by_set.items() for side in sides]
    verdicts = " ".join(
        f"**{name}**, {label}: {verdict(sides[i], sides[2:])}"
        for name, sides in by_set.items()
        for i, label in ((0, "FTS5"), (1, "held in memory"))
    )
    return table(
        f"Knowledge-base search: recall@{K} and latency over the same chunks, tuning and held-out questions",
        (
            "question set",
            "retriever",
            f"recall@{K}",
            "keyword qs",
            "natural qs",
            f"MRR@{K}",
            "p50 (ms)",
            "p99 (ms)",
            "p50 vs ours",
            "p99 vs ours",
            "CPU p50 (ms)",
            "CPU p50 vs ours",
            "first-pass p50 (ms)",
            "index build (s)",
            "peak RSS (MB)",
        ),
        rows,
        f"Goal: on the held-out set, ours has at least the recall@{K} of every other retriever, a p50 at least "
        f"{SPEEDUP_GOAL:g}x lower than BM25Retriever's default (`text.split()`) and a p50 no higher than bm25s's and "
        "tantivy's, the fastest BM25 engines on PyPI, judged in CPU time per query (the "
        "sides run one after the other, and on a shared machine wall-clock time also counts other processes; "
        f"both are shown). {verdicts} "
        "Questions: bench/kb_questions.toml (ranking was tuned on it) and bench/kb_questions_holdout.toml "
        "(about other EIPs, written before the tuning, never tuned on), each labelled with the EIP file(s) that "
        f"answer it; recall@{K} is the share of questions with a chunk of a labelled file among the top {K}, "
        f"MRR@{K} the mean of 1/rank of the "
        f"first such chunk. Latency: each question {rounds} times after a first pass, one query at a time, "
        "timed in-process on an open KB (ours: `KnowledgeBase.search`, query parsing, SQL and result objects "
        f"included; rank_bm25: query tokenizing plus `get_top_n(n={K})`, the call BM25Retriever makes; bm25s: "
        "its tokenizer on the query plus `retrieve`; tantivy: `parse_query` plus `search` and reading each hit's "
        "stored position). "
        '"vs ours" is their latency over ours (above 1x: ours is faster). The first pass is timed on its own: '
        "each question's first run in the process, before any per-term figures a retriever keeps are warm "
        "(rank_bm25 computes every term's idf when it builds the index). All rows rank the identical chunks, "
        "exported from our store after ingest. Ours: FTS5 with porter stemming, `_` kept inside words (a "
        "snake_case identifier is one term) and stop words dropped, the file "
        f"name and heading path in a column weighted {HEADING_WEIGHT:g}x, terms OR-ed; exactly the BM25 top {K} of "
        "that OR query, found by stepping only through chunks that hold a term which can still reach the top. "
        "The `text.split()` row is what "
        "`BM25Retriever.from_texts` does unless given a `preprocess_func` (case and punctuation stay on the "
        "tokens); the lowercase-words rows are fairer to rank_bm25, and the last one also sees the file name and "
        "headings our index sees. bm25s and tantivy see the file name and headings too (tantivy in its own field, "
        "boosted as our column is). Index build: ours, the whole ingest (read, chunk, hash, insert, FTS index); "
        "the others, tokenizing and indexing our exported chunks. Peak RSS: ru_maxrss of each side's own process "
        "(ours: ingest + search; the others: chunk texts + index + their libraries), under a bare launcher of "
        "about 11 MB.",
    )


def _description_table(table: type[Table], sides: list[tuple[str, Scores]], front: int) -> Table:
    ours = sides[0][1]
    rows = [(name, f"{s.recall:.3f}", f"{s.mrr:.3f}", "yes" if ours.recall >= s.recall else "no") for name, s in sides]
    n = len(ours.ranks)
    return table(
        f"Knowledge-base search: recall@{K} of {n} EIP descriptions asking for their own EIP (no labelling)",
        ("retriever", f"recall@{K}", f"MRR@{K}", "ours at least as good"),
        rows,
        f"Each EIP whose front matter has a `description` gives one question: that sentence, answered by its own "
        f"file. The {front} front-matter chunks (which hold the description verbatim) are taken out of every "
        f"ranking before its top {K} is scored; each side ranks the top {DEEP} once. Neither written nor tuned by "
        "hand, so it complements the labelled sets with many more questions; phrased by the EIPs' authors, so it "
        "favours words the EIPs use. The tokenizer choice (`_` inside words) was checked on it as well as on "
        "the tuning set.",
    )


def _ingest_table(
    table: type[Table], sides: list[Side], documents: int, files: int, chunks: int, chunking: str
) -> Table:
    ours, memory, *theirs = sides
    rows = [
        (ours.name, "read, decode, chunk, hash, CID, insert + FTS index (one transaction)", f"{ours.setup_s:.2f}"),
        (memory.name, "read the FTS5 index of that KB into memory", f"{memory.setup_s:.2f}"),
    ]
    met = "MET" if ours.setup_s < INGEST_GOAL_S else "NOT MET"
    rows += [
        (side.name, "tokenize + build its index over our chunks (no reading, no chunking)", f"{side.setup_s:.2f}")
        for side in theirs
    ]
    return table(
        f"Knowledge-base ingest: {files} files of the EIP corpus, {documents} documents, {chunks} chunks",
        ("retriever", "what is timed", "seconds"),
        rows,
        f"Fresh KB in a temporary directory, files already in the page cache, {chunking}; files without a "
        "Markdown, text or HTML suffix (the corpus's SOURCE note) are skipped. "
        f"Goal: ours under {INGEST_GOAL_S:g} s: {met} ({ours.setup_s:.2f} s). The others "
        "have no ingest of their own; their rows are index construction over chunks we produced, so they are lower "
        "bounds of what a pipeline around them spends (it would also load and split the documents).",
    )


def main(argv: list[str]) -> None:
    for table in run(quick="--quick" in argv):
        print(table.markdown())


if __name__ == "__main__":
    main(sys.argv[1:])
