"""Parsing JSON from untrusted sources without crashing the process.

py_ecc (imported with web3 and eth-account) raises Python's recursion limit to 100000, so `json.loads` on
input nested a few hundred thousand levels deep overflows the C stack and kills the interpreter instead of
raising. Everything that parses JSON it did not write checks the nesting first, without recursing.
"""

from __future__ import annotations

import re

_STRING_OR_BRACKET = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{}]')


def nested_deeper_than(text: str, limit: int) -> bool:
    """True when brackets outside strings nest deeper than `limit`."""
    depth = 0
    for match in _STRING_OR_BRACKET.finditer(text):
        token = match.group()
        if token in ("[", "{"):
            depth += 1
            if depth > limit:
                return True
        elif token in ("]", "}"):
            depth -= 1
    return False
