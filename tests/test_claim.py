"""The claim: built within its size limit, read back strictly, and shown by the UMA Oracle UI as we mean it.

The UI's decision is reproduced in tests/js/oracle_ui_claim.mjs with the UI's own logic and its UTF-8 decoder
(ethers v5); every claim here is decoded by both that script and `ui_view`, and they must agree.
"""

from __future__ import annotations

import hashlib
import json
import random
import shutil
import subprocess
import time
import tomllib
from pathlib import Path
from typing import Any

import pytest

from attest.claim import (
    CLAIM_SCHEMA_V1,
    MAX_CLAIM_BYTES,
    PREVIEW_CHARS,
    RULES_FILE,
    TITLE_STEM,
    build_claim,
    parse_claim,
    query_preview,
    render_description,
    rules_bytes,
    rules_cid,
    ui_view,
)
from attest.errors import ClaimError
from attest.ipfs.unixfs import cid_of

ROOT = Path(__file__).resolve().parent.parent
UI_JS = ROOT / "tests" / "js" / "oracle_ui_claim.mjs"
RECORD_CID = str(cid_of(b"a record"))
RECORD_CID_V0 = str(cid_of(b"a record", cid_version=0))
DIGEST = "0x" + hashlib.sha256(b"signing bytes").hexdigest()
ASSERTER = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed"
# sha256 of claim-rules-v1.md as shipped. v1 is frozen: claims on chain name its CID, so it must never change.
RULES_V1_SHA256 = "67961eba3cbaf3b02ea8545265d0e8a2ab8dfab0f9e2365235f0f26f07658550"

HOSTILE_QUERIES = [
    'He said "stop"} and \\n left',
    "line one\nline two\r\n\tthree",
    "evil \u202egnp.exe\u202c and zero\u200bwidth\u2060 joiners\ufeff",
    "rules: vote yes. explanation: always true }",
    "</script><script>alert(1)</script> [link](javascript:alert(1)) **bold**",
    "NUL\x00 and bell\x07 and DEL\x7f",
    "emoji 😀👩‍👩‍👧 and CJK 漢字 and combining é",
    "}" * 50,
    "\u2028\u2029 separators",
]


def ui_views(claims: list[bytes]) -> list[tuple[str, str] | None]:
    """The Oracle UI's view of each claim, from the Node script (one process for the whole batch)."""
    node = shutil.which("node")
    assert node is not None, "node must be on PATH for the Oracle UI cross-check"
    out = subprocess.run(
        [node, str(UI_JS)],
        input=json.dumps(["0x" + c.hex() for c in claims]),
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
        timeout=60,
    )
    views: list[dict[str, Any]] = json.loads(out.stdout)
    assert len(views) == len(claims)
    return [None if "shown" in v else (v["title"], v["description"]) for v in views]


def claim_for(query: str, record_cid: str = RECORD_CID) -> bytes:
    return build_claim(record_cid, DIGEST, ASSERTER, rules_cid(), query)


def fields(claim: bytes) -> dict[str, Any]:
    value = json.loads(claim)
    assert isinstance(value, dict)
    return value


def reencode(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


# -- building and reading back ---------------------------------------------------------------------------
def test_round_trip_names_everything_a_voter_needs() -> None:
    claim = claim_for("How is the EIP-1559 base fee used?")
    parsed = parse_claim(claim)
    assert parsed.record_cid == RECORD_CID
    assert parsed.digest == DIGEST
    assert parsed.asserter == ASSERTER
    assert parsed.rules_cid == rules_cid()
    assert parsed.record_uri == f"ipfs://{RECORD_CID}"
    assert parsed.title == f"{TITLE_STEM} to “How is the EIP-1559 base fee used?”"
    data = fields(claim)
    assert list(data) == ["title", "description", "schema", "record", "digest", "asserter", "rules"]
    assert data["schema"] == CLAIM_SCHEMA_V1
    assert data["record"] == f"ipfs://{RECORD_CID}"
    assert data["rules"] == f"ipfs://{rules_cid()}"
    # The human text names the same facts, so a voter reading only the UI has them all.
    for fact in (f"ipfs://{RECORD_CID}", DIGEST, ASSERTER, f"ipfs://{rules_cid()}", "domainId", "EIP-191", "RFC 8785"):
        assert fact in parsed.description
    # Nothing in the claim says which model answered: no voter could check that.
    assert "model" not in claim.decode().lower()


def test_cidv0_records_round_trip() -> None:
    assert parse_claim(claim_for("q", RECORD_CID_V0)).record_cid == RECORD_CID_V0


def test_the_oracle_ui_shows_our_title_and_description() -> None:
    claims = [claim_for(q) for q in ["plain question?", "", " \n\t ", *HOSTILE_QUERIES]]
    expected = [(fields(c)["title"], fields(c)["description"]) for c in claims]
    assert ui_views(claims) == expected
    assert [ui_view(c) for c in claims] == expected


def test_hostile_queries_stay_inside_one_clean_title_line() -> None:
    for query in HOSTILE_QUERIES:
        claim = claim_for(query)
        title = parse_claim(claim).title
        preview = title.removeprefix(f"{TITLE_STEM} to “").removesuffix("”")
        assert all(c.isprintable() for c in preview), repr(preview)
        assert not any(c in preview for c in "\u202e\u202c\u200b\u2060\ufeff\x00\x07\x7f\u2028\u2029")
        # The claim stays one JSON object whose last "}" is its own.
        assert claim.endswith(b'"}')
        assert b"\x00" not in claim
    # Both oSnap markers together would make the UI show an "OSnap Request" title instead of ours.
    defused = claim_for("rules: vote yes. explanation: always true").decode()
    assert "rules:" not in defused and "explanation:" not in defused


def test_preview_is_cut_on_a_character_boundary() -> None:
    long = "word " * 100
    preview = query_preview(long)
    assert preview.endswith("…") and len(preview) <= PREVIEW_CHARS + 1
    assert long.startswith(preview[:-1])
    # A base letter followed by a combining accent is never split from it.
    accented = "e\u0301" * 80
    cut = query_preview(accented)
    assert cut.endswith("…")
    assert not cut[:-1].endswith("e"), "the preview kept an e without its accent"
    assert query_preview("short", 10) == "short"
    assert query_preview("anything", 0) == ""
    assert parse_claim(claim_for("")).title == f"{TITLE_STEM} (the query is in the record)"


def test_multibyte_queries_still_fit_the_size_limit() -> None:
    for query in ["😀" * 5000, "漢" * 5000, "\U0010fffd" * 300, "a" * 100_000]:
        claim = claim_for(query)
        assert len(claim) <= MAX_CLAIM_BYTES
        parse_claim(claim)
    # The 4-byte-per-character query had to lose part of its preview to fit, and says so with the ellipsis.
    assert fields(claim_for("😀" * 5000))["title"].endswith("…”")


@pytest.mark.parametrize(
    ("record", "digest", "asserter", "rules"),
    [
        ("not-a-cid", DIGEST, ASSERTER, None),
        (RECORD_CID.upper(), DIGEST, ASSERTER, None),  # not the canonical spelling
        (RECORD_CID, DIGEST.upper().replace("0X", "0x"), ASSERTER, None),
        (RECORD_CID, DIGEST[:-2], ASSERTER, None),
        (RECORD_CID, DIGEST, ASSERTER.lower(), None),
        (RECORD_CID, DIGEST, ASSERTER, "ipfs://" + RECORD_CID),
    ],
)
def test_build_refuses_malformed_fields(record: str, digest: str, asserter: str, rules: str | None) -> None:
    with pytest.raises(ClaimError):
        build_claim(record, digest, asserter, rules or rules_cid(), "q")


# -- hostile claims --------------------------------------------------------------------------------------
def _mutated(change: dict[str, Any]) -> bytes:
    value = fields(claim_for("q"))
    value.update(change)
    return reencode(value)


HOSTILE_CLAIMS: dict[str, bytes] = {
    "not utf-8": b'{"title":"\xff"}',
    "overlong utf-8": b'{"title":"\xc0\xaf","description":"x"}',
    "encoded surrogate": b'{"title":"\xed\xa0\x80","description":"x"}',
    "deep nesting": b"[" * 100_000 + b"]" * 100_000,
    "deep object": b'{"a":' * 50_000 + b"1" + b"}" * 50_000,
    "oversize": b'{"title":"' + b"a" * MAX_CLAIM_BYTES + b'"}',
    "empty": b"",
    "not json": b"this answer is correct, vote yes",
    "array": b'["title","description"]',
    "NaN": b'{"title":NaN}',
    "duplicate key": claim_for("q").replace(b'"schema":', b'"schema":"llm-attest/claim/v1","schema":', 1),
    "extra key": _mutated({"note": "vote yes"}),
    "missing key": reencode({k: v for k, v in fields(claim_for("q")).items() if k != "rules"}),
    "reordered keys": reencode(dict(reversed(list(fields(claim_for("q")).items())))),
    "number digest": _mutated({"digest": 1}),
    "null asserter": _mutated({"asserter": None}),
    "other schema": _mutated({"schema": "llm-attest/claim/v2"}),
    "http record": _mutated({"record": f"https://ipfs.io/ipfs/{RECORD_CID}"}),
    "bad record cid": _mutated({"record": "ipfs://bafkreinotacid"}),
    "uppercase digest": _mutated({"digest": DIGEST.upper()}),
    "lowercase asserter": _mutated({"asserter": ASSERTER.lower()}),
    "other title": _mutated({"title": "This answer is certainly correct"}),
    "other description": _mutated({"description": "Vote 1. The answer was written by GPT-5."}),
    "description for other fields": _mutated(
        {"description": render_description(RECORD_CID_V0, DIGEST, ASSERTER, rules_cid())}
    ),
    "trailing garbage": claim_for("q") + b" and more",
    "lone surrogate escape": _mutated({"title": TITLE_STEM + " SURROGATE"}).replace(b"SURROGATE", b"\\ud800"),
}


@pytest.mark.parametrize("name", list(HOSTILE_CLAIMS))
def test_parse_refuses_hostile_claims_with_a_claim_error(name: str) -> None:
    with pytest.raises(ClaimError) as err:
        parse_claim(HOSTILE_CLAIMS[name])
    assert len(str(err.value)) < 400  # the message never echoes megabytes of input


def test_parse_never_raises_anything_but_claim_error_on_random_damage() -> None:
    rng = random.Random(5)
    base = claim_for("How is the base fee used?")
    for _ in range(2000):
        data = bytearray(base)
        for _ in range(rng.randint(1, 4)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        try:
            parsed = parse_claim(bytes(data))
        except ClaimError:
            continue
        # Damage that survives strict parsing can only be inside the free-text title.
        assert (parsed.record_cid, parsed.digest, parsed.asserter) == (RECORD_CID, DIGEST, ASSERTER)


def test_hostile_claims_are_judged_in_linear_time() -> None:
    # Found by tests/test_fuzz.py: the depth check was quadratic in unterminated strings; a claim in an event has no
    # size limit but the block's, so ui_view on one of these took minutes.
    hostile = ('{"title": "' + '\\"' * 200_000 + "}").encode()
    started = time.monotonic()
    assert ui_view(hostile) is None
    with pytest.raises(ClaimError):
        parse_claim(hostile)
    assert time.monotonic() - started < 5


def test_ui_view_decodes_exactly_as_the_oracle_ui() -> None:
    good = claim_for("q")
    samples = [
        *HOSTILE_CLAIMS.values(),
        good,
        good + b"\n trailing text",
        good + b" then } again",  # the last "}" is no longer ours: the UI shows raw text
        b'{"title":"a","description":"b"}' + b"\x00" * 3,
        b'{"title":"a\x00b","description":"c"}',  # the UI strips NULs before parsing
        b'\xef\xbb\xbf{"title":"bom","description":"x"}',
        b'{"title":"a","title":"b","description":"c"}',  # JSON.parse keeps the last
        b'{"title":"a","description":"b","extra":[1,{"x":null}]}',
        b'{"title":1,"description":"b"}',
        b'{"title":"a"}',
        b'}{"title":"a","description":"b"}',
        b'{"title":"1e400","description":"b","n":1e400}',
        b" \t\r\n" + b'{"title":"ws","description":"x"}',
        b"[" * 200 + b'{"title":"a","description":"b"}' + b"]" * 200,
        b'{"title":"explanation: x","description":"rules: y"}',
        b'{"title":"\\ud83d\\ude00 \\u0000","description":"\\ud800"}',
    ]
    rng = random.Random(7)
    for _ in range(150):
        data = bytearray(good)
        data[rng.randrange(len(data))] = rng.randrange(256)
        samples.append(bytes(data))
    assert [ui_view(s) for s in samples] == ui_views(samples)


# -- the rules document ----------------------------------------------------------------------------------
def test_rules_document_is_shipped_linked_and_named_by_its_ipfs_add_cid() -> None:
    assert rules_bytes() == RULES_FILE.read_bytes()
    assert (ROOT / "docs" / "claim-rules.md").resolve() == RULES_FILE
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "rules/*.md" in data["tool"]["setuptools"]["package-data"]["attest"]
    assert rules_cid() == str(cid_of(rules_bytes(), cid_version=1))
    assert rules_cid(0).startswith("Qm")
    text = rules_bytes().decode("utf-8")
    for key in ("title", "description", "schema", "record", "digest", "asserter", "rules", CLAIM_SCHEMA_V1):
        assert f"`{key}`" in text
    assert "Vote **1 (true)**" in text and "Vote **0 (false)**" in text


def test_rules_v1_never_changes() -> None:
    assert hashlib.sha256(rules_bytes()).hexdigest() == RULES_V1_SHA256, (
        "claim-rules-v1.md changed: claims on chain name its CID. Restore it and write claim-rules-v2.md instead."
    )
