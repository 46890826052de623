"""A document's outline, without I/O: where its headings, code fences and front matter are in its normalized
text (Markdown), or the readable text and headings of an HTML page. attest.kb.chunking splits along it."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import ClassVar


def normalize(text: str) -> str:
    """Without a byte-order mark, with `\n` line ends: the text every chunk offset points into."""
    return text.removeprefix("\ufeff").replace("\r\n", "\n").replace("\r", "\n")


@dataclass(frozen=True)
class Heading:
    start: int  # where the heading's (first) line starts
    body: int  # where the text after the heading starts
    level: int
    title: str


@dataclass
class Outline:
    text: str
    title: str = ""
    headings: list[Heading] = field(default_factory=list)
    fences: list[tuple[int, int]] = field(default_factory=list)  # code blocks no split should cut, sorted
    prelude: tuple[int, int] | None = None  # front matter, its own chunk
    body_start: int = 0
    title_heads_path: bool = True  # a declared title (front matter, <title>) roots every heading path


_ATX = re.compile(r" {0,3}(#{1,6})(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*\n?")
_FENCE = re.compile(r" {0,3}(`{3,}|~{3,})")
_SETEXT = re.compile(r" {0,3}(={2,}|-{2,})[ \t]*\n?")
_NOT_PARAGRAPH = re.compile(r" {0,3}(?:[-*+>|]|\d+[.)]|<|    )")


def first_line(text: str) -> str:
    for line in text.splitlines():
        if line.strip():
            return line.strip()[:200]
    return ""


_FRONT_KEY = re.compile(r"[\w-]+[ \t]*:")
_FRONT_END = re.compile(r"^(?:---|\.\.\.)[ \t]*$\n?", re.MULTILINE)


def _front_matter(text: str) -> tuple[dict[str, str], tuple[int, int], int] | None:
    """YAML front matter's top-level `key: value` pairs, its span (delimiters included), and where the body starts."""
    if not text.startswith("---\n") or not _FRONT_KEY.match(text, 4):
        return None
    match = _FRONT_END.search(text, 4)
    if match is None:
        return None
    fields: dict[str, str] = {}
    for line in text[4 : match.start()].splitlines():
        key, sep, value = line.partition(":")
        if sep and key and not key[0].isspace():
            fields[key.strip().lower()] = value.strip().strip("'\"")
    return fields, (0, match.end()), match.end()


def markdown_outline(text: str) -> Outline:
    outline = Outline(text)
    front = _front_matter(text)
    if front is not None:
        fields, outline.prelude, outline.body_start = front
        outline.title = fields.get("title", "")
    pos = outline.body_start
    fence: tuple[str, int, int] | None = None  # (char, length, start) of the open fence
    prev_blank, prev_text_start = True, -1
    while pos < len(text):
        nl = text.find("\n", pos)
        end = len(text) if nl < 0 else nl + 1
        line = text[pos:end]
        if fence is not None:
            closing = _FENCE.match(line)
            if (
                closing
                and closing.group(1)[0] == fence[0]
                and len(closing.group(1)) >= fence[1]
                and not line[closing.end() :].strip()
            ):
                outline.fences.append((fence[2], end))
                fence = None
            pos = end
            continue
        opening = _FENCE.match(line)
        if opening and not (opening.group(1)[0] == "`" and "`" in line[opening.end() :]):
            fence = (opening.group(1)[0], len(opening.group(1)), pos)
            prev_blank, prev_text_start = True, -1
            pos = end
            continue
        atx = _ATX.fullmatch(line)
        setext = _SETEXT.fullmatch(line)
        if atx:
            outline.headings.append(Heading(pos, end, len(atx.group(1)), (atx.group(2) or "").strip()))
            prev_blank, prev_text_start = True, -1
        elif setext and prev_text_start >= 0:
            title = text[prev_text_start:pos].strip()
            outline.headings.append(Heading(prev_text_start, end, 1 if setext.group(1)[0] == "=" else 2, title))
            prev_blank, prev_text_start = True, -1
        else:
            blank = not line.strip()
            # A setext underline only counts under a one-line paragraph that cannot be a list, quote or table.
            starts_paragraph = not blank and prev_blank and not _NOT_PARAGRAPH.match(line)
            prev_text_start = pos if starts_paragraph else -1
            prev_blank = blank
        pos = end
    if fence is not None:  # an unclosed fence runs to the end, as CommonMark renders it
        outline.fences.append((fence[2], len(text)))
    if not outline.title:
        outline.title = next((h.title for h in outline.headings if h.level == 1), "")
    return outline


class _HtmlToText(HTMLParser):
    """Readable text with headings on lines of their own (recorded for the outline) and <pre> kept verbatim."""

    _SKIP = frozenset({"script", "style", "noscript", "template", "svg", "iframe", "object", "canvas"})
    _BLOCK = frozenset(
        {
            "p", "div", "section", "article", "main", "header", "footer", "nav", "aside", "blockquote", "ul",
            "ol", "dl", "table", "figure", "form", "fieldset", "details", "summary", "hr", "address",
        }
    )  # fmt: skip
    _LINE = frozenset({"br", "li", "tr", "dt", "dd", "figcaption", "caption"})
    _HEADINGS: ClassVar[dict[str, int]] = {"h1": 1, "h2": 2, "h3": 3, "h4": 4, "h5": 5, "h6": 6}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.size = 0
        self.headings: list[Heading] = []
        self.fences: list[tuple[int, int]] = []
        self.title = ""
        self._skip = 0
        self._in_title = False
        self._pre = 0
        self._pre_start = 0
        self._heading: tuple[int, list[str]] | None = None

    @property
    def text(self) -> str:
        return "".join(self.parts)

    def _emit(self, text: str) -> None:
        if text:
            self.parts.append(text)
            self.size += len(text)

    def _ends_with_space(self) -> bool:
        return not self.parts or self.parts[-1].endswith((" ", "\n"))

    def _break(self, blank: bool) -> None:
        """End the current line (and leave a blank line after it when `blank`), dropping trailing spaces."""
        while self.parts and self.parts[-1].endswith(" "):
            last = self.parts.pop()
            self.size -= len(last)
            self._emit(last.rstrip(" "))
        if not self.parts:
            return
        tail = "".join(self.parts[-2:])[-2:]
        have = 2 if tail == "\n\n" else 1 if tail.endswith("\n") else 0
        self._emit("\n" * ((2 if blank else 1) - have))

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self._SKIP:
            self._skip += 1
        elif tag == "title":
            self._in_title = True
        elif tag in self._HEADINGS:
            self.end_heading()  # a heading left open ends where the next one starts
            self._break(True)
            self._heading = (self._HEADINGS[tag], [])
        elif tag == "pre":
            if not self._pre:
                self._break(True)
                self._pre_start = self.size
            self._pre += 1
        elif self._heading is not None and (tag in self._BLOCK or tag in self._LINE):
            self._heading[1].append(" ")  # block markup inside a heading stays part of its one line
        elif tag in self._BLOCK:
            self._break(True)
        elif tag in self._LINE:
            self._break(False)
            if tag == "li":
                self._emit("- ")
        elif tag in ("td", "th") and not self._ends_with_space():
            self._emit(" ")

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self._LINE or tag == "hr":
            self._break(tag == "hr")

    def handle_endtag(self, tag: str) -> None:
        if tag in self._SKIP:
            self._skip = max(0, self._skip - 1)
        elif tag == "title":
            self._in_title = False
        elif tag in self._HEADINGS:
            self.end_heading()
        elif tag == "pre" and self._pre:
            self._pre -= 1
            if not self._pre:
                if self.parts and not self.parts[-1].endswith("\n"):
                    self._emit("\n")
                self.fences.append((self._pre_start, self.size))
                self._break(True)
        elif tag in self._BLOCK:
            self._break(True)

    def end_heading(self) -> None:
        if self._heading is None:
            return
        level, words = self._heading
        self._heading = None
        title = " ".join("".join(words).split())
        if title:
            start = self.size
            self._emit(title + "\n\n")
            self.headings.append(Heading(start, self.size, level, title))

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.title += data
        elif self._skip:
            return
        elif self._heading is not None:
            self._heading[1].append(data)
        elif self._pre:
            self._emit(normalize(data))
        else:
            words = " ".join(data.split())
            lead = " " if data[:1].isspace() and not self._ends_with_space() else ""
            trail = " " if words and data[-1:].isspace() else ""
            self._emit(lead + words + trail)


def html_outline(html: str) -> Outline:
    parser = _HtmlToText()
    parser.feed(html)
    parser.close()
    parser.end_heading()
    text = parser.text.rstrip()
    title = " ".join(parser.title.split()) or next((h.title for h in parser.headings if h.level == 1), "")
    fences = [(start, min(end, len(text))) for start, end in parser.fences]
    return Outline(text, title=title, headings=parser.headings, fences=fences)
