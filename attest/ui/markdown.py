"""A small, safe Markdown renderer for claim descriptions, which the Oracle UI renders as Markdown.

It knows what claims use: paragraphs, ordered and unordered lists, `code`, **bold**, *emphasis* and
[links](https://…). Everything is HTML-escaped first; a link is made only for http, https and ipfs URLs (ipfs
through a public gateway), so hostile claim text can never inject markup, script or a javascript: URL.
"""

from __future__ import annotations

import re
from html import escape

_LIST_ITEM = re.compile(r"^\s*(?:(\d+)[.)]|[-*+])\s+(.*)$")
_CODE = re.compile(r"`([^`\n]+)`")
_LINK = re.compile(r"\[([^\]\n]+)\]\(([^)\s]+)\)")
_BOLD = re.compile(r"\*\*([^*\n]+)\*\*")
_EMPHASIS = re.compile(r"(?<![\w*])\*([^*\n]+)\*(?![\w*])")
_SAFE_URL = re.compile(r"^(https?://|ipfs://)[^\s\"'<>]+$")
GATEWAY = "https://ipfs.io/ipfs/"


def safe_href(url: str) -> str | None:
    """The link target for `url`, or None when it is not a scheme worth following (javascript:, data:, ...)."""
    if not _SAFE_URL.match(url):
        return None
    return GATEWAY + url.removeprefix("ipfs://") if url.startswith("ipfs://") else url


def _inline(text: str) -> str:
    """One line of inline Markdown: code spans are kept verbatim, the rest escaped, then marked up."""
    out, last = [], 0
    for code in _CODE.finditer(text):
        out.append(_marks(text[last : code.start()]))
        out.append(f"<code>{escape(code.group(1))}</code>")
        last = code.end()
    out.append(_marks(text[last:]))
    return "".join(out)


def _marks(text: str) -> str:
    def link(m: re.Match[str]) -> str:
        label, url = m.group(1), m.group(2)
        href = safe_href(url)
        if href is None:
            return escape(m.group(0))
        return f'<a href="{escape(href)}" rel="noopener noreferrer nofollow">{escape(label)}</a>'

    pieces, last = [], 0
    for m in _LINK.finditer(text):
        pieces.append(_emphasis(escape(text[last : m.start()])))
        pieces.append(link(m))
        last = m.end()
    pieces.append(_emphasis(escape(text[last:])))
    return "".join(pieces)


def _emphasis(escaped: str) -> str:
    escaped = _BOLD.sub(r"<strong>\1</strong>", escaped)
    return _EMPHASIS.sub(r"<em>\1</em>", escaped)


def render(markdown: str) -> str:
    """Markdown → HTML fragment (blocks separated by blank lines; a block of list items is a list)."""
    html: list[str] = []
    for block in re.split(r"\n\s*\n", markdown.replace("\r\n", "\n").strip()):
        lines = [line for line in block.split("\n") if line.strip()]
        if not lines:
            continue
        items = [_LIST_ITEM.match(line) for line in lines]
        if all(items):
            ordered = items[0] is not None and items[0].group(1) is not None
            tag = "ol" if ordered else "ul"
            start = f' start="{int(items[0].group(1))}"' if ordered and items[0] and items[0].group(1) != "1" else ""
            body = "".join(f"<li>{_inline(m.group(2))}</li>" for m in items if m)
            html.append(f"<{tag}{start}>{body}</{tag}>")
        else:
            html.append("<p>" + "<br>\n".join(_inline(line.strip()) for line in lines) + "</p>")
    return "\n".join(html)
