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
