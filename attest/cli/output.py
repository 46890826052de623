"""Small text helpers every command shares: aligned tables, one-line previews, JSON."""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Sequence
from typing import Any

import click


def table(headers: Sequence[str], rows: Sequence[Sequence[object]], numeric: frozenset[int] = frozenset()) -> str:
    cells = [[str(c) for c in headers], *[[str(c) for c in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]

    def line(row: list[str]) -> str:
        padded = [c.rjust(w) if i in numeric else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True))]
        return "  ".join(padded).rstrip()

    return "\n".join(line(row) for row in cells)


# Characters a terminal acts on instead of showing (BEL, ESC sequences, bidirectional overrides such as U+202E that
# reverse what follows): text from a query or a document is shown with them escaped, as `\x07` or `\u202e`.
_BIDI = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def printable(text: str) -> str:
    return "".join(
        c.encode("unicode_escape").decode("ascii") if c in _BIDI or unicodedata.category(c) == "Cc" else c for c in text
    )


def short(text: str, width: int) -> str:
    """`text` on one line, at most `width` characters, with what a terminal would act on escaped."""
    flat = printable(" ".join(text.split()))
    return flat if len(flat) <= width else flat[: width - 1] + "…"


def echo_json(value: Any) -> None:
    click.echo(json.dumps(value, indent=2, ensure_ascii=False))
