"""Parsing JSON from untrusted sources without crashing the process.

py_ecc (imported with web3 and eth-account) raises Python's recursion limit to 100000, so `json.loads` on
input nested a few hundred thousand levels deep overflows the C stack and kills the interpreter instead of
raising. Everything that parses JSON it did not write checks the nesting first, without recursing.
"""

from __future__ import annotations

import json
import re
from typing import Any, NoReturn

_BRACKET_OR_QUOTE = re.compile(r'[\[\]{}"]')
_BRACKET = re.compile(r"[\[\]{}]")
# The rest of a string after its opening quote, through the closing quote.
_STRING_TAIL = re.compile(r'[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)


def nested_deeper_than(text: str, limit: int) -> bool:
    """True when brackets outside strings nest deeper than `limit`. Linear in the length of `text`."""
    depth = 0
    pos = 0
    scan = _BRACKET_OR_QUOTE
    while (match := scan.search(text, pos)) is not None:
        token = match.group()
        pos = match.end()
        if token == '"':
            tail = _STRING_TAIL.match(text, pos)
            if tail is None:
                # An unterminated string: a JSON parser stops there, so nothing after it is parsed. Counting what
                # follows as structure errs on the safe side, and no later quote is searched for again: retrying
                # the string match from every later quote made hostile input like '"' + '\\"' * n quadratic.
                scan = _BRACKET
                continue
            pos = tail.end()
        elif token in ("[", "{"):
            depth += 1
            if depth > limit:
                return True
        else:
            depth -= 1
    return False


class RepeatedKey(ValueError):
    """An object repeats a key. JSON.parse keeps the last, other parsers the first: refusing it keeps every reader
    on the same value."""

    def __init__(self, key: str) -> None:
        super().__init__(f"repeated key {key!r}")
        self.key = key


class NonJsonConstant(ValueError):
    """NaN, Infinity or -Infinity, which Python's json reads but JSON does not have."""

    def __init__(self, name: str) -> None:
        super().__init__(f"{name} is not JSON")
        self.name = name


def strict_loads(text: str) -> Any:
    """`json.loads` that raises `RepeatedKey` or `NonJsonConstant` (both ValueErrors) instead of accepting them.
    Check the nesting first (`nested_deeper_than`)."""
    return json.loads(text, object_pairs_hook=_unique_keys, parse_constant=_refuse_constant)


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise RepeatedKey(key)
        result[key] = value
    return result


def _refuse_constant(name: str) -> NoReturn:
    raise NonJsonConstant(name)


def encodable(text: str) -> bool:
    """False for a string with lone surrogates, which JSON's \\ud800 escapes decode to: it cannot be printed or
    re-encoded as UTF-8."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
