"""The claim asserted on UMA: a short, self-contained UTF-8 JSON text that voters read and tools parse.

The claim lives only in the `AssertionMade` event, so it carries everything a voter needs: the record's
ipfs:// URI, its digest (the assertion's domainId), the asserter, and the ipfs:// URI of the rules that say how
to check it. It asserts only what anyone can check from public data (UMIP-191): that the record is well formed,
signed by the asserter, has that digest, and that its answer is correct and faithful to its cited context.
Nothing about which model produced the answer, which no one could check.

The UMA Oracle UI (optimistic-oracle-dapp-v2) decodes the claim bytes as UTF-8, drops NUL characters, and, when
the text up to its last "}" is JSON with string `title` and `description`, shows those: the title as plain text,
the description as Markdown. `ui_view` reproduces that decision; `build_claim` guarantees it shows ours.
"""

from __future__ import annotations

import json
import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import NoReturn

from eth_utils.address import is_checksum_address

from attest.errors import ClaimError, InvalidCid
from attest.ipfs.cid import CID
from attest.ipfs.unixfs import cid_of
from attest.jsonsafe import NonJsonConstant, RepeatedKey, encodable, nested_deeper_than, strict_loads

CLAIM_SCHEMA_V1 = "llm-attest/claim/v1"
# Calldata costs 16 gas a byte and the event log 8 more: a full claim costs well under 50k gas.
MAX_CLAIM_BYTES = 2048
PREVIEW_CHARS = 100
RULES_FILE = Path(__file__).resolve().parent / "rules" / "claim-rules-v1.md"
# The rules of a claim about a record answered from a governed knowledge base: v1 plus statement 5.
GOVERNED_RULES_FILE = Path(__file__).resolve().parent / "rules" / "claim-rules-v3.md"

TITLE_STEM = "llm-attest: correct and faithful answer"
_KEYS = ("title", "description", "schema", "record", "digest", "asserter", "rules")
_DIGEST = re.compile(r"0x[0-9a-f]{64}")
_MAX_JSON_DEPTH = 8
# The UI shows any claim containing both of these as an oSnap request with its own title; see _defuse.
_OSNAP_MARKERS = ("rules:", "explanation:")
# Control, format (bidi overrides, zero-width joiners), surrogate, private-use and unassigned code points, and
# line/paragraph separators: none belongs in a one-line preview, and some could make a title read differently.
_DROPPED_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})
_COMBINING = frozenset({"Mn", "Mc", "Me"})


@dataclass(frozen=True)
class Claim:
    """A parsed llm-attest claim (schema v1). CIDs are in their canonical string form."""

    title: str
    description: str
    record_cid: str
    digest: str  # 0x + 64 lowercase hex: the record digest and the assertion's domainId
    asserter: str  # EIP-55 checksummed
    rules_cid: str

    @property
    def record_uri(self) -> str:
        return f"ipfs://{self.record_cid}"


# -- rules -----------------------------------------------------------------------------------------------
def rules_bytes(*, governed: bool = False) -> bytes:
    """The exact bytes of the v1 rules document (v3 for a governed knowledge base): pin these, and their CID is
    `rules_cid()`."""
    return _rules_bytes(governed)


@lru_cache(maxsize=2)
def _rules_bytes(governed: bool) -> bytes:
    return (GOVERNED_RULES_FILE if governed else RULES_FILE).read_bytes()


@lru_cache(maxsize=4)
def rules_cid(cid_version: int = 1, *, governed: bool = False) -> str:
    """The CID `ipfs add` (`--cid-version=1` by default) gives the rules document."""
    return str(cid_of(_rules_bytes(governed), cid_version=cid_version))


def governed_rules(rules: str) -> bool:
    """Does a claim naming these rules assert that every cited document was approved (rules v3)?"""
    return rules in (rules_cid(0, governed=True), rules_cid(1, governed=True))


# -- building --------------------------------------------------------------------------------------------
def build_claim(record_cid: str, digest_hex: str, asserter: str, rules_cid: str, query: str) -> bytes:
    """The claim bytes for a record, with a preview of its (untrusted) query in the title."""
    record = _canonical_cid(record_cid, "record CID")
    rules = _canonical_cid(rules_cid, "rules CID")
    digest = _digest(digest_hex)
    signer = _address(asserter)
    description = render_description(record, digest, signer, rules)
    # The preview is the only free text; shorten it until the claim fits (multi-byte text can be 4 bytes a char).
    for limit in (PREVIEW_CHARS, 60, 30, 0):
        title = render_title(query_preview(query, limit))
        data = _encode(title, description, record, digest, signer, rules)
        if len(data) <= MAX_CLAIM_BYTES:
            break
    else:
        raise ClaimError(f"the claim is {len(data):,} bytes, over the {MAX_CLAIM_BYTES:,}-byte limit")
    if ui_view(data) != (title, description):
        raise ClaimError("the Oracle UI would not show this claim's title and description; report this as a bug")
    return data


def render_title(preview: str) -> str:
    return f"{TITLE_STEM} to “{preview}”" if preview else f"{TITLE_STEM} (the query is in the record)"


def render_description(record_cid: str, digest: str, asserter: str, rules_cid: str) -> str:
    """What a voter reads (Markdown in the Oracle UI). Depends only on the machine-readable fields."""
    return (
        f"This assertion is TRUE only if every statement below holds, checked as the rules at ipfs://{rules_cid} "
        "describe; otherwise it is FALSE.\n\n"
        f"1. The file at ipfs://{record_cid} (from any IPFS gateway, such as "
        f"[ipfs.io](https://ipfs.io/ipfs/{record_cid})) is an llm-attest/record/v1 attestation record.\n"
        f'2. Its digest, the sha256 of the RFC 8785 canonical JSON of the record without its "signature" field, '
        f"is {digest}, and is this assertion's domainId.\n"
        f'3. Its "signature" is an EIP-191 signature of those 32 digest bytes by {asserter}, who is the record\'s '
        '"asserter" and this assertion\'s asserter.\n'
        '4. Its "answer" is a correct and faithful response to its "query", given the "context" it cites, and '
        "each cited context chunk is text from the document at that chunk's doc_cid.\n"
        + (_GOVERNED_STATEMENT if governed_rules(rules_cid) else "")
        + "\nThe title quotes the start of the record's query as a preview only; the record is authoritative. "
        "A record that cannot be fetched or decoded makes this assertion FALSE."
    )


_GOVERNED_STATEMENT = (
    '5. Its "corpus" manifest names a KnowledgeRegistry, a chain and a block, and every document its "context" '
    "cites was approved in that registry at that block (wasApprovedAt).\n"
)


def query_preview(query: str, limit: int = PREVIEW_CHARS) -> str:
    """One line of at most `limit` characters (plus "…"), cut on a character boundary, with no hidden characters."""
    if limit <= 0:
        return ""
    visible = "".join(c for c in query if unicodedata.category(c) not in _DROPPED_CATEGORIES or c in "\t\n\r")
    text = _defuse(" ".join(visible.split()))
    if len(text) <= limit:
        return text
    cut = limit
    # Never leave a combining mark without the character it belongs to.
    while cut > 0 and unicodedata.category(text[cut]) in _COMBINING:
        cut -= 1
    return text[:cut].rstrip() + "…"


def _defuse(text: str) -> str:
    # A query holding both "rules:" and "explanation:" would make the UI replace our title with an oSnap one.
    for marker in _OSNAP_MARKERS:
        text = text.replace(marker, marker[:-1] + " :")
    return text


def _encode(title: str, description: str, record: str, digest: str, asserter: str, rules: str) -> bytes:
    claim = {
        "title": title,
        "description": description,
        "schema": CLAIM_SCHEMA_V1,
        "record": f"ipfs://{record}",
        "digest": digest,
        "asserter": asserter,
        "rules": f"ipfs://{rules}",
    }
    return json.dumps(claim, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


# -- reading ---------------------------------------------------------------------------------------------
def ui_view(claim: bytes) -> tuple[str, str] | None:
    """(title, description) exactly as the UMA Oracle UI shows them for this claim, or None when it shows
    something else (the raw text, "Unable to decode hex string", or an oSnap request).

    Mirrors optimistic-oracle-dapp-v2: decodeHexString (ethers' strict toUtf8String, NULs removed),
    isOptimisticGovernor, and getTitleAndDescriptionFromJson (text up to the last "}" when that is past index 0,
    JSON.parse, superstruct `type({title: string(), description: string()})`).
    """
    try:
        text = bytes(claim).decode("utf-8")
    except UnicodeDecodeError:
        return None
    text = text.replace("\0", "")
    if all(marker in text for marker in _OSNAP_MARKERS):
        return None
    end = text.rfind("}")
    candidate = text[: end + 1] if end > 0 else text
    if nested_deeper_than(candidate, 256):
        return None
    try:
        value = json.loads(candidate, parse_constant=_refuse_ui_constant)
    except (ValueError, RecursionError):
        return None
    if not isinstance(value, dict):
        return None
    title, description = value.get("title"), value.get("description")
    if isinstance(title, str) and isinstance(description, str):
        return title, description
    return None


def _refuse_ui_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not JSON")  # JSON.parse refuses NaN and Infinity


def parse_claim(claim: bytes) -> Claim:
    """A strictly checked llm-attest v1 claim from untrusted bytes, or a ClaimError (never another exception)."""
    if not isinstance(claim, bytes | bytearray | memoryview):
        raise ClaimError(f"a claim is bytes, not {type(claim).__name__}")
    data = bytes(claim)
    if len(data) > MAX_CLAIM_BYTES:
        raise ClaimError(f"the claim is {len(data):,} bytes, over the {MAX_CLAIM_BYTES:,}-byte limit of a claim")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise ClaimError(f"the claim is not UTF-8 (bad byte at offset {err.start}); it is not ours") from None
    if nested_deeper_than(text, _MAX_JSON_DEPTH):
        raise ClaimError(f"the claim's JSON nests deeper than {_MAX_JSON_DEPTH} levels; an llm-attest claim is flat")
    try:
        value = strict_loads(text)
    except RepeatedKey as err:
        # JSON.parse keeps the last of repeated keys; refusing them keeps every reader on the same claim.
        raise ClaimError(f"the claim repeats the key {_short(json.dumps(err.key))}") from None
    except NonJsonConstant as err:
        raise ClaimError(f"the claim contains {err.name}, which is not JSON") from None
    except (ValueError, RecursionError) as err:
        raise ClaimError(f"the claim is not JSON ({_short(str(err))}), so not an llm-attest claim") from None
    if not isinstance(value, dict):
        raise ClaimError(f"the claim is a JSON {type(value).__name__}, not an object")
    if tuple(value) != _KEYS:
        keys = _short(json.dumps(list(value)))
        raise ClaimError(f"the claim's keys are {keys}; an llm-attest claim has {list(_KEYS)} in that order")
    fields = {key: value[key] for key in _KEYS}
    for key, item in fields.items():
        if not isinstance(item, str):
            raise ClaimError(f'the claim\'s "{key}" is a {type(item).__name__}, not a string')
        if not encodable(item):
            raise ClaimError(f'the claim\'s "{key}" holds a lone UTF-16 surrogate, which is not text')
    if fields["schema"] != CLAIM_SCHEMA_V1:
        raise ClaimError(
            f"the claim's schema {_short(json.dumps(fields['schema']))} is not {CLAIM_SCHEMA_V1}; "
            "upgrade llm-attest to read newer claims"
        )
    record = _canonical_cid(_ipfs_uri(fields["record"], "record"), "record CID")
    rules = _canonical_cid(_ipfs_uri(fields["rules"], "rules"), "rules CID")
    digest = _digest(fields["digest"])
    asserter = _address(fields["asserter"])
    title, description = fields["title"], fields["description"]
    if not title.startswith(TITLE_STEM):
        raise ClaimError(f"the claim's title does not start with {TITLE_STEM!r}")
    if description != render_description(record, digest, asserter, rules):
        raise ClaimError("the claim's description is not the v1 wording for its fields; voters read another claim")
    return Claim(title, description, record, digest, asserter, rules)


def _ipfs_uri(value: str, key: str) -> str:
    if not value.startswith("ipfs://"):
        raise ClaimError(f'the claim\'s "{key}" is not an ipfs:// URI')
    return value.removeprefix("ipfs://")


def _canonical_cid(text: str, what: str) -> str:
    try:
        canonical = str(CID.parse(text))
    except InvalidCid:
        raise ClaimError(f"the {what} {_short(json.dumps(text))} is not a CID") from None
    if canonical != text:
        # One spelling per CID, so string comparisons of claims and records cannot disagree.
        raise ClaimError(f"the {what} {_short(json.dumps(text))} is not in canonical form; write it as {canonical}")
    return canonical


def _digest(text: str) -> str:
    if not isinstance(text, str) or not _DIGEST.fullmatch(text):
        raise ClaimError(f"the digest {_short(json.dumps(text))} is not 0x followed by 64 lowercase hex digits")
    return text


def _address(text: str) -> str:
    if not isinstance(text, str) or not is_checksum_address(text):
        raise ClaimError(f"the asserter {_short(json.dumps(text))} is not an EIP-55 checksummed address")
    return text


def _short(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."
