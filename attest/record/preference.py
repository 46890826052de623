"""The preference record, schema llm-attest/preference/v1: which of two signed answers a ranker prefers.

It names both answer records by CID and digest (so the pair is fixed bit for bit), the choice, the ranker, when
and why; a changed mind is a new record that names the one it supersedes. Canonical bytes, digest and the
EIP-191 signature follow the answer record's rules (attest/record/canonical.py, signing.py): the ranker signs.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from eth_account import Account
from eth_account.messages import encode_defunct
from eth_account.signers.local import LocalAccount
from eth_keys.exceptions import BadSignature as _KeysBadSignature
from eth_utils.exceptions import ValidationError as _EthValidationError
from pydantic import Field, StringConstraints, ValidationError, field_validator

from attest.errors import BadSignature, RecordError, UnsupportedSchema
from attest.record.canonical import canonicalize
from attest.record.codec import check_size, decode_utf8, max_record_bytes, parse_json
from attest.record.model import Address, Cid, Signature, Text, Timestamp, _describe, _no_default, _Strict
from attest.record.signing import require_canonical_encoding

SCHEMA_PREFERENCE_V1 = "llm-attest/preference/v1"
PREFERENCE_SCHEMA_FILE = Path(__file__).resolve().parent / "preference.schema.json"
DIGEST_PATTERN = r"^0x[0-9a-f]{64}$"
Choice = Literal["1", "2", "tie"]
CHOICES: tuple[Choice, ...] = ("1", "2", "tie")


class AnswerRef(_Strict):
    """One ranked answer: its signed record, by CID and by digest (the asserter's signed sha256)."""

    cid: Cid
    digest: Annotated[str, StringConstraints(pattern=DIGEST_PATTERN)]


class PreferenceRecord(_Strict):
    """Every field is present (null where there is none) except `signature`, absent while unsigned."""

    schema_: Literal["llm-attest/preference/v1"] = Field(alias="schema")
    pair: Annotated[list[AnswerRef], Field(min_length=2, max_length=2)] = Field(
        description="Answer 1 and answer 2, in the order they were shown."
    )
    choice: Choice = Field(description='"1" or "2": the preferred answer; "tie": neither.')
    ranker: Address = Field(description="EIP-55 checksummed address whose key signs the preference.")
    reason: Text | None = Field(description="Why, in the ranker's words; null when none was given.")
    supersedes: Cid | None = Field(description="CID of this ranker's earlier preference on the pair, if any.")
    created_at: Timestamp = Field(description="RFC 3339 UTC instant ending in Z.")
    signature: Signature = Field(
        default=None,
        description="0x + 65-byte EIP-191 personal_sign of the 32-byte digest (r, s, v). Absent while unsigned.",
        json_schema_extra=_no_default,
    )

    @field_validator("signature", mode="before")
    @classmethod
    def _absent_not_null(cls, value: object) -> object:
        if value is None:
            raise ValueError("signature must be a 0x-hex string, or absent while the record is unsigned; not null")
        return value


def validate_preference(data: object) -> PreferenceRecord:
    if not isinstance(data, Mapping):
        raise RecordError(f"a preference record is a JSON object, not {type(data).__name__}")
    if data.get("schema") != SCHEMA_PREFERENCE_V1:
        raise UnsupportedSchema(
            f"not a preference record: schema {json.dumps(data.get('schema'))[:80]}, expected {SCHEMA_PREFERENCE_V1}"
        )
    try:
        return PreferenceRecord.model_validate(data)
    except ValidationError as err:
        described = _describe(err.errors(include_url=False, include_input=False))
        raise RecordError(described.replace("llm-attest/record/v1", SCHEMA_PREFERENCE_V1)) from None


def _content(record: PreferenceRecord) -> dict[str, Any]:
    return record.model_dump(mode="json", by_alias=True, exclude={"signature"})


def preference_digest(record: PreferenceRecord) -> bytes:
    """sha256 of the RFC 8785 bytes without the signature."""
    return hashlib.sha256(canonicalize(_content(record))).digest()


def sign_preference(record: PreferenceRecord, account: LocalAccount) -> PreferenceRecord:
    if account.address != record.ranker:
        raise BadSignature(f"the signing key belongs to {account.address}, not the ranker {record.ranker}")
    signature = bytes(account.sign_message(encode_defunct(primitive=preference_digest(record))).signature)
    return record.model_copy(update={"signature": "0x" + signature.hex()})


def verify_preference_signature(record: PreferenceRecord) -> str:
    """The ranker's address, or BadSignature when the signature is missing or recovers to another key."""
    if record.signature is None:
        raise BadSignature("preference record is unsigned; do not trust it")
    raw = bytes.fromhex(record.signature[2:])
    require_canonical_encoding(raw)
    try:
        signer = str(Account.recover_message(encode_defunct(primitive=preference_digest(record)), signature=raw))
    except (ValueError, _KeysBadSignature, _EthValidationError):
        raise BadSignature("preference signature is not a valid secp256k1 signature; do not trust it") from None
    if signer != record.ranker:
        raise BadSignature(
            f"preference signature recovers to {signer}, not the ranker {record.ranker}; do not trust it"
        )
    return signer


def encode_preference(record: PreferenceRecord) -> bytes:
    """The canonical bytes to pin (signature included), only for a record signed by its ranker."""
    verify_preference_signature(record)
    content = _content(record)
    content["signature"] = record.signature
    data = canonicalize(content)
    check_size(len(data), max_record_bytes(), "written")
    return data


def decode_preference(data: bytes) -> PreferenceRecord:
    """A validated, signature-checked preference record from untrusted bytes."""
    check_size(len(data), max_record_bytes(), "read")
    record = validate_preference(parse_json(decode_utf8(data)))
    verify_preference_signature(record)
    return record


def render_preference_schema() -> str:
    """The exact text of preference.schema.json (draft 2020-12)."""
    schema = PreferenceRecord.model_json_schema(by_alias=True, mode="validation")
    full = {"$schema": "https://json-schema.org/draft/2020-12/schema", **schema}
    return json.dumps(full, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
