"""The v1 attestation record: canonical bytes, digest, asserter signature, schema file, and every bad input."""

from __future__ import annotations

import copy
import hashlib
import json
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from eth_account import Account
from eth_account.messages import encode_defunct
from eth_account.signers.local import LocalAccount
from eth_keys.datatypes import Signature
from eth_utils.crypto import keccak

from attest.errors import BadSignature, OversizeRecord, RecordError, UnsupportedSchema
from attest.record import (
    DEFAULT_MAX_BYTES,
    MAX_BYTES_ENV,
    SCHEMA_FILE,
    SCHEMA_V1,
    AttestationRecord,
    canonicalize,
    decode_record,
    digest,
    digest_hex,
    encode_record,
    max_record_bytes,
    record_bytes,
    record_json_schema,
    recover_signer,
    render_json_schema,
    sign_record,
    signing_bytes,
    utc_timestamp,
    validate_record,
    verify_record,
)
from attest.record.codec import check_depth
from attest.record.signing import signable

Json = dict[str, Any]
SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
EIP55_VECTOR = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed"  # from EIP-55's test cases
CID_V0 = "QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ff5o"  # `ipfs add` of b"hello world\n"
CID_V1 = "bafkreifjjcie6lypi6ny7amxnfftagclbuxndqonfipmb64f2km2devei4"
CHUNK_TEXT = "EIP-1559 adds a base fee that is burned."


def sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def full_fields(asserter: str) -> Json:
    """A v1 record with every optional part filled in, as plain JSON data."""
    return {
        "schema": SCHEMA_V1,
        "query": "What does EIP-1559 do with the base fee?",
        "answer": "It burns it.",
        "context": [
            {
                "source": "eips/EIP-1559.md",
                "doc_cid": CID_V1,
                "chunk_index": 3,
                "text": CHUNK_TEXT,
                "sha256": sha(CHUNK_TEXT),
            }
        ],
        "corpus": CID_V0,
        "model": {
            "provider": "openai",
            "requested_model": "gpt-4o-mini",
            "returned_model": "gpt-4o-mini-2024-07-18",
            "system_fingerprint": "fp_0123",
            "response_id": "chatcmpl-1",
            "params": {"temperature": 0.1, "top_p": 1.0, "max_tokens": 256, "seed": 7},
            "usage": {"input_tokens": 120, "output_tokens": 5},
            "license": None,
            "sdk": {"name": "openai", "version": "3.0.0"},
        },
        "prompt": {"template": "rag-answer@1", "template_sha256": sha("template")},
        "created_at": "2025-01-02T03:04:05Z",
        "asserter": asserter,
    }


def minimal_fields(asserter: str) -> Json:
    """The smallest valid record: every optional part null, no context."""
    return {
        "schema": SCHEMA_V1,
        "query": "q",
        "answer": "a",
        "context": [],
        "corpus": None,
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
        "prompt": None,
        "created_at": "2025-01-02T03:04:05Z",
        "asserter": asserter,
    }


@pytest.fixture(scope="module")
def asserter() -> LocalAccount:
    account: LocalAccount = Account.create()
    return account


@pytest.fixture(scope="module")
def stranger() -> LocalAccount:
    account: LocalAccount = Account.create()
    return account


@pytest.fixture
def signed(asserter: LocalAccount) -> AttestationRecord:
    return sign_record(validate_record(full_fields(asserter.address)), asserter)


def as_json(record: AttestationRecord) -> Json:
    data: Json = json.loads(record_bytes(record))
    return data


def to_bytes(data: Any) -> bytes:
    return json.dumps(data).encode("ascii")  # \u escapes let lone surrogates through, as an attacker could


# -- RFC 8785 known vectors (hand-checked against RFC 8785 §3.2 and ECMAScript Number::toString) ---------------
def test_keys_sort_by_utf16_code_units_not_code_points() -> None:
    # U+1F600 is the surrogate pair D83D DE00 in UTF-16, so it sorts before U+FB33 despite its larger code point.
    value = {"\u20ac": 1, "\r": 2, "\ufb33": 3, "1": 4, "\U0001f600": 5, "\u0080": 6, "\u00f6": 7}
    expected = '{"\\r":2,"1":4,"\u0080":6,"\u00f6":7,"\u20ac":1,"\U0001f600":5,"\ufb33":3}'.encode()
    assert canonicalize(value) == expected


def test_numbers_use_the_shortest_ecmascript_form() -> None:
    value = [1e21, 1e20, 0.1, -0.0, 1e-7, 0.000001, 333333333.3333333, 5e-324, -1.5, 1.0, 9007199254740991]
    expected = b"[1e+21,100000000000000000000,0.1,0,1e-7,0.000001,333333333.3333333,5e-324,-1.5,1,9007199254740991]"
    assert canonicalize(value) == expected


def test_strings_escape_only_controls_quote_and_backslash_and_stay_utf8() -> None:
    value = {"s": '\u0000\u001f"\\\b\f\n\r\t\u007f/\u00e9', "b": [True, False, None], "a": {}}
    expected = b'{"a":{},"b":[true,false,null],"s":"\\u0000\\u001f\\"\\\\\\b\\f\\n\\r\\t\x7f/\xc3\xa9"}'
    assert canonicalize(value) == expected


@pytest.mark.parametrize("value", [2**53, float("nan"), float("inf"), "\ud800", {1: "non-string key"}])
def test_values_outside_jcs_are_a_record_error(value: Any) -> None:
    with pytest.raises(RecordError, match="RFC 8785"):
        canonicalize(value)


# -- digest ----------------------------------------------------------------------------------------------------
def test_signing_bytes_of_a_minimal_record_match_a_hand_written_canonical_form() -> None:
    record = validate_record(minimal_fields(EIP55_VECTOR))
    expected = (
        b'{"answer":"a","asserter":"0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed","context":[],"corpus":null,'
        b'"created_at":"2025-01-02T03:04:05Z","model":{"license":null,"params":{"max_tokens":null,"seed":null,'
        b'"temperature":null,"top_p":null},"provider":"external","requested_model":"m","response_id":null,'
        b'"returned_model":null,"sdk":null,"system_fingerprint":null,"usage":null},"prompt":null,"query":"q",'
        b'"schema":"llm-attest/record/v1"}'
    )
    assert signing_bytes(record) == expected
    assert digest(record) == hashlib.sha256(expected).digest()
    assert len(digest(record)) == 32
    assert digest_hex(record) == "0x" + hashlib.sha256(expected).hexdigest()


def reversed_keys(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: reversed_keys(value[k]) for k in reversed(list(value))}
    if isinstance(value, list):
        return [reversed_keys(v) for v in value]
    return value


def test_same_record_in_another_key_order_and_layout_has_the_same_digest(signed: AttestationRecord) -> None:
    data = as_json(signed)
    pretty = json.dumps(reversed_keys(data), indent=3, ensure_ascii=True).encode()
    assert pretty != record_bytes(signed)
    again = decode_record(pretty)
    assert digest(again) == digest(signed)
    assert record_bytes(again) == record_bytes(signed)


def test_integral_temperature_written_as_1_or_1_0_digests_the_same(asserter: LocalAccount) -> None:
    as_int, as_float = full_fields(asserter.address), full_fields(asserter.address)
    as_int["model"]["params"]["temperature"] = 1
    as_float["model"]["params"]["temperature"] = 1.0
    assert digest(validate_record(as_int)) == digest(validate_record(as_float))
    assert b'"temperature":1,' in signing_bytes(validate_record(as_float))


def test_every_field_changes_the_digest_except_the_signature(signed: AttestationRecord, asserter: LocalAccount) -> None:
    unsigned = validate_record(full_fields(asserter.address))
    assert digest(unsigned) == digest(signed)
    other = full_fields(asserter.address)
    other["model"]["usage"]["output_tokens"] = 6
    assert digest(validate_record(other)) != digest(unsigned)


# -- signature -------------------------------------------------------------------------------------------------
def test_sign_encode_decode_round_trip(signed: AttestationRecord, asserter: LocalAccount) -> None:
    data = encode_record(signed)
    assert data == record_bytes(signed)
    assert b'"signature":"0x' in data and b"signature" not in signing_bytes(signed)
    back = decode_record(data)
    assert back == signed
    assert verify_record(back) == recover_signer(back) == asserter.address


def test_signature_is_eip191_personal_sign_of_the_raw_32_byte_digest(signed: AttestationRecord) -> None:
    assert signed.signature is not None
    raw = bytes.fromhex(signed.signature[2:])
    # Rebuilt by hand: the prefix carries length 32, so the digest is signed as bytes, not as 66 hex characters.
    message_hash = keccak(b"\x19Ethereum Signed Message:\n32" + digest(signed))
    public_key = Signature(raw[:64] + bytes([raw[64] - 27])).recover_public_key_from_msg_hash(message_hash)
    assert public_key.to_checksum_address() == signed.asserter
    # What a wallet tool does when handed the digest as 0x-hex bytes.
    assert Account.recover_message(encode_defunct(hexstr=digest_hex(signed)), signature=raw) == signed.asserter


def test_signing_with_a_key_that_is_not_the_asserter_is_refused(asserter: LocalAccount, stranger: LocalAccount) -> None:
    with pytest.raises(BadSignature, match=stranger.address):
        sign_record(validate_record(full_fields(asserter.address)), stranger)


def test_signature_from_another_key_is_a_bad_signature(signed: AttestationRecord, stranger: LocalAccount) -> None:
    forged = as_json(signed)
    forged["signature"] = "0x" + bytes(stranger.sign_message(signable(signed)).signature).hex()
    with pytest.raises(BadSignature, match=f"recovers to {stranger.address}, not the asserter"):
        decode_record(to_bytes(forged))
    with pytest.raises(BadSignature):
        encode_record(validate_record(forged))


def test_answer_changed_after_signing_is_a_bad_signature(signed: AttestationRecord) -> None:
    tampered = as_json(signed)
    tampered["answer"] = "It refunds it."
    with pytest.raises(BadSignature, match="changed after signing"):
        decode_record(to_bytes(tampered))
    with pytest.raises(BadSignature):
        encode_record(signed.model_copy(update={"answer": "It refunds it."}))


def test_the_malleated_high_s_twin_of_a_valid_signature_is_refused(signed: AttestationRecord) -> None:
    assert signed.signature is not None
    raw = bytes.fromhex(signed.signature[2:])
    s = int.from_bytes(raw[32:64], "big")
    twin = raw[:32] + (SECP256K1_N - s).to_bytes(32, "big") + bytes([55 - raw[64]])  # 27 <-> 28
    # The twin recovers to the same key, so only the canonical-form rule stops a second set of pinned bytes.
    assert Account.recover_message(signable(signed), signature=twin) == signed.asserter
    data = as_json(signed)
    data["signature"] = "0x" + twin.hex()
    with pytest.raises(BadSignature, match="canonical form"):
        decode_record(to_bytes(data))


def test_unsigned_records_cannot_be_written_or_read(asserter: LocalAccount) -> None:
    unsigned = validate_record(full_fields(asserter.address))
    with pytest.raises(BadSignature, match="unsigned"):
        encode_record(unsigned)
    with pytest.raises(BadSignature, match="unsigned"):
        decode_record(record_bytes(unsigned))


# -- schema file -----------------------------------------------------------------------------------------------
def test_shipped_schema_file_is_exactly_what_the_model_generates() -> None:
    text = SCHEMA_FILE.read_text(encoding="utf-8")
    assert text == render_json_schema(), "run `python scripts/export_record_schema.py`"
    assert json.loads(text) == record_json_schema()


def test_schema_requires_every_field_but_the_signature_and_never_allows_a_null_signature() -> None:
    schema = record_json_schema()
    assert set(schema["required"]) == set(schema["properties"]) - {"signature"}
    assert schema["properties"]["signature"] == {
        "description": schema["properties"]["signature"]["description"],
        "pattern": "^0x[0-9a-f]{130}$",
        "title": "Signature",
        "type": "string",
    }
    assert schema["properties"]["schema"]["const"] == SCHEMA_V1
    assert schema["additionalProperties"] is False
    assert all(d["additionalProperties"] is False for d in schema["$defs"].values())


# -- bad input: each raises exactly one RecordError subclass and yields no record ------------------------------
Mutation = Callable[[Json], Any]


def set_path(path: str, value: Any) -> Mutation:
    def mutate(data: Json) -> Json:
        *parents, last = path.split(".")
        node: Any = data
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node[part]
        node[last] = value
        return data

    return mutate


def drop(key: str) -> Mutation:
    def mutate(data: Json) -> Json:
        del data[key]
        return data

    return mutate


BAD_DATA: list[tuple[str, Mutation, type[RecordError], str]] = [
    ("extra field", set_path("extra", 1), RecordError, "Extra inputs are not permitted"),
    ("nested extra field", set_path("model.params.stop", ["x"]), RecordError, "model.params.stop"),
    ("optional field omitted instead of null", drop("corpus"), RecordError, "corpus: Field required"),
    ("null signature", set_path("signature", None), RecordError, "not null"),
    ("string for an integer", set_path("context.0.chunk_index", "3"), RecordError, "context.0.chunk_index"),
    ("float for an integer", set_path("model.params.max_tokens", 256.0), RecordError, "max_tokens"),
    ("bool for a float", set_path("model.params.temperature", True), RecordError, "temperature"),
    ("temperature out of range", set_path("model.params.temperature", 2.5), RecordError, "temperature"),
    ("integer beyond 2**53", set_path("model.usage.output_tokens", 2**53), RecordError, "output_tokens"),
    ("bad CIDv0", set_path("corpus", "Qm" + "0" * 44), RecordError, "corpus"),
    ("bad CIDv1", set_path("context.0.doc_cid", "bafy" + "1" * 55), RecordError, "doc_cid"),
    ("uppercase sha256", set_path("prompt.template_sha256", "A" * 64), RecordError, "template_sha256"),
    ("chunk hash not of its text", set_path("context.0.text", "other"), RecordError, "not the sha256"),
    ("template without @version", set_path("prompt.template", "rag-answer"), RecordError, "prompt.template"),
    ("created_at with an offset", set_path("created_at", "2025-01-02T03:04:05+00:00"), RecordError, "created_at"),
    ("created_at not a date", set_path("created_at", "2025-02-30T03:04:05Z"), RecordError, "calendar"),
    ("asserter not checksummed", lambda d: set_path("asserter", d["asserter"].lower())(d), RecordError, "EIP-55"),
    ("empty answer", set_path("answer", ""), RecordError, "answer"),
    ("lone surrogate", set_path("answer", "\ud800"), RecordError, "surrogate"),
    ("short signature", set_path("signature", "0x1234"), RecordError, "signature"),
    ("not an object", lambda d: [d], RecordError, "JSON object"),
    ("no schema", drop("schema"), RecordError, 'no "schema" field'),
    ("other schema", set_path("schema", "llm-attest/record/v2"), UnsupportedSchema, "llm-attest/record/v2"),
    ("non-string schema", set_path("schema", 2), UnsupportedSchema, "not supported"),
]


@pytest.mark.parametrize(("mutate", "error", "message"), [c[1:] for c in BAD_DATA], ids=[c[0] for c in BAD_DATA])
def test_records_that_fail_the_schema(
    signed: AttestationRecord, mutate: Mutation, error: type[RecordError], message: str
) -> None:
    data = to_bytes(mutate(copy.deepcopy(as_json(signed))))
    with pytest.raises(RecordError, match=message) as caught:
        decode_record(data)
    assert type(caught.value) is error


def test_a_huge_bad_field_is_not_echoed_in_the_error(signed: AttestationRecord) -> None:
    data = as_json(signed)
    data["context"][0]["doc_cid"] = "x" * 100_000
    with pytest.raises(RecordError) as caught:
        decode_record(to_bytes(data))
    assert "xxxxxxxxxx" not in str(caught.value) and len(str(caught.value)) < 600


BAD_BYTES: list[tuple[str, Callable[[bytes], bytes], str]] = [
    ("invalid UTF-8", lambda b: b.replace(b"It burns it.", b"It burns \xff."), "not valid UTF-8"),
    ("overlong UTF-8", lambda b: b.replace(b"It burns it.", b"It burns \xc0\xaf."), "not valid UTF-8"),
    ("UTF-8 BOM", lambda b: b"\xef\xbb\xbf" + b, "not valid JSON"),
    ("truncated JSON", lambda b: b[:-1], "not valid JSON"),
    ("duplicate key", lambda b: b.replace(b'"answer":', b'"answer":"x","answer":', 1), 'repeats the key "answer"'),
    ("NaN", lambda b: b.replace(b'"top_p":1', b'"top_p":NaN'), "NaN"),
    ("Infinity", lambda b: b.replace(b'"top_p":1', b'"top_p":-Infinity'), "-Infinity"),
    ("1e400", lambda b: b.replace(b'"top_p":1', b'"top_p":1e400'), "top_p"),
    ("lone surrogate escape", lambda b: b.replace(b"It burns it.", b"\\udc00"), "surrogate"),
    ("raw control character", lambda b: b.replace(b"It burns it.", b"a\x01b"), "not valid JSON"),
    ("deep nesting", lambda b: b"[" * 100_000 + b"]" * 100_000, "nested more than 32 levels"),
    ("5000-digit integer", lambda b: b.replace(b'"seed":7', b'"seed":' + b"9" * 5000), "not valid JSON"),
]


@pytest.mark.parametrize(("corrupt", "message"), [c[1:] for c in BAD_BYTES], ids=[c[0] for c in BAD_BYTES])
def test_bytes_that_are_not_strict_utf8_json(
    signed: AttestationRecord, corrupt: Callable[[bytes], bytes], message: str
) -> None:
    data = corrupt(encode_record(signed))
    with pytest.raises(RecordError, match=message) as caught:
        decode_record(data)
    assert type(caught.value) is RecordError


def test_depth_is_counted_outside_strings_only() -> None:
    check_depth("[" * 32 + "]" * 32)
    check_depth('[{"a": "[[[[\\"[[[[" }]', limit=2)  # brackets and an escaped quote inside a string
    with pytest.raises(RecordError, match="more than 2 levels"):
        check_depth('[{"a": "x", "b": [1]}]', limit=2)


@pytest.mark.parametrize(
    "hostile",
    ['"' + '\\"' * 400_000, '"\\' * 400_000, '{"a": "' + '\\"[' * 250_000],
    ids=["escaped-quotes", "quote-backslash", "unterminated-with-brackets"],
)
def test_unterminated_strings_are_refused_in_linear_time(hostile: str) -> None:
    # Found by tests/test_fuzz.py: the depth check retried the string match at every later quote, so ~800 KB of
    # this (under the 1 MiB limit) took hours before anything was refused.
    started = time.monotonic()
    with pytest.raises(RecordError):
        decode_record(hostile.encode())
    assert time.monotonic() - started < 5


def test_unknown_schema_version_names_it_and_the_supported_one(signed: AttestationRecord) -> None:
    data = as_json(signed)
    data["schema"] = "llm-attest/record/v9"
    with pytest.raises(UnsupportedSchema) as caught:
        decode_record(to_bytes(data))
    assert str(caught.value) == (
        'record schema "llm-attest/record/v9" is not supported; this release reads llm-attest/record/v1. '
        "Upgrade llm-attest to read newer records."
    )
    with pytest.raises(UnsupportedSchema):
        validate_record(data)


# -- size limit ------------------------------------------------------------------------------------------------
def test_size_limit_applies_on_write_and_on_read(signed: AttestationRecord) -> None:
    size = len(encode_record(signed))
    assert encode_record(signed, max_bytes=size) == record_bytes(signed)
    assert decode_record(record_bytes(signed), max_bytes=size) == signed
    over = f"{size:,} bytes, over the {size - 1:,}-byte limit, so it was not written"
    with pytest.raises(OversizeRecord, match=over):
        encode_record(signed, max_bytes=size - 1)
    with pytest.raises(OversizeRecord, match="so it was not read"):
        decode_record(record_bytes(signed), max_bytes=size - 1)


def test_size_is_checked_before_the_bytes_are_decoded() -> None:
    with pytest.raises(OversizeRecord):
        decode_record(b"\xff" * 101, max_bytes=100)


def test_the_limit_comes_from_the_environment(signed: AttestationRecord, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(MAX_BYTES_ENV, "100")
    assert max_record_bytes() == 100
    assert max_record_bytes(5000) == 5000  # an explicit parameter wins
    with pytest.raises(OversizeRecord, match=MAX_BYTES_ENV):
        encode_record(signed)
    with pytest.raises(OversizeRecord):
        decode_record(record_bytes(signed))
    monkeypatch.setenv(MAX_BYTES_ENV, "1MiB")
    with pytest.raises(RecordError, match="whole number of bytes"):
        max_record_bytes()
    with pytest.raises(RecordError, match="positive"):
        max_record_bytes(0)


def test_default_limit_is_one_mebibyte(asserter: LocalAccount, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(MAX_BYTES_ENV, raising=False)
    assert max_record_bytes() == DEFAULT_MAX_BYTES == 1_048_576
    fields = full_fields(asserter.address)
    fields["answer"] = "x" * DEFAULT_MAX_BYTES
    big = sign_record(validate_record(fields), asserter)
    with pytest.raises(OversizeRecord, match="1,048,576-byte limit"):
        encode_record(big)
    with pytest.raises(OversizeRecord):
        decode_record(record_bytes(big))


# -- the model in Python ---------------------------------------------------------------------------------------
def test_records_are_immutable_and_keep_the_schema_under_its_json_name(signed: AttestationRecord) -> None:
    assert signed.schema_ == SCHEMA_V1 and as_json(signed)["schema"] == SCHEMA_V1
    with pytest.raises(ValueError, match="frozen"):
        signed.answer = "changed"


def test_utc_timestamp_gives_a_valid_created_at_from_any_aware_datetime(asserter: LocalAccount) -> None:
    moment = datetime(2025, 1, 2, 5, 4, 5, tzinfo=timezone(timedelta(hours=2)))
    assert utc_timestamp(moment) == "2025-01-02T03:04:05Z"
    assert utc_timestamp(moment.replace(microsecond=120)) == "2025-01-02T03:04:05.000120Z"
    fields = full_fields(asserter.address)
    fields["created_at"] = utc_timestamp(datetime.now(UTC))
    assert validate_record(fields).created_at.endswith("Z")
    with pytest.raises(RecordError, match="timezone-aware"):
        utc_timestamp(datetime(2025, 1, 2))
