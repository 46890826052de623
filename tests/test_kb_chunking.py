"""Chunking: every chunk is an exact, hashed slice of the normalized document, cut at headings and at the best
boundary within the size bound, with overlap, never inside a code fence while another cut exists."""

from __future__ import annotations

import hashlib
import itertools
import random
from pathlib import Path

import pytest

from attest.errors import IngestError, KbError
from attest.kb.chunking import (
    Chunk,
    ChunkParams,
    chunk_html,
    chunk_markdown,
    chunk_text,
    decode,
    html_to_text,
    parse_document,
    sniff,
)
from attest.kb.outline import markdown_outline, normalize

GOOD = Path(__file__).parent / "fixtures" / "kb" / "good"
BAD = Path(__file__).parent / "fixtures" / "kb" / "bad"
SMALL = ChunkParams(max_chars=120, overlap_chars=20)


def assert_exact_slices(chunks: list[Chunk], text: str, params: ChunkParams) -> None:
    assert [c.index for c in chunks] == list(range(len(chunks)))
    for chunk in chunks:
        assert chunk.text == text[chunk.start : chunk.end]
        assert chunk.sha256 == hashlib.sha256(chunk.text.encode("utf-8")).hexdigest()
        assert chunk.text == chunk.text.strip() and chunk.text
        assert len(chunk.text) <= params.max_chars


def covered(chunks: list[Chunk], text: str) -> bool:
    """Every non-space character of `text` lies in some chunk."""
    mask = [False] * len(text)
    for chunk in chunks:
        mask[chunk.start : chunk.end] = [True] * (chunk.end - chunk.start)
    return all(m or ch.isspace() for m, ch in zip(mask, text, strict=True))


def random_document(rng: random.Random, size: int) -> str:
    words = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta", "iota", "kappa"]
    parts: list[str] = []
    while sum(map(len, parts)) < size:
        roll = rng.random()
        if roll < 0.05:
            parts.append(f"\n\n{'#' * rng.randint(1, 4)} Heading {rng.randint(0, 99)}\n\n")
        elif roll < 0.08:
            body = "\n".join(" ".join(rng.choices(words, k=rng.randint(1, 12))) for _ in range(rng.randint(1, 30)))
            parts.append(f"\n\n```\n{body}\n```\n\n")
        else:
            sentence = " ".join(rng.choices(words, k=rng.randint(3, 25))).capitalize() + rng.choice([". ", "? ", "\n"])
            parts.append(sentence + ("\n\n" if rng.random() < 0.2 else ""))
    return "".join(parts)


# -- invariants over many documents --------------------------------------------------------------------------
@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize("params", [ChunkParams(), ChunkParams(300, 60), ChunkParams(100, 0), SMALL])
def test_chunks_are_exact_hashed_bounded_slices_that_cover_the_document(seed: int, params: ChunkParams) -> None:
    text = random_document(random.Random(seed), 6000)
    for chunks in (chunk_markdown(text, params), chunk_text(text, params)):
        assert_exact_slices(chunks, normalize(text), params)
        assert covered(chunks, normalize(text))


@pytest.mark.parametrize("name", ["guide.md", "notes.txt", "page.html", "nested/anchors.md"])
def test_fixture_documents_chunk_into_exact_slices(name: str) -> None:
    for params in (ChunkParams(), SMALL):
        doc = parse_document((GOOD / name).read_bytes(), name, None, params)
        assert_exact_slices(list(doc.chunks), doc.text, params)
        assert covered(list(doc.chunks), doc.text)


def test_long_sections_split_with_bounded_overlap_at_sentence_boundaries() -> None:
    sentences = [f"Sentence number {i} says something about lighthouses." for i in range(60)]
    text = "## Long\n\n" + " ".join(sentences)
    params = ChunkParams(max_chars=400, overlap_chars=80)
    chunks = chunk_markdown(text, params)
    assert len(chunks) > 5
    for before, after in itertools.pairwise(chunks):
        overlap = before.end - after.start
        assert 0 < overlap <= params.overlap_chars
        assert after.text.startswith("Sentence number")  # pieces start at a sentence, not mid-word
        assert before.text.endswith(".")
    assert all(c.heading_path == ("Long",) for c in chunks)


def test_overlap_zero_gives_disjoint_pieces() -> None:
    text = " ".join(f"word{i}" for i in range(2000))
    chunks = chunk_text(text, ChunkParams(max_chars=200, overlap_chars=0))
    assert all(a.end <= b.start for a, b in itertools.pairwise(chunks))
    assert all(not c.text.startswith(" ") and c.text.split()[0].startswith("word") for c in chunks)


def test_text_without_any_break_is_cut_hard_at_the_bound() -> None:
    text = "x" * 1000
    chunks = chunk_text(text, ChunkParams(max_chars=300, overlap_chars=50))
    assert all(len(c.text) <= 300 for c in chunks) and covered(chunks, text)


# -- headings --------------------------------------------------------------------------------------------
def test_heading_paths_follow_nesting_and_front_matter_title() -> None:
    doc = parse_document((GOOD / "guide.md").read_bytes(), "guide.md", None, SMALL)
    assert doc.title == "Lighthouse Keeping Guide"
    paths = {c.heading_path for c in doc.chunks}
    root = ("Lighthouse Keeping Guide",)
    assert paths == {root, (*root, "Lamp", "Wick trimming"), (*root, "Lamp", "Lens cleaning"), (*root, "Fog signals")}
    front = doc.chunks[0]
    assert front.heading_path == root and front.text.startswith("---\ntitle: Lighthouse Keeping Guide\n")
    # A heading with no text of its own is glued to the next chunk rather than becoming a chunk of its own.
    wick = next(c for c in doc.chunks if c.heading_path[-1:] == ("Wick trimming",))
    assert wick.text.startswith("## Lamp\n\n### Wick trimming")


def headings(text: str) -> list[tuple[int, str]]:
    return [(h.level, h.title) for h in markdown_outline(normalize(text)).headings]


def test_a_hash_line_inside_a_code_fence_is_not_a_heading() -> None:
    doc = parse_document((GOOD / "guide.md").read_bytes(), "guide.md", None, SMALL)
    assert not any("this line is code" in part for c in doc.chunks for part in c.heading_path)
    text = "# Top\n\n~~~~\n# inside\n~~~\n## still inside\n~~~~\n\n## Out\n\nbody\n```\n# unclosed fence\n"
    assert headings(text) == [(1, "Top"), (2, "Out")]
    assert headings("# A\n\n``` not a fence: ``` inline\n# B\n") == [(1, "A"), (1, "B")]


def test_setext_headings_and_closing_hashes() -> None:
    text = "Title\n=====\n\nintro text\n\nPart two\n--------\n\nmore text\n\n### Third ###\n\nlast\n#7 not a heading\n"
    assert headings(text) == [(1, "Title"), (2, "Part two"), (3, "Third")]
    # Dashes under a list item or a table row are not setext underlines; neither, conservatively, are dashes
    # under a paragraph of several lines (CommonMark would make that paragraph a heading).
    assert headings("# A\n\n- item\n---\n\n| x |\n|---|\n\none\ntwo\n---\n") == [(1, "A")]
    params = ChunkParams(max_chars=100, overlap_chars=10)
    paths = [c.heading_path for c in chunk_markdown(text.replace("text", "text " + "words " * 12), params)]
    assert paths == [("Title",), ("Title", "Part two"), ("Title", "Part two", "Third")]


def test_small_sections_share_a_chunk_under_their_common_path() -> None:
    text = "# Doc\n\n## One\n\nshort one\n\n## Two\n\nshort two\n"
    [chunk] = chunk_markdown(text, ChunkParams())
    assert chunk.heading_path == ("Doc",)
    assert "## One" in chunk.text and "## Two" in chunk.text


def test_fences_are_not_cut_while_another_boundary_exists() -> None:
    code = "\n".join(f"line_{i} = {i}" for i in range(20))  # ~260 chars, blank-line free
    text = "## S\n\n" + "Intro sentence here. " * 8 + "\n\n```python\n" + code + "\n```\n\n" + "Tail text. " * 20
    params = ChunkParams(max_chars=400, overlap_chars=40)
    fence_start = text.index("```python")
    fence_end = text.index("```\n\n", fence_start + 3) + 3
    chunks = chunk_markdown(text, params)
    assert len(chunks) > 1
    assert not any(fence_start < c.end < fence_end for c in chunks)


def test_a_fence_longer_than_the_bound_is_split_at_its_lines() -> None:
    code = "\n".join(f"value_{i} = compute({i})" for i in range(200))
    text = f"## Code\n\n```\n{code}\n```\n"
    chunks = chunk_markdown(text, ChunkParams(max_chars=500, overlap_chars=50))
    assert len(chunks) > 3
    for chunk in chunks[:-1]:
        assert text[chunk.end] == "\n"  # cut at a line end


# -- HTML ------------------------------------------------------------------------------------------------
def test_html_keeps_text_headings_and_pre_and_drops_scripts_and_styles() -> None:
    html = (GOOD / "page.html").read_text()
    text, title = html_to_text(html)
    assert title == "Semaphore Signals"
    assert "zebrafish" not in text and "color: red" not in text
    assert "two hand-held flags & arm positions." in text  # inline tags joined, entities decoded
    assert "A  = 1\nB  = 2" in text  # <pre> verbatim
    assert "- Hold flags at arm's length.\n- Pause between words." in text
    chunks = chunk_html(html, SMALL)
    assert {c.heading_path for c in chunks} == {("Semaphore Signals",), ("Semaphore Signals", "Numerals")}
    assert_exact_slices(chunks, text, SMALL)
    # Sloppy markup loses no text: an unclosed heading ends at the next one, or at the end of the page.
    assert html_to_text("<h2>First<p>body one<h2>Second</h2><p>body two<h3>Last") == (
        "First body one\n\nSecond\n\nbody two\n\nLast",
        "",
    )


# -- decoding and media types ----------------------------------------------------------------------------
def test_empty_and_whitespace_only_documents_are_refused() -> None:
    with pytest.raises(IngestError, match="empty"):
        decode((BAD / "empty.md").read_bytes(), "empty.md")
    with pytest.raises(IngestError, match="empty"):
        decode(b" \n\t\n", "blank.txt")
    with pytest.raises(IngestError, match="empty"):
        decode(b"\xef\xbb\xbf\n", "bom-only.txt")


def test_binary_documents_are_refused() -> None:
    with pytest.raises(IngestError, match="binary"):
        decode((BAD / "binary.png").read_bytes(), "binary.png")
    with pytest.raises(IngestError, match="binary"):
        decode(b"text" + bytes(range(1, 9)) * 4, "controls.txt")


def test_latin1_is_refused_with_the_offending_byte_and_a_fix() -> None:
    with pytest.raises(IngestError, match=r"not UTF-8 text \(byte 0xe9 at offset 3\).*iconv"):
        decode((BAD / "latin1.txt").read_bytes(), "latin1.txt")


def test_bom_crlf_and_utf16_are_normalized() -> None:
    assert decode(b"\xef\xbb\xbfa\r\nb\rc\n", "x.txt") == "a\nb\nc\n"
    assert decode("héllo\r\n".encode("utf-16"), "x.txt") == "héllo\n"


def test_media_types_from_suffix_or_content() -> None:
    html = b"<!doctype html><title>T</title><h1>Head</h1><p>Body</p>"
    assert parse_document(html, "ipfs://x", None, SMALL).media_type == "text/html"
    assert parse_document(b"# Head\n\nBody\n", "ipfs://x", None, SMALL).media_type == "text/markdown"
    assert parse_document(b"just words\n", "ipfs://x", None, SMALL).media_type == "text/plain"
    assert parse_document(b"# not md\n", "x.txt", None, SMALL).media_type == "text/plain"
    assert parse_document(b"# Head\n", "x.txt", "text/markdown; charset=utf-8", SMALL).media_type == "text/markdown"
    assert sniff("---\ntitle: x\n---\n") == "text/markdown"
    with pytest.raises(IngestError, match="not supported"):
        parse_document(b"{}", "x.json", "application/json", SMALL)


def test_plain_text_has_a_title_but_no_heading_path() -> None:
    doc = parse_document((GOOD / "notes.txt").read_bytes(), "notes.txt", None, SMALL)
    assert doc.title == "Harbour notes"
    assert all(c.heading_path == () for c in doc.chunks)


def test_parameters_are_validated() -> None:
    with pytest.raises(KbError, match="max_chars"):
        ChunkParams(max_chars=50)
    with pytest.raises(KbError, match="overlap_chars"):
        ChunkParams(max_chars=400, overlap_chars=200)
    with pytest.raises(KbError, match="overlap_chars"):
        ChunkParams(overlap_chars=-1)
