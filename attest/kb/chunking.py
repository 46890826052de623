"""Documents to cited chunks, without I/O: decode, outline (headings, code fences, front matter), split.

A chunk is always an exact slice of the document's normalized text (UTF-8 decoded, newlines as `\\n`), so
`text == document[start:end]` and a citation can be checked against the document. Sections start at headings
and carry the path of headings above them; a section longer than `max_chars` is split at the best boundary
available (blank line, line, sentence, word), never inside a fenced code block while another choice exists,
and the next piece starts `overlap_chars` earlier so a fact cut at a boundary is whole in one of the two.
Consecutive sections small enough to fit together share one chunk, under the heading path they have in
common. YAML front matter is a section of its own (its `title` roots every heading path), HTML is read as
text with its h1…h6 as headings and <pre> as fences, and plain text is split like one long section.
"""

from __future__ import annotations

import bisect
import hashlib
import re
from dataclasses import dataclass
from pathlib import PurePosixPath

from attest.errors import IngestError, KbError
from attest.kb.outline import Outline, first_line, html_outline, markdown_outline, normalize

# Bumped whenever the same text and parameters would give different chunks: it goes into the corpus manifest.
CHUNKER = "attest.kb/heading-aware-v1"

MARKDOWN = "text/markdown"
PLAIN = "text/plain"
HTML = "text/html"
MEDIA_TYPES = (MARKDOWN, PLAIN, HTML)
SUFFIXES = {
    ".md": MARKDOWN,
    ".markdown": MARKDOWN,
    ".txt": PLAIN,
    ".text": PLAIN,
    ".html": HTML,
    ".htm": HTML,
    ".xhtml": HTML,
}


@dataclass(frozen=True)
class ChunkParams:
    max_chars: int = 1500
    overlap_chars: int = 200

    def __post_init__(self) -> None:
        if self.max_chars < 100:
            raise KbError(f"max_chars must be at least 100 (got {self.max_chars})")
        if not 0 <= self.overlap_chars < self.max_chars // 2:
            raise KbError(f"overlap_chars must be between 0 and max_chars/2 (got {self.overlap_chars})")


@dataclass(frozen=True)
class Chunk:
    index: int  # position within the document, from 0
    text: str  # exactly document_text[start:end]
    start: int
    end: int
    heading_path: tuple[str, ...]
    sha256: str  # of `text` encoded as UTF-8


@dataclass(frozen=True)
class ParsedDocument:
    media_type: str
    title: str
    text: str  # the normalized text every chunk's offsets point into
    chunks: tuple[Chunk, ...]


# -- decoding ------------------------------------------------------------------------------------------------
_CONTROL = re.compile(r"[\x00-\x08\x0e-\x1f\x7f]")


def decode(data: bytes, name: str) -> str:
    """UTF-8 (or UTF-16 with a byte order mark) text, or an IngestError saying what the bytes are instead."""
    if not data.strip():
        raise IngestError(f"{name} is empty; there is nothing to ingest")
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            text = data.decode("utf-16")
        except UnicodeDecodeError:
            raise IngestError(f"{name} starts like UTF-16 but does not decode as it; save it as UTF-8") from None
    else:
        if b"\x00" in data:
            raise IngestError(
                f"{name} is binary (it contains NUL bytes); only Markdown, plain text and HTML can be ingested"
            )
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as err:
            raise IngestError(
                f"{name} is not UTF-8 text (byte 0x{data[err.start]:02x} at offset {err.start}); "
                "convert it first, e.g. `iconv -f latin1 -t utf-8`"
            ) from None
    text = normalize(text)
    if len(_CONTROL.findall(text[:65536])) > 8:
        raise IngestError(f"{name} is binary (it is full of control characters); only text can be ingested")
    if not text.strip():
        raise IngestError(f"{name} is empty; there is nothing to ingest")
    return text


def media_type_for(name: str) -> str | None:
    return SUFFIXES.get(PurePosixPath(name).suffix.lower())


def sniff(text: str) -> str:
    head = text.lstrip()[:256].lower()
    if head.startswith(("<!doctype html", "<html")):
        return HTML
    if text.startswith("---\n") or re.search(r"^#{1,6}[ \t]", text, re.MULTILINE):
        return MARKDOWN
    return PLAIN


def parse_document(data: bytes, name: str, media_type: str | None, params: ChunkParams) -> ParsedDocument:
    """Decode and chunk one document; `name` only names it in errors and guides the media type."""
    text = decode(data, name)
    kind = media_type.split(";")[0].strip().lower() if media_type else (media_type_for(name) or sniff(text))
    if kind == MARKDOWN:
        outline = markdown_outline(text)
    elif kind == PLAIN:
        outline = Outline(text, title=first_line(text), title_heads_path=False)
    elif kind == HTML:
        outline = html_outline(text)
    else:
        raise IngestError(f"{name}: media type {kind!r} is not supported; use one of {', '.join(MEDIA_TYPES)}")
    chunks = _chunk_outline(outline, params)
    if not chunks:
        raise IngestError(f"{name} has no text to ingest")
    return ParsedDocument(kind, outline.title, outline.text, tuple(chunks))


# -- sections and splitting ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Section:
    start: int
    end: int
    path: tuple[str, ...]


def _sections(outline: Outline) -> list[_Section]:
    text = outline.text
    root = (outline.title,) if outline.title and outline.title_heads_path else ()
    sections: list[_Section] = []
    if outline.prelude is not None:
        sections.append(_Section(*outline.prelude, root))
    bounds = [h.start for h in outline.headings] + [len(text)]
    if outline.body_start < bounds[0]:
        sections.append(_Section(outline.body_start, bounds[0], root))
    stack: list[tuple[int, str]] = []
    carried: int | None = None  # start of a heading with no text of its own, glued to the next section
    for i, heading in enumerate(outline.headings):
        while stack and stack[-1][0] >= heading.level:
            stack.pop()
        if stack or heading.title != outline.title:  # a top heading repeating the title adds nothing
            stack.append((heading.level, heading.title))
        path = root + tuple(title for _, title in stack if title)
        end = bounds[i + 1]
        start = heading.start if carried is None else carried
        nxt = outline.headings[i + 1] if i + 1 < len(outline.headings) else None
        if nxt is not None and not text[heading.body : end].strip():
            carried = start
            continue
        carried = None
        sections.append(_Section(start, end, path))
    return sections


class _Splitter:
    def __init__(self, text: str, fences: list[tuple[int, int]], params: ChunkParams) -> None:
        self.text = text
        self.fence_starts = [s for s, _ in fences]
        self.fences = fences
        self.max = params.max_chars
        self.overlap = params.overlap_chars
        self.min_piece = max(params.max_chars // 4, params.overlap_chars + 1)

    def in_fence(self, pos: int) -> bool:
        i = bisect.bisect_left(self.fence_starts, pos) - 1
        return i >= 0 and self.fences[i][0] < pos < self.fences[i][1]

    def split(self, start: int, end: int) -> list[tuple[int, int]]:
        text = self.text
        pieces: list[tuple[int, int]] = []
        s = _skip_space(text, start, end)
        while s < end:
            e = _strip_end(text, s, end)
            if e - s <= self.max:
                pieces.append((s, e))
                break
            cut = self.best_cut(s, s + self.max)
            pieces.append((s, _strip_end(text, s, cut)))
            s = _skip_space(text, self.overlap_start(s, cut), end)
        return pieces

    def best_cut(self, s: int, limit: int) -> int:
        """The end of the next piece, in (s, limit]: the last good boundary after the first quarter."""
        text, lo = self.text, s + self.min_piece
        for sep, outside in (("\n\n", True), ("\n", True), ("\n", False)):
            i = text.rfind(sep, lo, limit)
            while i >= 0 and outside and self.in_fence(i + 1):
                i = text.rfind(sep, lo, i)
            if i >= 0:
                return i + 1
        sentence = max(text.rfind(mark, lo, limit) for mark in (". ", "? ", "! ", "; "))
        if sentence >= 0:
            return sentence + 1
        space = max(text.rfind(" ", lo, limit), text.rfind("\t", lo, limit))
        return space if space > s else limit

    def overlap_start(self, s: int, cut: int) -> int:
        """Where the next piece starts: `overlap` before the cut, moved forward to a line, sentence or word."""
        if not self.overlap:
            return cut
        text, target = self.text, max(cut - self.overlap, s + 1)
        line = text.find("\n", target - 1, cut - 1)
        if line >= 0:
            return line + 1
        sentence = [i for i in (text.find(m, target - 1, cut - 1) for m in (". ", "? ", "! ", "; ")) if i >= 0]
        if sentence:
            return min(sentence) + 2
        space = text.find(" ", target - 1, cut - 1)
        return space + 1 if space >= 0 else target


def _skip_space(text: str, pos: int, end: int) -> int:
    while pos < end and text[pos].isspace():
        pos += 1
    return pos


def _strip_end(text: str, start: int, end: int) -> int:
    while end > start and text[end - 1].isspace():
        end -= 1
    return end


def _common(a: tuple[str, ...], b: tuple[str, ...]) -> tuple[str, ...]:
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return a[:n]


def _chunk_outline(outline: Outline, params: ChunkParams) -> list[Chunk]:
    """Sections split to size; consecutive whole sections that fit in one chunk together share it.

    Packing small sections keeps chunks near the size a reader (and BM25) wants instead of one per short
    heading; a packed chunk's heading path is what its sections have in common, and its text keeps their
    headings.
    """
    splitter = _Splitter(outline.text, outline.fences, params)
    spans: list[tuple[int, int, tuple[str, ...], bool]] = []  # start, end, heading path, a whole section
    for section in _sections(outline):
        pieces = splitter.split(section.start, section.end)
        whole = len(pieces) == 1
        for start, end in pieces:
            if whole and spans and spans[-1][3] and end - spans[-1][0] <= params.max_chars:
                first, _, path, _ = spans[-1]
                spans[-1] = (first, end, _common(path, section.path), True)
            else:
                spans.append((start, end, section.path, whole))
    chunks: list[Chunk] = []
    for start, end, path, _ in spans:
        piece = outline.text[start:end]
        chunks.append(Chunk(len(chunks), piece, start, end, path, hashlib.sha256(piece.encode("utf-8")).hexdigest()))
    return chunks


# -- the public shortcuts ------------------------------------------------------------------------------------
def chunk_markdown(text: str, params: ChunkParams | None = None) -> list[Chunk]:
    """Heading-aware chunks of Markdown; offsets point into `normalize(text)`."""
    return _chunk_outline(markdown_outline(normalize(text)), params or ChunkParams())


def chunk_text(text: str, params: ChunkParams | None = None) -> list[Chunk]:
    """Chunks of plain text, split at paragraphs, lines, sentences or words; offsets into `normalize(text)`."""
    return _chunk_outline(Outline(normalize(text)), params or ChunkParams())


def html_to_text(html: str) -> tuple[str, str]:
    """The readable text of an HTML page and its title; headings stay on lines of their own."""
    outline = html_outline(normalize(html))
    return outline.text, outline.title


def chunk_html(html: str, params: ChunkParams | None = None) -> list[Chunk]:
    """Chunks of an HTML page's text (see `html_to_text`), with its h1…h6 as heading paths."""
    return _chunk_outline(html_outline(normalize(html)), params or ChunkParams())
