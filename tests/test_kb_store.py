"""The knowledge base store: ingest is all or nothing and idempotent, documents are named by the CID `ipfs add`
gives them, search is exactly BM25 over any text, and the manifest names the snapshot."""

from __future__ import annotations

import hashlib
import json
import random
import shutil
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
import rfc8785

from attest.errors import IngestError, KbError
from attest.ipfs.cid import CID
from attest.ipfs.local import LocalStore
from attest.ipfs.unixfs import cid_of
from attest.kb import MANIFEST_SCHEMA, ChunkParams, KnowledgeBase, fts_query, query_terms
from attest.kb.search import restricted_match, split_by_bound

FIXTURES = Path(__file__).parent / "fixtures" / "kb"
GOOD_SOURCES = ["good/guide.md", "good/nested/anchors.md", "good/notes.txt", "good/page.html"]


@pytest.fixture
def kb(tmp_path: Path) -> Iterator[KnowledgeBase]:
    with KnowledgeBase(tmp_path / "kb.sqlite3") as base:
        yield base


@pytest.fixture
def good(tmp_path: Path) -> Path:
    """A private copy of the good fixtures, free to edit."""
    return Path(shutil.copytree(FIXTURES / "good", tmp_path / "src" / "good"))


def snapshot(kb: KnowledgeBase) -> tuple[object, ...]:
    return tuple(kb.documents()), kb.stats().chunks, kb.manifest_cid()


# -- adding ----------------------------------------------------------------------------------------------
def test_a_folder_is_added_recursively_skipping_hidden_and_unsupported_files(kb: KnowledgeBase, good: Path) -> None:
    results = kb.add_path(good)
    assert [r.source for r in results] == GOOD_SOURCES
    assert {r.status for r in results} == {"added"} and all(r.chunks > 0 for r in results)
    docs = {d.source: d for d in kb.documents()}
    assert list(docs) == GOOD_SOURCES
    assert docs["good/page.html"].media_type == "text/html" and docs["good/page.html"].title == "Semaphore Signals"
    assert docs["good/notes.txt"].media_type == "text/plain"
    assert kb.search("kraken") == []  # only in .hidden.md and ignored.csv


def test_document_cids_are_the_cids_ipfs_add_gives(kb: KnowledgeBase, good: Path, tmp_path: Path) -> None:
    [result] = kb.add_path(good / "guide.md")
    data = (good / "guide.md").read_bytes()
    assert result.source == "guide.md"
    assert result.doc_cid == str(cid_of(data, cid_version=1)) == str(LocalStore(tmp_path / "ipfs").put(data))


def test_re_adding_unchanged_documents_is_a_no_op(kb: KnowledgeBase, good: Path) -> None:
    kb.add_path(good)
    before = (snapshot(kb), kb.chunks_without_embedding("m"))
    again = kb.add_path(good)
    assert {r.status for r in again} == {"unchanged"}
    assert (snapshot(kb), kb.chunks_without_embedding("m")) == before  # same rows, same chunk ids


def test_a_changed_document_replaces_its_chunks_and_their_embeddings(kb: KnowledgeBase, good: Path) -> None:
    kb.add_path(good)
    old_ids = [i for i, _ in kb.chunks_without_embedding("m")]
    kb.store_embeddings("m", [(i, [1.0, 0.0]) for i in old_ids])
    guide = good / "guide.md"
    guide.write_text(guide.read_text().replace("foghorn", "diaphone"))
    results = {r.source: r.status for r in kb.add_path(good)}
    assert results["good/guide.md"] == "replaced" and list(results.values()).count("unchanged") == 3
    assert kb.search("foghorn") == []
    [hit] = kb.search("diaphone", k=3)
    assert hit.source == "good/guide.md" and hit.doc_cid == str(cid_of(guide.read_bytes()))
    remaining = {i for i, _ in kb.embeddings("m")}
    assert remaining < set(old_ids)  # the replaced chunks' vectors went with them
    assert {i for i, _ in kb.chunks_without_embedding("m")}.isdisjoint(old_ids)


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("empty.md", "is empty"),
        ("latin1.txt", r"is not UTF-8 text \(byte 0xe9"),
        ("binary.png", "is binary"),
    ],
)
def test_bad_files_are_refused_with_a_clear_error(kb: KnowledgeBase, name: str, message: str) -> None:
    with pytest.raises(IngestError, match=message):
        kb.add_path(FIXTURES / "bad" / name)
    assert kb.documents() == []


def test_a_failed_ingest_leaves_the_kb_as_it_was(kb: KnowledgeBase, good: Path) -> None:
    kb.add_path(good)
    before = snapshot(kb)
    guide = good / "guide.md"
    guide.write_text(guide.read_text().replace("foghorn", "diaphone"))  # a valid change…
    (good / "zz-latin1.txt").write_bytes((FIXTURES / "bad" / "latin1.txt").read_bytes())  # …and a bad file
    with pytest.raises(IngestError, match=r"zz-latin1\.txt is not UTF-8"):
        kb.add_path(good)
    assert snapshot(kb) == before
    assert kb.search("foghorn")[0].source == "good/guide.md" and kb.search("diaphone") == []


def test_missing_paths_and_folders_without_documents_are_refused(kb: KnowledgeBase, tmp_path: Path) -> None:
    with pytest.raises(IngestError, match="does not exist"):
        kb.add_path(tmp_path / "nope")
    (tmp_path / "only").mkdir()
    (tmp_path / "only" / "data.csv").write_text("a,b\n")
    with pytest.raises(IngestError, match="holds no Markdown, text or HTML files"):
        kb.add_path(tmp_path / "only")


def test_add_document_takes_bytes_and_an_optional_media_type(kb: KnowledgeBase) -> None:
    result = kb.add_document("notes/release", b"# Release\n\nShip it on Friday.\n", "text/markdown")
    assert result.status == "added" and result.source == "notes/release"
    assert kb.documents()[0].media_type == "text/markdown"
    assert kb.add_document("notes/release", b"# Release\n\nShip it on Friday.\n").status == "unchanged"


# -- by CID ----------------------------------------------------------------------------------------------
def test_a_document_is_added_by_cid_from_a_store(kb: KnowledgeBase, tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "ipfs")
    data = (FIXTURES / "good" / "page.html").read_bytes()
    cid = store.put(data)
    result = kb.add_cid(str(cid), [store])
    assert (result.source, result.doc_cid, result.status) == (f"ipfs://{cid}", str(cid), "added")
    assert kb.documents()[0].media_type == "text/html"  # sniffed: a CID has no file name
    assert kb.add_cid(cid, [store]).status == "unchanged"


def test_a_cid_added_by_its_v0_name_is_stored_under_its_v1_cid(kb: KnowledgeBase, tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "ipfs")
    v0 = store.put(b"# Old style\n\nA CIDv0 document.\n", cid_version=0)
    result = kb.add_cid(v0, [store])
    assert result.source == f"ipfs://{v0}" and result.doc_cid == str(cid_of(b"# Old style\n\nA CIDv0 document.\n"))


def test_a_cid_nobody_has_or_that_fails_verification_is_refused(kb: KnowledgeBase, tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "ipfs")
    missing = cid_of(b"never stored")
    with pytest.raises(IngestError, match=f"cannot ingest {missing}: .*not found"):
        kb.add_cid(missing, [store])
    cid = store.put(b"# Tampered\n\nOriginal words.\n")
    [block] = [p for p in store.blocks_dir.rglob("*.data")]
    block.write_bytes(b"# Tampered\n\nSwapped words!!\n")
    with pytest.raises(IngestError, match="do not match"):
        kb.add_cid(cid, [store])
    with pytest.raises(IngestError, match="cannot ingest not-a-cid"):
        kb.add_cid("not-a-cid", [store])
    assert kb.documents() == []


def test_paths_and_cids_are_added_in_one_transaction(kb: KnowledgeBase, good: Path, tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "ipfs")
    with pytest.raises(IngestError):
        kb.add([good, cid_of(b"absent")], [store])
    assert kb.documents() == []
    present = store.put(b"plain words from ipfs\n")
    results = kb.add([good, present], [store])
    assert [r.source for r in results] == [*GOOD_SOURCES, f"ipfs://{present}"]


# -- removing --------------------------------------------------------------------------------------------
def test_remove_by_source_or_by_cid(kb: KnowledgeBase, good: Path) -> None:
    kb.add_path(good)
    kb.add_document("copy-of-notes.txt", (good / "notes.txt").read_bytes())
    assert kb.remove("good/guide.md") == ["good/guide.md"]
    assert kb.search("foghorn") == []
    notes_cid = str(cid_of((good / "notes.txt").read_bytes()))
    assert kb.remove(notes_cid) == ["copy-of-notes.txt", "good/notes.txt"]  # every source with those bytes
    assert [d.source for d in kb.documents()] == ["good/nested/anchors.md", "good/page.html"]
    with pytest.raises(KbError, match="neither a source nor a document CID"):
        kb.remove("good/guide.md")


# -- search ----------------------------------------------------------------------------------------------
def test_search_returns_cited_chunks_best_first(kb: KnowledgeBase, good: Path) -> None:
    kb.add_path(good)
    hits = kb.search("foghorn visibility nautical", k=3)
    assert hits[0].source == "good/guide.md" and "foghorn" in hits[0].text
    assert hits[0].sha256 == hashlib.sha256(hits[0].text.encode()).hexdigest()
    assert hits[0].doc_cid == str(cid_of((good / "guide.md").read_bytes()))
    assert hits[0].heading_path[0] == "Lighthouse Keeping Guide"
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True) and hits[0].score > 0
    assert hits[0] == kb.search("Foghorns, visibility; NAUTICAL!", k=3)[0]  # case, punctuation and stemming


@pytest.mark.parametrize(
    "query",
    ['"', "'", "AND", "OR NOT", "NEAR(a b)", "col:term", "*", "^start", "a + b - c", "(((", "{x}", "--", "\x00", ""],
)
def test_any_text_is_a_valid_query(kb: KnowledgeBase, good: Path, query: str) -> None:
    kb.add_path(good)
    hits = kb.search(query)
    assert isinstance(hits, list) and len(hits) <= 5


def test_query_terms_quote_words_and_turn_split_words_into_phrases() -> None:
    assert query_terms('What is "EIP-1559" base_fee?') == ['"eip 1559"', '"base_fee"']  # an identifier is one word
    assert query_terms("the of and") == ['"the"', '"of"', '"and"']  # stop words only when nothing else is left
    assert fts_query('say "hi"') == '"say" OR "hi"'
    assert query_terms("!!! ...") == [] and fts_query("") == ""


def test_a_match_in_a_heading_or_file_name_outranks_one_in_the_body(kb: KnowledgeBase) -> None:
    kb.add_document("a.md", b"# Zephyr\n\nA light breeze note with ordinary words in it.\n")
    kb.add_document("b.md", b"# Breeze\n\nThe zephyr is a light breeze note with words.\n")
    kb.add_document("mistral.md", b"# Winds\n\nA cold northerly wind of the Rhone valley.\n")
    assert [h.source for h in kb.search("zephyr")] == ["a.md", "b.md"]
    assert kb.search("mistral")[0].source == "mistral.md"


def test_the_same_bytes_under_two_sources_are_returned_once(kb: KnowledgeBase, good: Path) -> None:
    kb.add_document("one/notes.txt", (good / "notes.txt").read_bytes())
    kb.add_document("two/notes.txt", (good / "notes.txt").read_bytes())
    hits = kb.search("mooring kiosk slipway", k=5)
    assert [h.source for h in hits] == ["one/notes.txt"]


def test_k_must_be_positive(kb: KnowledgeBase) -> None:
    with pytest.raises(KbError, match="k must be at least 1"):
        kb.search("anything", k=0)


def zipf_corpus(rng: random.Random, documents: int, vocabulary: int = 1500) -> list[bytes]:
    words = [f"w{i}" for i in range(vocabulary)]
    weights = [1 / (i + 1) for i in range(vocabulary)]
    out = []
    for _ in range(documents):
        paragraphs = [" ".join(rng.choices(words, weights, k=rng.randint(20, 60))) + "." for _ in range(8)]
        out.append(("# " + " ".join(rng.choices(words, weights, k=3)) + "\n\n" + "\n\n".join(paragraphs)).encode())
    return out


def test_search_is_exactly_the_bm25_top_k_of_the_plain_or_query(tmp_path: Path) -> None:
    """The pruned search (ranking only chunks that can reach the top k) returns what ranking everything would."""
    rng = random.Random(11)
    with KnowledgeBase(tmp_path / "kb.sqlite3", ChunkParams(max_chars=200, overlap_chars=20)) as kb:
        kb.add([])  # an empty call commits nothing and fails nothing
        for i, data in enumerate(zipf_corpus(rng, 200)):
            kb.add_document(f"d{i}.md", data)
        assert kb.stats().chunks > 1000
        compare_with_plain_ranking(kb, rng)


def compare_with_plain_ranking(kb: KnowledgeBase, rng: random.Random) -> None:
    plain = sqlite3.connect(kb.path)
    pruned = 0
    for _ in range(60):
        words = [f"w{rng.randint(0, 12)}" for _ in range(rng.randint(1, 4))]
        words += [f"w{rng.randint(13, 1499)}" for _ in range(rng.randint(0, 4))]
        if rng.random() < 0.3:  # a phrase of two tokens, which FTS5 scores differently inside AND/NOT branches
            words.append(f"w{rng.randint(0, 12)}-w{rng.randint(0, 40)}")
        query = " ".join(words)
        k = rng.choice([1, 3, 5, 10])
        pruned += "NOT" in kb._match(query_terms(query), k)  # the restricted query was actually used
        expected = plain.execute(
            "SELECT d.source, c.idx, -bm25(chunks_fts, 4.0, 1.0) AS score FROM chunks_fts "
            "JOIN chunks c ON c.id = chunks_fts.rowid JOIN documents d ON d.id = c.document_id "
            "WHERE chunks_fts MATCH ? ORDER BY score DESC, d.source, c.idx LIMIT ?",
            (fts_query(query), k),
        ).fetchall()
        got = [(h.source, h.chunk_index, h.score) for h in kb.search(query, k=k)]
        assert [s for _, _, s in got] == pytest.approx([s for _, _, s in expected], rel=1e-9), query
        assert {(s, i) for s, i, _ in got} == {(s, i) for s, i, _ in expected}, query
    assert pruned > 10


def test_split_by_bound_keeps_out_the_weakest_terms_that_cannot_reach_the_threshold() -> None:
    bounds = {"a": 1.0, "b": 2.0, "c": 4.0, "d": 8.0}
    assert split_by_bound(list(bounds), bounds, 3.5) == (["c", "d"], ["a", "b"])
    assert split_by_bound(list(bounds), bounds, 3.0) == (["b", "c", "d"], ["a"])  # 1 + 2 is not below 3
    assert split_by_bound(list(bounds), bounds, 0.5) == (["a", "b", "c", "d"], [])
    assert restricted_match(['"c"'], ['"a"', '"b"']) == '((("c") OR ("a" OR "b")) NOT (("a" OR "b") NOT ("c")))'
    assert restricted_match(['"c"'], []) == '("c")'


def test_search_sees_documents_added_through_another_connection(tmp_path: Path) -> None:
    path = tmp_path / "kb.sqlite3"
    with KnowledgeBase(path) as reader, KnowledgeBase(path) as writer:
        writer.add_document("a.md", b"# A\n\nalbatross\n")
        assert [h.source for h in reader.search("albatross")] == ["a.md"]
        writer.add_document("b.md", b"# B\n\nalbatross albatross\n")
        assert {h.source for h in reader.search("albatross")} == {"a.md", "b.md"}


# -- reading back ----------------------------------------------------------------------------------------
def test_chunk_by_id_and_stats(kb: KnowledgeBase, good: Path) -> None:
    kb.add_path(good)
    chunk_id, text = kb.chunks_without_embedding("m")[0]
    chunk = kb.chunk(chunk_id)
    assert chunk.text == text and chunk.source == "good/guide.md" and chunk.chunk_index == 0
    with pytest.raises(KbError, match="not in the KB"):
        kb.chunk(10**9)
    stats = kb.stats()
    assert (stats.documents, stats.schema_version, stats.params) == (4, 3, ChunkParams())
    assert stats.bytes == sum((FIXTURES / s).stat().st_size for s in GOOD_SOURCES)
    assert stats.media_types == {"text/html": 1, "text/markdown": 2, "text/plain": 1}
    assert stats.chunks == len(kb.chunks_without_embedding("m")) and stats.file_bytes > 0
    assert json.loads(json.dumps(stats.as_dict()))["chunking"]["max_chars"] == 1500


def test_embeddings_round_trip_per_model(kb: KnowledgeBase, good: Path) -> None:
    kb.add_path(good)
    pending = kb.chunks_without_embedding("m1")
    first = [(pending[0][0], [0.5, -1.25, 3.0]), (pending[1][0], [1.0, 2.0, 4.0])]
    kb.store_embeddings("m1", first)
    assert kb.embeddings("m1") == first  # exact in float32
    assert [i for i, _ in kb.chunks_without_embedding("m1")] == [i for i, _ in pending[2:]]
    assert len(kb.chunks_without_embedding("m2")) == len(pending)
    assert kb.stats().embeddings == {"m1": 2}
    with pytest.raises(KbError, match="one non-zero dimension"):
        kb.store_embeddings("m1", [(pending[2][0], [1.0, 2.0])])
    with pytest.raises(KbError, match="one non-zero dimension"):
        kb.store_embeddings("m3", [(pending[2][0], [1.0]), (pending[3][0], [1.0, 2.0])])
    with pytest.raises(KbError, match="not in the KB"):
        kb.store_embeddings("m1", [(pending[2][0], [1.0, 1.0, 1.0]), (10**9, [1.0, 1.0, 1.0])])
    assert kb.embeddings("m1") == first  # the failed batch stored nothing


# -- the manifest ----------------------------------------------------------------------------------------
def test_manifest_lists_documents_and_chunking_and_is_pinned_canonically(
    kb: KnowledgeBase, good: Path, tmp_path: Path
) -> None:
    kb.add_path(good)
    manifest = kb.manifest()
    assert manifest["schema"] == MANIFEST_SCHEMA
    assert manifest["chunking"] == {"chunker": "attest.kb/heading-aware-v1", "max_chars": 1500, "overlap_chars": 200}
    assert [d["source"] for d in manifest["documents"]] == GOOD_SOURCES
    guide = manifest["documents"][0]
    assert guide["doc_cid"] == str(cid_of((good / "guide.md").read_bytes())) and guide["chunks"] >= 1
    store = LocalStore(tmp_path / "ipfs")
    cid = kb.pin_manifest(store)
    assert cid == kb.manifest_cid() and store.is_pinned(CID.parse(cid))
    assert store.get(CID.parse(cid)) == rfc8785.dumps(manifest) == kb.manifest_bytes()


def test_the_manifest_cid_names_the_content_not_the_history(tmp_path: Path, good: Path) -> None:
    with KnowledgeBase(tmp_path / "a.sqlite3") as a, KnowledgeBase(tmp_path / "b.sqlite3") as b:
        a.add_path(good)
        for source in reversed(GOOD_SOURCES):  # another order, one document at a time, under the same names
            b.add_document(source, (good.parent / source).read_bytes())
        assert a.manifest_cid() == b.manifest_cid()
        b.add_document("good/notes.txt", b"changed notes\n")
        assert a.manifest_cid() != b.manifest_cid()


# -- the file --------------------------------------------------------------------------------------------
def test_default_path_wal_and_migrations(attest_home: str) -> None:
    with KnowledgeBase() as base:
        assert base.path == Path(attest_home) / "kb.sqlite3"
    db = sqlite3.connect(Path(attest_home) / "kb.sqlite3")
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert [r[0] for r in db.execute("SELECT version FROM migrations")] == [1, 2, 3]
    with KnowledgeBase():  # reopening applies nothing twice
        pass
    assert db.execute("SELECT count(*) FROM migrations").fetchone()[0] == 3
    db.execute("INSERT INTO migrations VALUES (99, 'from the future', NULL)")
    db.commit()
    with pytest.raises(KbError, match="schema v99, newer than this release"):
        KnowledgeBase()


def test_snake_case_identifiers_are_one_word(kb: KnowledgeBase) -> None:
    kb.add_document("spec.md", b"# Spec\n\nThe header gains `max_fee_per_gas`, checked per block.\n")
    kb.add_document("prose.md", b"# Prose\n\nThe max fee per gas is what a sender pays at most.\n")
    assert [h.source for h in kb.search("max_fee_per_gas")] == ["spec.md"]
    assert [h.source for h in kb.search("max fee per gas")] == ["prose.md", "spec.md"]  # spec.md: "per" only
    assert [h.source for h in kb.search("fee")] == ["prose.md"]  # a word inside an identifier is not that word


def test_a_v1_kb_is_indexed_again_when_opened(tmp_path: Path, good: Path) -> None:
    """v1 split identifiers at `_`; opening it rebuilds the FTS index from the stored chunks, nothing else changes."""
    path = tmp_path / "kb.sqlite3"
    with KnowledgeBase(path) as base:
        base.add_path(good)
        base.add_document("ipfs://bafyexample", b"# Notes\n\nThe gas_limit_target is set by validators.\n")
        before = [(h.source, h.chunk_index, h.score) for h in base.search("foghorn visibility nautical", k=3)]
        cid = base.manifest_cid()
    db = sqlite3.connect(path)
    db.executescript(
        """
        DROP TABLE chunks_fts;
        CREATE VIRTUAL TABLE chunks_fts USING fts5(heading, body, tokenize = 'porter unicode61 remove_diacritics 2');
        INSERT INTO chunks_fts(rowid, heading, body) SELECT id, '', text FROM chunks;
        DROP TABLE governed_documents;
        DROP TABLE used_nonces;
        DELETE FROM migrations WHERE version >= 2;
        """
    )
    db.close()
    with KnowledgeBase(path) as base:
        assert [(h.source, h.chunk_index, h.score) for h in base.search("foghorn visibility nautical", k=3)] == before
        assert [h.source for h in base.search("gas_limit_target")] == ["ipfs://bafyexample"]
        assert base.manifest_cid() == cid and base.stats().schema_version == 3
    db = sqlite3.connect(path)
    assert "tokenchars" in db.execute("SELECT sql FROM sqlite_master WHERE name = 'chunks_fts'").fetchone()[0]
    assert [r[0] for r in db.execute("SELECT version FROM migrations")] == [1, 2, 3]


def test_a_file_that_is_not_a_kb_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "kb.sqlite3"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(KbError, match="not a readable knowledge base"):
        KnowledgeBase(path)


def test_chunking_parameters_belong_to_the_kb(tmp_path: Path) -> None:
    path = tmp_path / "kb.sqlite3"
    small = ChunkParams(max_chars=300, overlap_chars=30)
    with KnowledgeBase(path, small) as base:
        base.add_document("a.md", b"# A\n\n" + b"word " * 200)
    with KnowledgeBase(path) as base:
        assert base.params == small and base.manifest()["chunking"]["max_chars"] == 300
    with pytest.raises(KbError, match="chunked with max_chars=300"):
        KnowledgeBase(path, ChunkParams())
    with KnowledgeBase(tmp_path / "empty.sqlite3", small), KnowledgeBase(tmp_path / "empty.sqlite3") as base:
        assert base.params == small
    with KnowledgeBase(tmp_path / "empty.sqlite3", ChunkParams()) as base:  # nothing chunked yet: may change
        assert base.params == ChunkParams()
    with KnowledgeBase(tmp_path / "default.sqlite3") as base:  # the defaults are remembered too
        base.add_document("a.md", b"# A\n\nwords\n")
    with pytest.raises(KbError, match="chunked with max_chars=1500"):
        KnowledgeBase(tmp_path / "default.sqlite3", small)


def test_the_index_held_in_memory_follows_changes_to_the_kb(tmp_path: Path) -> None:
    path = tmp_path / "kb.sqlite3"
    with KnowledgeBase(path) as base:
        base.add_document("a.md", b"# Alpha\n\nThe alpha fee rises with demand.\n")
        base.hold_in_memory()
        assert [hit.source for hit in base.search("fee")] == ["a.md"]
        base.add_document("b.md", b"# Fee\n\nThe fee is burned.\n")  # our own commit
        assert [hit.source for hit in base.search("fee")] == ["b.md", "a.md"]
        with KnowledgeBase(path) as other:  # another connection's commit
            other.add_document("c.md", b"# Fee fee\n\nA fee, a fee.\n")
        assert base.search("fee")[0].source == "c.md"
        base.remove("c.md")
        assert [hit.source for hit in base.search("fee")] == ["b.md", "a.md"]
        assert base.search("nothing here") == []
