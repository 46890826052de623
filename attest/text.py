"""Plain-text helpers shared by the offline answerer (attest.llm.extractive) and the offline judge
(disputer.grounding): one stopword list and one rule for Markdown line markers, so both read text alike."""

from __future__ import annotations

import re

# Headings, list bullets, quotes and numbered items at the start of a line: layout, not words.
_MARKUP = re.compile(r"^(?:#{1,6}\s+|[-*+>]\s+|\d+[.)]\s+)+")
# Words that carry no claim and match nearly every passage: counted, they would rank text by length, not meaning.
_STOPWORD_TEXT = """
    a about above after again all also am an and any are as at be because been before being below between both
    but by can could did do does doing down during each few for from further had has have having he her here hers
    how i if in into is it its itself just me more most my no nor not now of off on once only or other our out over
    own same she should so some such than that the their them then there these they this those through to too under
    until up very was we were what when where which while who whom why will with would you your
"""
STOPWORDS = frozenset(_STOPWORD_TEXT.split())


def strip_markup(line: str) -> str:
    """`line` without its leading Markdown markers ("## ", "- ", "1. ", "> ")."""
    return _MARKUP.sub("", line)


# "EIP-1559", "ERC 20", "eip1559": a document the question names. The EIP corpus keeps ERCs as eip-N.md too.
_NAMED = re.compile(r"\b(?:eip|erc)[-\s]?(\d{1,5})\b", re.IGNORECASE)
# A document that only says where its text went ("This file was moved to https://…"): it answers nothing.
_STUB = re.compile(r"^\s*this (?:file|document|eip|erc) (?:was|has been) moved to\b", re.IGNORECASE | re.MULTILINE)


def named_documents(text: str) -> frozenset[str]:
    """The document stems `text` names, as "eip-N" ("What does EIP-1559 do?" names "eip-1559")."""
    return frozenset(f"eip-{int(number)}" for number in _NAMED.findall(text))


def document_stem(source: str) -> str:
    """ "eips/eip-1559.md" -> "eip-1559": what `named_documents` compares with."""
    name = source.rsplit("/", 1)[-1].casefold()
    return name.rsplit(".", 1)[0] if "." in name else name


def is_stub(text: str) -> bool:
    """Whether a chunk is a "moved to …" stub rather than text that could answer anything."""
    return "moved" in text.lower() and _STUB.search(text) is not None  # the substring test first: it is fast
