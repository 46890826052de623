"""The prompt catalog: versioned templates shipped as package data and named `id@version`.

A record names its template and the sha256 of the template file's exact bytes, so anyone holding this release can
hash the file and read the very instructions the model was given. Everything that shapes the prompt (system
text, user text, how each passage is shown) lives in the file, so the hash pins the whole rendering; the only
code involved is `$name` substitution and the fence below.

Untrusted text (the question, the passages, a graded answer) is fenced by lines carrying a code derived from
that same text. Text cannot contain a code computed from itself (that would take a hash fixed point), so a
passage cannot close its own fence and speak as the prompt; yet the rendering stays deterministic.
"""

from __future__ import annotations

import hashlib
import json
import re
import string
import tomllib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import cache
from importlib import resources

from attest.context import RetrievedChunk
from attest.errors import PromptError

_REF = re.compile(r"^(?P<id>[a-z0-9][a-z0-9-]*)(?:@(?P<version>[0-9]+))?$")
_FILE = re.compile(r"^(?P<id>[a-z0-9][a-z0-9-]*)@(?P<version>[1-9][0-9]*)\.toml$")
_PROMPT_VARIABLES = frozenset({"fence", "count", "context", "query", "answer"})
_PASSAGE_VARIABLES = frozenset({"n", "source", "heading", "text", "fence"})
_FIELDS = frozenset({"id", "version", "description", "system", "user", "passage", "no_context"})
FENCE_HEX_DIGITS = 16


@dataclass(frozen=True)
class RenderedPrompt:
    """What a chat model receives: one system message and one user message."""

    system: str
    user: str
    fence: str

    @property
    def text(self) -> str:
        return f"{self.system}\n\n{self.user}"


@dataclass(frozen=True)
class Template:
    id: str
    version: int
    description: str
    system: str
    user: str
    passage: str
    no_context: str
    sha256: str  # of the template file's exact bytes
    source: str = field(repr=False)  # the file's exact text, for `attest prompts show`

    @property
    def ref(self) -> str:
        return f"{self.id}@{self.version}"

    @property
    def needs_answer(self) -> bool:
        return "answer" in _identifiers(self.system, self.user)

    def render(self, *, query: str, chunks: Sequence[RetrievedChunk] = (), answer: str | None = None) -> RenderedPrompt:
        """The prompt for `query` with `chunks` numbered [1]..[n] in the order given (and `answer` for judges)."""
        if self.needs_answer and answer is None:
            raise PromptError(f"template {self.ref} grades an answer; pass the answer to render it")
        fence = fence_for(query, chunks, answer)
        passages = [
            string.Template(self.passage).substitute(
                n=str(n),
                source=chunk.source,
                heading=" > ".join(chunk.heading_path) or "-",
                text=chunk.text,
                fence=fence,
            )
            for n, chunk in enumerate(chunks, start=1)
        ]
        values = {
            "fence": fence,
            "count": str(len(chunks)),
            "context": "\n\n".join(passages) if passages else self.no_context,
            "query": query,
            "answer": answer or "",
        }
        return RenderedPrompt(
            system=string.Template(self.system).substitute(values),
            user=string.Template(self.user).substitute(values),
            fence=fence,
        )


def fence_for(query: str, chunks: Sequence[RetrievedChunk], answer: str | None = None) -> str:
    """A code that none of the untrusted text contains: a digest of all of it."""
    untrusted = [query, answer or "", *(part for c in chunks for part in (c.source, c.text, *c.heading_path))]
    digest = hashlib.sha256(json.dumps(untrusted, ensure_ascii=True).encode("ascii")).hexdigest()
    fence = f"FENCE-{digest[:FENCE_HEX_DIGITS]}"
    if any(fence in text for text in untrusted):
        # Needs a 64-bit partial preimage of the text's own digest; refuse rather than render an open fence.
        raise PromptError("untrusted text contains its own fence code; refusing to render this prompt")
    return fence


def get(ref: str) -> Template:
    """A template by `id@version`, or by `id` for its latest version."""
    match = _REF.match(ref.strip())
    if match is None:
        raise PromptError(f"{ref!r} is not a template reference; write id@version, such as rag-answer@1")
    versions = [t for t in _catalog() if t.id == match["id"]]
    if not versions:
        known = ", ".join(sorted({t.id for t in _catalog()}))
        raise PromptError(f"no prompt template {match['id']!r}; known templates: {known} (see `attest prompts list`)")
    if match["version"] is None:
        return versions[-1]
    for template in versions:
        if template.version == int(match["version"]):
            return template
    have = ", ".join(t.ref for t in versions)
    raise PromptError(f"no version {match['version']} of template {match['id']!r}; this release has {have}")


# Named for the catalog's verb, next to get(); this module never needs the builtin `list`.
def list() -> tuple[Template, ...]:
    """Every shipped template, by id then version."""
    return _catalog()


@cache
def _catalog() -> tuple[Template, ...]:
    folder = resources.files("attest.prompts").joinpath("templates")
    templates = [_load(entry.name, entry.read_bytes()) for entry in folder.iterdir() if entry.name.endswith(".toml")]
    return tuple(sorted(templates, key=lambda t: (t.id, t.version)))


def _load(filename: str, raw: bytes) -> Template:
    named = _FILE.match(filename)
    if named is None:
        raise PromptError(f"template file {filename} is not named <id>@<version>.toml")
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as err:
        raise PromptError(f"template file {filename} is not UTF-8 TOML: {err}") from None
    unknown = set(data) - _FIELDS
    if unknown:
        raise PromptError(f"template file {filename} has unknown fields: {', '.join(sorted(unknown))}")
    text: dict[str, str] = {}
    for key in ("description", "system", "user", "passage", "no_context"):
        value = data.get(key)
        if not isinstance(value, str) or not value.strip():
            raise PromptError(f"template file {filename} needs a non-empty string {key!r}")
        text[key] = value.strip()
    if data.get("id") != named["id"] or data.get("version") != int(named["version"]):
        raise PromptError(f"template file {filename} declares id/version {data.get('id')}@{data.get('version')}")
    _check_variables(filename, _PROMPT_VARIABLES, text["system"], text["user"])
    _check_variables(filename, _PASSAGE_VARIABLES, text["passage"])
    return Template(
        id=named["id"],
        version=int(named["version"]),
        description=text["description"],
        system=text["system"],
        user=text["user"],
        passage=text["passage"],
        no_context=text["no_context"],
        sha256=hashlib.sha256(raw).hexdigest(),
        source=raw.decode("utf-8"),
    )


def _identifiers(*texts: str) -> set[str]:
    return {name for text in texts for name in string.Template(text).get_identifiers()}


def _check_variables(filename: str, allowed: Iterable[str], *texts: str) -> None:
    for text in texts:
        if not string.Template(text).is_valid():
            raise PromptError(f"template file {filename} has a stray $; write $$ for a literal dollar sign")
    unknown = _identifiers(*texts) - set(allowed)
    if unknown:
        raise PromptError(f"template file {filename} uses unknown variables: {', '.join(sorted(unknown))}")
