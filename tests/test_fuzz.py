"""Fuzzing every parser that reads untrusted input: it either returns a valid result or raises an AttestError.

Targets: record bytes (decode, validate, verify), claim bytes (parse_claim, ui_view, build_claim's query), CAR
import into the local store (a rejected CAR leaves the store byte for byte as it was), and config TOML (attest's
loader and the disputer's [disputer] table). Each target mixes structure-aware inputs (valid data built by our own
code, then mutated: fields dropped or retyped, unknown or repeated keys, NaN, huge numbers, deep nesting, lone
surrogates, flipped and cut bytes) with raw bytes and text.

Case counts: 10,000 cases per target cost about 4 ms of CPU each, five minutes for the file, so the default "ci"
profile runs 2,000 per target and ATTEST_FUZZ_EXAMPLES=10000 runs the full count (any <n> works, e.g. 300 while
iterating). Each target prints how many cases ran and what became of them (run with -s to see it).
"""

from __future__ import annotations

import copy
import hashlib
import io
import json
import os
import shutil
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_utils.address import to_checksum_address
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from attest.claim import Claim, build_claim, parse_claim, rules_cid, ui_view
from attest.cli.config import to_toml
from attest.config import Config, load_config
from attest.errors import AttestError
from attest.ipfs.car import encode_header, write_car
from attest.ipfs.cid import CID, DAG_CBOR, DAG_PB, RAW, encode_varint
from attest.ipfs.local import LocalStore
from attest.ipfs.unixfs import import_stream
from attest.record import (
    SCHEMA_V1,
    AttestationRecord,
    decode_record,
    encode_record,
    record_bytes,
    sign_record,
    validate_record,
    verify_record,
)
from disputer.config import DisputerConfig, load_disputer_config

EXAMPLES = int(os.environ.get("ATTEST_FUZZ_EXAMPLES") or "2000")
settings.register_profile(
    "ci",
    max_examples=EXAMPLES,
    deadline=None,  # the machine is shared; a slow case is not a failure
    database=None,  # no .hypothesis/ directory in the work tree
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example],
    print_blob=True,  # a failure prints the @reproduce_failure line that replays it
)
FUZZ = settings.get_profile("ci")
SLOW_S = 10.0

Json = Any


# -- bookkeeping -------------------------------------------------------------------------------------------
class Tally:
    """Cases run and their outcomes: proof of the count, and a check that both outcomes were reached."""

    def __init__(self, target: str) -> None:
        self.target = target
        self.outcomes: Counter[str] = Counter()
        self.started = time.monotonic()

    def judge(self, call: Callable[[], object]) -> object | None:
        """The result of `call`, or None when it raised an AttestError; anything else propagates and fails."""
        started = time.monotonic()
        try:
            result = call()
        except AttestError as err:
            self.outcomes[type(err).__name__] += 1
            return None
        finally:
            # Inputs stay under ~1 MB; a parser that needs seconds for one is slower than linear somewhere.
            elapsed = time.monotonic() - started
            assert elapsed < SLOW_S, f"one {self.target} case took {elapsed:.1f}s"
        self.outcomes["accepted"] += 1
        return result

    @property
    def cases(self) -> int:
        return self.outcomes.total()

    def report(self, expected: int) -> None:
        seconds = time.monotonic() - self.started
        kinds = ", ".join(f"{name} {n}" for name, n in self.outcomes.most_common())
        print(f"\nfuzz {self.target}: {self.cases} calls in {seconds:.1f}s ({kinds})")
        assert self.cases >= expected, f"only {self.cases} of {expected} cases ran"
        assert self.outcomes["accepted"] > 0, "no input was accepted: the structure-aware inputs are broken"
        assert self.cases > self.outcomes["accepted"], "every input was accepted: the mutations do nothing"


# -- shared strategies -------------------------------------------------------------------------------------
LONE_SURROGATES = st.sampled_from(["\ud800", "\udbff", "\udc00", "\udfff"])
ANY_CHAR = st.characters(codec=None, exclude_categories=())  # includes lone surrogates (category Cs)
NASTY_TEXT = st.one_of(
    st.text(ANY_CHAR, max_size=40),
    st.builds(lambda a, s, b: a + s + b, st.text(max_size=10), LONE_SURROGATES, st.text(max_size=10)),
    st.sampled_from(["", " ", "\x00", "\x7f", "\ufeff", "\u202e", "0", "null", "1e400", "NaN", "0x", "Qm", "ipfs://"]),
    st.integers(0, 20_000).map(lambda n: "x" * n),
)
NUMBERS = st.one_of(
    st.integers(),
    st.sampled_from([2**53, 2**53 + 1, -(2**53) - 1, 2**64, -(2**63), 10**400]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([float("nan"), float("inf"), -float("inf"), -0.0, 1e-320, 5e-324]),
)
SCALARS = st.one_of(st.none(), st.booleans(), NUMBERS, NASTY_TEXT)
JSON_VALUES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(NASTY_TEXT, inner, max_size=4)),
    max_leaves=12,
)
# Spliced into serialized JSON where a value goes: things json.dumps cannot or will not write.
RAW_JSON = st.one_of(
    st.sampled_from(["NaN", "Infinity", "-Infinity", "1e400", "-1e400", "1e-400", "-0", "1.0", "01", "1_0", "0x10"]),
    st.sampled_from(['"\\ud800"', '"\\udfff\\ud800"', '"\\u0000"', '"\\x41"', "'single'", "undefined", "[,]", "{,}"]),
    st.integers(4290, 4400).map(lambda n: "9" * n),  # around Python's int/str digit limit
    st.integers(1, 200_000).map(lambda n: "[" * n + "]" * n),
    st.integers(1, 200_000).map(lambda n: '{"a":' * n + "1" + "}" * n),
    st.integers(1, 5_000).map(lambda n: "[" * n),
)
# Unterminated strings to end a document with, which once made the depth check (attest.jsonsafe) quadratic: at
# these sizes that took a minute a case (SLOW_S catches it), where a linear scan takes milliseconds.
HOSTILE_TAILS = st.one_of(
    st.sampled_from([25_000, 50_000]).map(lambda n: '"' + '\\"' * n),
    st.sampled_from([25_000, 50_000]).map(lambda n: '"\\' * n),
).map(str.encode)


def mutate_bytes(data: bytes, draw: st.DrawFn) -> bytes:
    """A few random byte-level edits: flips, cuts, insertions, splices."""
    buf = bytearray(data)
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["flip", "set", "cut", "truncate", "insert", "dup"]))
        at = draw(st.integers(0, max(len(buf) - 1, 0)))
        if op == "flip" and buf:
            buf[at] ^= 1 << draw(st.integers(0, 7))
        elif op == "set" and buf:
            buf[at] = draw(st.integers(0, 255))
        elif op == "cut":
            del buf[at : at + draw(st.integers(1, 64))]
        elif op == "truncate":
            del buf[at:]
        elif op == "insert":
            buf[at:at] = draw(st.binary(min_size=1, max_size=16))
        elif op == "dup":
            buf[at:at] = buf[at : at + draw(st.integers(1, 64))]
    return bytes(buf)


def _paths(value: Json, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    yield prefix
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _paths(item, (*prefix, key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _paths(item, (*prefix, i))


def _get(tree: Json, path: tuple[Any, ...]) -> Json:
    for step in path:
        tree = tree[step]
    return tree


_RAW_MARK = "\ue000RAW{}\ue000"


def mutate_json(base: Json, draw: st.DrawFn) -> bytes:
    """`base` with a few structural edits, serialized in one of many layouts, maybe byte-mutated."""
    tree = copy.deepcopy(base)
    raws: list[str] = []
    for _ in range(draw(st.integers(1, 3))):
        paths = list(_paths(tree))
        path = draw(st.sampled_from(paths))
        op = draw(st.sampled_from(["drop", "replace", "retype", "raw", "add", "duplicate", "nest", "tweak"]))
        if not path:
            if op in ("replace", "raw"):
                tree = draw(JSON_VALUES)
            continue
        parent, key = _get(tree, path[:-1]), path[-1]
        current = parent[key]
        if op == "drop":
            del parent[key]
        elif op == "replace":
            parent[key] = draw(JSON_VALUES)
        elif op == "retype":
            parent[key] = draw(
                st.sampled_from(
                    [str(current), [current], {"value": current}, None, True, 0, 1.0, json.dumps(current)[:50]]
                )
            )
        elif op == "raw":
            raws.append(draw(RAW_JSON))
            parent[key] = _RAW_MARK.format(len(raws) - 1)
        elif op == "add" and isinstance(current, dict):
            current[draw(NASTY_TEXT)] = draw(JSON_VALUES)
        elif op == "duplicate" and isinstance(current, dict) and current:
            # A repeated key: the same key written twice, with its own or another value.
            dup_key = draw(st.sampled_from(sorted(current)))
            other = draw(st.one_of(st.just(current[dup_key]), JSON_VALUES))
            raws.append(_with_duplicate(current, dup_key, other))
            parent[key] = _RAW_MARK.format(len(raws) - 1)
        elif op == "nest":
            wrapped = current
            for _ in range(draw(st.integers(1, 40))):
                wrapped = [wrapped] if draw(st.booleans()) else {"x": wrapped}
            parent[key] = wrapped
        elif op == "tweak" and isinstance(current, str) and current:
            at = draw(st.integers(0, len(current) - 1))
            parent[key] = current[:at] + draw(st.text(ANY_CHAR, min_size=0, max_size=3)) + current[at + 1 :]
    text = _dumps(tree, draw)
    for i, raw in enumerate(raws):
        text = text.replace(json.dumps(_RAW_MARK.format(i), ensure_ascii=False), raw)
        text = text.replace(json.dumps(_RAW_MARK.format(i)), raw)
    data = text.encode("utf-8", "surrogatepass")  # a lone surrogate written raw is invalid UTF-8
    if draw(st.integers(0, 3)) == 0:
        data = mutate_bytes(data, draw)
    return data


def _with_duplicate(obj: dict[str, Json], key: str, value: Json) -> str:
    body = json.dumps(obj, ensure_ascii=False, allow_nan=True)
    extra = json.dumps({key: value}, ensure_ascii=False, allow_nan=True)[1:-1]
    return body[:-1] + ("," if obj else "") + extra + "}"


def _dumps(tree: Json, draw: st.DrawFn) -> str:
    return json.dumps(
        tree,
        ensure_ascii=draw(st.booleans()),
        allow_nan=True,
        indent=draw(st.sampled_from([None, 1, "\t"])),
        sort_keys=False,
    )


def raw_inputs(structured: st.SearchStrategy[bytes]) -> st.SearchStrategy[bytes]:
    """Mostly structure-aware inputs, with raw bytes and raw text mixed in."""
    return st.one_of(
        structured,
        structured,
        structured,
        structured,
        structured,
        st.binary(max_size=512),
        st.text(ANY_CHAR, max_size=256).map(lambda t: t.encode("utf-8", "surrogatepass")),
        st.tuples(structured, st.integers(0, 100), HOSTILE_TAILS).map(
            lambda t: t[0][: len(t[0]) * t[1] // 100] + t[2]  # cut off inside a string that never ends
        ),
    )


# -- records -----------------------------------------------------------------------------------------------
def _sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _record_bases() -> list[Json]:
    """Signed records built by our own code, as JSON data: one with every part filled in, one minimal."""
    account: LocalAccount = Account.from_key(b"\x11" * 32)
    chunk = "EIP-1559 adds a base fee that is burned. ✓ 漢字"
    full = {
        "schema": SCHEMA_V1,
        "query": "What does EIP-1559 do with the base fee? 😀",
        "answer": "It burns it.",
        "context": [
            {
                "source": "eips/EIP-1559.md",
                "doc_cid": "bafkreifjjcie6lypi6ny7amxnfftagclbuxndqonfipmb64f2km2devei4",
                "chunk_index": 3,
                "text": chunk,
                "sha256": _sha(chunk),
            }
        ],
        "corpus": "QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ff5o",
        "model": {
            "provider": "openai",
            "requested_model": "gpt-4o-mini",
            "returned_model": "gpt-4o-mini-2024-07-18",
            "system_fingerprint": "fp_0123",
            "response_id": "chatcmpl-1",
            "params": {"temperature": 0.1, "top_p": 1.0, "max_tokens": 256, "seed": -7},
            "usage": {"input_tokens": 120, "output_tokens": 5},
            "license": None,
            "sdk": {"name": "openai", "version": "3.0.0"},
        },
        "prompt": {"template": "rag-answer@1", "template_sha256": _sha("template")},
        "created_at": "2025-01-02T03:04:05.123456Z",
        "asserter": account.address,
    }
    minimal = {
        **copy.deepcopy(full),
        "context": [],
        "corpus": None,
        "prompt": None,
        "model": {
            "provider": "external",
            "requested_model": "m",
            "returned_model": None,
            "system_fingerprint": None,
            "response_id": None,
            "params": {"temperature": None, "top_p": None, "max_tokens": None, "seed": None},
            "usage": None,
            "license": None,
            "sdk": None,
        },
    }
    return [json.loads(record_bytes(sign_record(validate_record(r), account))) for r in (full, minimal)]


RECORD_BASES = _record_bases()


@st.composite
def record_inputs(draw: st.DrawFn) -> bytes:
    base = draw(st.sampled_from(RECORD_BASES))
    if draw(st.integers(0, 9)) == 0:
        return record_bytes(validate_record(base))  # unmutated: must be accepted
    return mutate_json(base, draw)


def test_record_decoding_accepts_valid_records_and_refuses_the_rest_with_record_errors() -> None:
    tally = Tally("record decode/validate/verify")

    @FUZZ
    @given(data=raw_inputs(record_inputs()))
    def decode(data: bytes) -> None:
        record = tally.judge(lambda: decode_record(data))
        if isinstance(record, AttestationRecord):
            # What was accepted is signed by its asserter and re-encodes to bytes that decode to the same record.
            assert verify_record(record) == record.asserter
            assert decode_record(encode_record(record)) == record

    decode()
    tally.report(EXAMPLES)


def test_record_validation_of_json_data_never_crashes() -> None:
    tally = Tally("record validate_record (JSON data)")

    @FUZZ
    @given(data=st.data())
    def validate(data: st.DataObject) -> None:
        base = data.draw(st.sampled_from(RECORD_BASES))
        if data.draw(st.integers(0, 9)) == 0:
            tree: Json = base
        else:
            # The parsed form of a mutated record: values JSON text cannot carry (NaN, 10**400) included.
            tree = copy.deepcopy(base)
            paths = [p for p in _paths(tree) if p]
            for _ in range(data.draw(st.integers(1, 3))):
                path = data.draw(st.sampled_from(paths))
                try:
                    parent = _get(tree, path[:-1])
                    parent[path[-1]] = data.draw(JSON_VALUES)
                except (KeyError, IndexError, TypeError):
                    continue  # an earlier edit replaced the path
        record = tally.judge(lambda: validate_record(tree))
        if isinstance(record, AttestationRecord):
            tally.judge(lambda: verify_record(record))

    validate()
    tally.report(EXAMPLES)


# -- claims ------------------------------------------------------------------------------------------------
@st.composite
def cids(draw: st.DrawFn) -> str:
    digest = draw(st.binary(min_size=32, max_size=32))
    version = draw(st.sampled_from([0, 1]))
    codec = DAG_PB if version == 0 else draw(st.sampled_from([RAW, DAG_PB]))
    return str(CID(version, codec, digest))


@st.composite
def claim_parts(draw: st.DrawFn) -> tuple[str, str, str, str, str]:
    record = draw(cids())
    digest = "0x" + draw(st.binary(min_size=32, max_size=32)).hex()
    asserter = to_checksum_address(draw(st.binary(min_size=20, max_size=20)))
    rules = draw(st.sampled_from([rules_cid(), rules_cid(0), draw(cids())]))
    query = draw(st.one_of(NASTY_TEXT, st.text(ANY_CHAR, max_size=3000)))
    return record, digest, asserter, rules, query


@st.composite
def claim_inputs(draw: st.DrawFn) -> bytes:
    claim = build_claim(*draw(claim_parts()))
    if draw(st.integers(0, 9)) == 0:
        return claim
    return mutate_json(json.loads(claim), draw)


def test_claim_parsing_returns_a_claim_or_a_claim_error_and_ui_view_never_raises() -> None:
    tally = Tally("claim parse_claim + ui_view")

    @FUZZ
    @given(data=raw_inputs(claim_inputs()))
    def parse(data: bytes) -> None:
        started = time.monotonic()
        view = ui_view(data)  # mirrors the Oracle UI: it has no error to raise, only "not shown"
        assert time.monotonic() - started < SLOW_S, "ui_view is slower than linear somewhere"
        assert view is None or (isinstance(view[0], str) and isinstance(view[1], str))
        claim = tally.judge(lambda: parse_claim(data))
        if isinstance(claim, Claim):
            assert claim.record_cid == str(CID.parse(claim.record_cid))
            assert claim.asserter == to_checksum_address(claim.asserter)

    parse()
    tally.report(EXAMPLES)


def test_any_query_builds_a_claim_that_parses_back_and_shows_in_the_ui() -> None:
    tally = Tally("claim build_claim (hostile queries)")

    @FUZZ
    @given(parts=claim_parts())
    def build(parts: tuple[str, str, str, str, str]) -> None:
        record, digest, asserter, rules, query = parts
        data = build_claim(record, digest, asserter, rules, query)
        parsed = parse_claim(data)
        assert (parsed.record_cid, parsed.digest, parsed.asserter, parsed.rules_cid) == (
            record,
            digest,
            asserter,
            rules,
        )
        assert ui_view(data) == (parsed.title, parsed.description)
        # Every other call to the target must accept it; count a rejected mutation of it so both outcomes occur.
        tally.outcomes["accepted"] += 1
        tally.judge(lambda: parse_claim(data[:-1]))

    build()
    tally.report(EXAMPLES * 2)


# -- CAR import --------------------------------------------------------------------------------------------
Blocks = list[tuple[CID, bytes]]


def _small_dag(seed: int, version: int) -> tuple[CID, Blocks]:
    """A UnixFS file as our importer builds it, shrunk (tiny chunks, fan-out 3) so a few bytes make a deep DAG."""
    data = hashlib.sha256(seed.to_bytes(4, "big")).digest() * (seed % 5 + 1)
    blocks: Blocks = []
    root = import_stream(
        io.BytesIO(data), cid_version=version, on_block=lambda c, b: blocks.append((c, b)), chunk_size=16, max_links=3
    )
    return root, blocks


DAGS = [_small_dag(seed, version) for seed in range(6) for version in (0, 1)]


@st.composite
def any_cids(draw: st.DrawFn) -> CID:
    version = draw(st.sampled_from([0, 1]))
    codec = DAG_PB if version == 0 else draw(st.sampled_from([RAW, DAG_PB, DAG_CBOR, 0x300001]))
    return CID(version, codec, draw(st.binary(min_size=32, max_size=32)))


def _cbor_head(major: int, n: int) -> bytes:
    if n < 24:
        return bytes((major << 5 | n,))
    for extra, size in ((24, 1), (25, 2), (26, 4), (27, 8)):
        if n < 1 << (8 * size):
            return bytes((major << 5 | extra,)) + n.to_bytes(size, "big")
    return bytes((major << 5 | 27,)) + b"\xff" * 8


def _cbor_containers(inner: st.SearchStrategy[bytes]) -> st.SearchStrategy[bytes]:
    """Arrays, maps (with any items as keys), tags, and CIDs (tag 42) around encoded items."""
    return st.one_of(
        st.lists(inner, max_size=3).map(lambda xs: _cbor_head(4, len(xs)) + b"".join(xs)),
        st.lists(inner, max_size=3).map(lambda xs: _cbor_head(5, len(xs) // 2) + b"".join(xs)),
        st.tuples(st.integers(0, 100), inner).map(lambda t: _cbor_head(6, t[0]) + t[1]),
        inner.map(lambda x: _cbor_head(6, 42) + x),
    )


CBOR_ITEMS = st.recursive(
    st.one_of(
        st.integers(0, 2**64 - 1).map(lambda n: _cbor_head(0, n)),
        st.integers(0, 2**64 - 1).map(lambda n: _cbor_head(1, n)),
        st.binary(max_size=40).map(lambda b: _cbor_head(2, len(b)) + b),
        st.text(ANY_CHAR, max_size=10)
        .map(lambda t: t.encode("utf-8", "surrogatepass"))
        .map(lambda b: _cbor_head(3, len(b)) + b),
        st.binary(min_size=1, max_size=9),  # anything, including indefinite lengths and floats
    ),
    _cbor_containers,
    max_leaves=8,
)


def _header_with(draw: st.DrawFn, roots: list[CID]) -> bytes:
    """A CAR header: ours, or a dag-cbor map with wrong, missing or extra fields."""
    choice = draw(st.integers(0, 3))
    if choice == 0:
        return encode_header(roots)
    if choice == 1:
        return draw(CBOR_ITEMS)
    root_items = b"".join(
        _cbor_head(6, 42) + _cbor_head(2, 1 + len(r.to_bytes())) + b"\0" + r.to_bytes() for r in roots
    )
    fields = {
        b"\x65roots": _cbor_head(4, len(roots)) + root_items,
        b"\x67version": draw(st.one_of(st.just(b"\x01"), CBOR_ITEMS)),
    }
    if draw(st.booleans()):
        fields[b"\x65extra"] = draw(CBOR_ITEMS)
    keys = draw(st.permutations(list(fields)))[: draw(st.integers(0, len(fields)))]
    return _cbor_head(5, len(keys)) + b"".join(k + fields[k] for k in keys)


@st.composite
def car_inputs(draw: st.DrawFn) -> bytes:
    root, blocks = draw(st.sampled_from(DAGS))
    roots = [root]
    blocks = list(blocks)
    if draw(st.integers(0, 4)) == 0:
        blocks.reverse()  # root first, as `ipfs dag export` writes
    for _ in range(draw(st.integers(0, 3))):
        op = draw(st.sampled_from(["none", "drop", "dup", "swap", "tamper", "recid", "roots", "extra", "foreign"]))
        at = draw(st.integers(0, len(blocks) - 1)) if blocks else 0
        if op == "drop" and blocks:
            del blocks[at]
        elif op == "dup" and blocks:
            blocks.insert(draw(st.integers(0, len(blocks))), blocks[at])
        elif op == "swap" and len(blocks) > 1:
            other = draw(st.integers(0, len(blocks) - 1))
            blocks[at], blocks[other] = blocks[other], blocks[at]
        elif op == "tamper" and blocks:
            cid, block = blocks[at]
            blocks[at] = (cid, mutate_bytes(block, draw))
        elif op == "recid" and blocks:
            cid, block = blocks[at]
            # The same bytes under a CID of another version or codec: it hashes right but decodes differently.
            blocks[at] = (CID(1, draw(st.sampled_from([RAW, DAG_PB, DAG_CBOR])), cid.digest), block)
        elif op == "roots":
            roots = draw(st.lists(st.one_of(st.just(root), any_cids()), max_size=3))
        elif op == "extra":
            block = draw(st.binary(max_size=64))
            blocks.append((CID.for_block(block, codec=draw(st.sampled_from([RAW, DAG_PB])), version=1), block))
        elif op == "foreign":
            other_root, other_blocks = draw(st.sampled_from(DAGS))
            roots.append(other_root)
            blocks += draw(st.lists(st.sampled_from(other_blocks), max_size=len(other_blocks)))
    out = io.BytesIO()
    write_car(out, roots, blocks)
    data = out.getvalue()
    if draw(st.integers(0, 3)) == 0:
        header = _header_with(draw, roots)
        first = len(encode_header(roots))
        data = encode_varint(len(header)) + header + data[len(encode_varint(first)) + first :]
    if draw(st.integers(0, 3)) == 0:
        data = mutate_bytes(data, draw)
    return data


def _snapshot(root: Path) -> dict[str, str]:
    """Every file (with a hash of its bytes) and directory under the store: what "unchanged" means."""
    out: dict[str, str] = {}
    for path in sorted(root.rglob("*")):
        rel = str(path.relative_to(root))
        out[rel] = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else "dir"
    return out


def _restore(root: Path, before: dict[str, str]) -> None:
    for path in sorted(root.rglob("*"), reverse=True):
        if str(path.relative_to(root)) not in before:
            path.unlink() if path.is_file() else path.rmdir()


@pytest.fixture
def fuzz_store(tmp_path: Path) -> Iterator[LocalStore]:
    # tmpfs when there is one: the import fsyncs every staged block.
    shm = Path("/dev/shm")
    base = Path(os.environ.get("ATTEST_FUZZ_TMP") or (shm if shm.is_dir() and os.access(shm, os.W_OK) else tmp_path))
    root = base / f"attest-fuzz-{os.getpid()}-{time.monotonic_ns()}"
    store = LocalStore(root)
    # Some content already stored, so imports meet blocks they need not write and DAGs they can complete.
    store.put(b"already here " * 3)
    loose = io.BytesIO()
    write_car(loose, [], DAGS[0][1][:2] + DAGS[1][1])  # a CAR without roots: blocks, whole DAGs or not
    assert store.import_car(io.BytesIO(loose.getvalue())) == []
    yield store
    shutil.rmtree(root, ignore_errors=True)


def test_car_import_is_all_or_nothing_and_refuses_bad_cars_with_car_errors(fuzz_store: LocalStore) -> None:
    tally = Tally("CAR import into the local store")
    root = fuzz_store.root

    @FUZZ
    @given(data=raw_inputs(car_inputs()))
    def import_car(data: bytes) -> None:
        before = _snapshot(root)
        roots = tally.judge(lambda: fuzz_store.import_car(io.BytesIO(data)))
        if roots is None:
            assert _snapshot(root) == before, "a rejected CAR changed the store"
            return
        assert isinstance(roots, list)
        for cid in roots:
            # Accepted means every root's DAG is now whole and intact in the store.
            fuzz_store.export_car(cid, io.BytesIO())
        _restore(root, before)

    import_car()
    tally.report(EXAMPLES)


# -- config ------------------------------------------------------------------------------------------------
_ENV_NAMES = st.from_regex(r"[A-Z_][A-Z0-9_]{0,12}", fullmatch=True)
_URLS = st.sampled_from(["https://gw.example", "http://127.0.0.1:8080/", "https://api.pinata.cloud/psa"])
_ADDRESSES = st.binary(min_size=20, max_size=20).map(to_checksum_address)


@st.composite
def valid_configs(draw: st.DrawFn) -> dict[str, Any]:
    """Config data that our models accept, as `attest config show` would dump it."""
    ipfs = {
        "cid_version": draw(st.sampled_from([0, 1])),
        "timeout_s": draw(st.floats(0.001, 3600)),
        "kubo_api": draw(st.one_of(st.none(), st.just("/ip4/127.0.0.1/tcp/5001/http"))),
        "gateways": draw(st.lists(_URLS, max_size=2)),
        "pinning": [
            {"name": name, "endpoint": url, "token_env": env}
            for name, url, env in draw(
                st.lists(st.tuples(st.text(min_size=1, max_size=8), _URLS, _ENV_NAMES), max_size=2)
            )
        ],
    }
    network = {
        "rpc_url_env": draw(_ENV_NAMES),
        "registry": draw(_ADDRESSES),
        "bond": draw(st.from_regex(r"[0-9]{1,6}(\.[0-9]{1,3})?", fullmatch=True)),
        "liveness": draw(st.integers(1, 86400)),
        "identifier": "ASSERT_TRUTH2",
        "standing_allowance": draw(st.booleans()),
        "confirmations": draw(st.integers(0, 1000)),
    }
    disputer = {
        "threshold": draw(st.floats(0, 1)),
        "samples": draw(st.integers(1, 15)),
        "concurrency": draw(st.integers(1, 64)),
        "max_bond_per_dispute": "500",
        "poll_interval_s": draw(st.integers(1, 60)),
        "dry_run": draw(st.booleans()),
        "calibration": "calib.json",
    }
    data = Config.model_validate({"ipfs": ipfs, "networks": {draw(st.text(min_size=1, max_size=8)): network}})
    dumped: dict[str, Any] = data.model_dump(mode="json")
    dumped["disputer"] = DisputerConfig.model_validate(disputer).model_dump(mode="json")
    return dumped


# Lines spliced into a config: TOML that tomllib reads but our models must judge, and TOML it refuses.
RAW_TOML = st.one_of(
    st.sampled_from(["threshold = nan", "timeout_s = inf", "cid_version = -inf", "liveness = 1e400", "x = 0x7fff"]),
    st.sampled_from(
        ['bond = "\\ud800"', "when = 1979-02-30", "when = 2024-01-01T00:00:00+25:00", "[ipfs]", "[[ipfs]]"]
    ),
    st.sampled_from(["[disputer]", "disputer = 1", "ipfs = []", "[networks]", "networks = 5", "a.b.c = 1", "= 1"]),
    st.tuples(st.sampled_from(["threshold", "samples", "liveness", "timeout_s", "cid_version"]), st.integers()).map(
        lambda kv: f"{kv[0]} = {kv[1]}"
    ),
    st.integers(4290, 4400).map(lambda n: "samples = " + "9" * n),
    st.integers(1, 100_000).map(lambda n: "deep = " + "[" * n + "]" * n),
    st.integers(1, 100_000).map(lambda n: "deep = " + "{a = " * n + "1" + "}" * n),
    st.integers(1, 2_000).map(lambda n: ".".join(["k"] * n) + " = 1"),
)


@st.composite
def config_inputs(draw: st.DrawFn) -> bytes:
    data = draw(valid_configs())
    if draw(st.integers(0, 5)) > 0:
        paths = [p for p in _paths(data) if p]
        for _ in range(draw(st.integers(1, 3))):
            path = draw(st.sampled_from(paths))
            try:
                parent = _get(data, path[:-1])
                op = draw(st.sampled_from(["drop", "replace", "retype", "add"]))
                if op == "drop":
                    del parent[path[-1]]
                elif op == "replace":
                    parent[path[-1]] = draw(st.one_of(SCALARS, st.lists(SCALARS, max_size=3)))
                elif op == "retype":
                    value = parent[path[-1]]
                    parent[path[-1]] = draw(st.sampled_from([str(value), [value], {"v": value}, 1, 1.5, True]))
                elif op == "add" and isinstance(parent, dict):
                    parent[draw(NASTY_TEXT)] = draw(SCALARS)
            except (KeyError, IndexError, TypeError):
                continue  # an earlier edit replaced the path
    try:
        text = "\n".join(to_toml(data, {}))
    except ValueError:
        text = "x = " + "9" * 5000  # json.dumps refused an int past the digit limit; keep it as raw TOML
    lines = text.split("\n")
    for _ in range(draw(st.integers(0, 3))):
        op = draw(st.sampled_from(["insert", "drop", "dup"]))
        at = draw(st.integers(0, len(lines)))
        if op == "insert":
            lines.insert(at, draw(RAW_TOML))
        elif op == "drop" and at < len(lines):
            del lines[at]
        elif op == "dup" and at < len(lines):
            lines.insert(at, lines[at])
    raw = "\n".join(lines).encode("utf-8", "surrogatepass")
    if draw(st.integers(0, 4)) == 0:
        raw = mutate_bytes(raw, draw)
    return raw


def test_config_loading_returns_a_config_or_a_config_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("ATTEST_IPFS_API", "ATTEST_IPFS_GATEWAYS", "ATTEST_CONFIG"):
        monkeypatch.delenv(name, raising=False)
    shm = Path("/dev/shm")
    path = (shm if shm.is_dir() and os.access(shm, os.W_OK) else tmp_path) / f"attest-fuzz-{os.getpid()}.toml"
    attest_tally = Tally("config attest load_config")
    disputer_tally = Tally("config disputer [disputer]")

    @FUZZ
    @given(data=raw_inputs(config_inputs()))
    def load(data: bytes) -> None:
        path.write_bytes(data)
        config = attest_tally.judge(lambda: load_config(path))
        if isinstance(config, Config):
            for name in config.networks:
                assert config.ipfs_for(name) is not None
        disputer = disputer_tally.judge(lambda: load_disputer_config(path))
        if isinstance(disputer, DisputerConfig):
            for field in ("max_bond_per_dispute", "total_budget"):
                disputer.amount(field)

    try:
        load()
    finally:
        path.unlink(missing_ok=True)
    attest_tally.report(EXAMPLES)
    disputer_tally.report(EXAMPLES)
