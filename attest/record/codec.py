"""Bytes ⇄ record at the trust boundary: size limit first, strict UTF-8 and JSON, schema, then signature.

Reading accepts any JSON layout (whitespace, key order) because the digest is always taken over the record
re-canonicalized; writing always produces the canonical bytes. Either way a record that fails any check
raises a RecordError subclass and no bytes come out.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from typing import TYPE_CHECKING

from attest.errors import BadSignature, OversizeRecord, RecordError
from attest.jsonsafe import NonJsonConstant, RepeatedKey, nested_deeper_than, strict_loads
from attest.record.canonical import canonicalize, record_bytes, signed_content
from attest.record.model import AttestationRecord, validate_record
from attest.record.signing import sign_digest, verify_record

if TYPE_CHECKING:
    from eth_account.signers.local import LocalAccount

DEFAULT_MAX_BYTES = 1_048_576
MAX_BYTES_ENV = "ATTEST_RECORD_MAX_BYTES"
# A v1 record nests 4 levels deep. The bound matters: py_ecc (imported with web3) raises the recursion limit to
# 100000, so json.loads on deeply nested input overflows the C stack and kills the process instead of raising.
MAX_JSON_DEPTH = 32


def max_record_bytes(max_bytes: int | None = None, environ: Mapping[str, str] | None = None) -> int:
    """The size limit: `max_bytes` if given, else $ATTEST_RECORD_MAX_BYTES, else 1 MiB."""
    if max_bytes is not None:
        return _positive(max_bytes, "max_bytes")
    raw = (os.environ if environ is None else environ).get(MAX_BYTES_ENV, "").strip()
    if not raw:
        return DEFAULT_MAX_BYTES
    try:
        return _positive(int(raw), MAX_BYTES_ENV)
    except ValueError:
        raise RecordError(f"{MAX_BYTES_ENV} must be a whole number of bytes, such as 1048576") from None


def _positive(limit: int, name: str) -> int:
    if limit <= 0:
        raise RecordError(f"{name} must be a positive number of bytes, got {limit}")
    return limit


def check_size(size: int, limit: int, action: str) -> None:
    if size > limit:
        raise OversizeRecord(
            f"record is {size:,} bytes, over the {limit:,}-byte limit, so it was not {action}; "
            f"shorten the answer or context, or raise {MAX_BYTES_ENV}"
        )


def decode_record(data: bytes, *, max_bytes: int | None = None) -> AttestationRecord:
    """A validated, signature-checked record from untrusted bytes."""
    # The size check comes first so an oversize input is never decoded or parsed.
    check_size(len(data), max_record_bytes(max_bytes), "read")
    record = validate_record(parse_json(decode_utf8(data)))
    verify_record(record)
    return record


def encode_record(record: AttestationRecord, *, max_bytes: int | None = None) -> bytes:
    """The canonical bytes to pin, only for a record signed by its asserter and within the size limit."""
    verify_record(record)
    data = record_bytes(record)
    check_size(len(data), max_record_bytes(max_bytes), "written")
    return data


def sign_and_encode(record: AttestationRecord, account: LocalAccount) -> tuple[bytes, bytes]:
    """`encode_record(sign_record(record, account))` and the digest, in one pass: the signing bytes are made once
    and the signature just made is not recovered again (`sign_digest` signs what `digest` would compute), which
    halves the cost of a record for a process writing many."""
    if account.address != record.asserter:
        raise BadSignature(
            f"the signing key belongs to {account.address}, not the record's asserter {record.asserter}; "
            "sign with the asserter's key or set asserter to the signing account"
        )
    content = signed_content(record)
    value = hashlib.sha256(canonicalize(content)).digest()
    content["signature"] = sign_digest(value, account)
    data = canonicalize(content)
    check_size(len(data), max_record_bytes(None), "written")
    return data, value


def decode_utf8(data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise RecordError(
            f"record is not valid UTF-8 (bad byte at offset {err.start}); a record is UTF-8 JSON"
        ) from None


def parse_json(text: str) -> object:
    """JSON text to plain data, refusing duplicate keys and the non-JSON constants NaN and Infinity."""
    check_depth(text)
    try:
        return strict_loads(text)
    except RepeatedKey as err:
        # A repeated key would let two readers see two different records in the same bytes.
        raise RecordError(f"record JSON repeats the key {json.dumps(err.key)[:80]}; each key may appear once") from None
    except NonJsonConstant as err:
        raise RecordError(f"record JSON contains {err.name}, which is not JSON; numbers must be finite") from None
    except RecursionError:
        raise RecordError("record JSON is nested too deeply to be a record") from None
    except ValueError as err:  # JSONDecodeError, and integers past Python's digit limit
        raise RecordError(f"record is not valid JSON: {err}") from None


def check_depth(text: str, limit: int = MAX_JSON_DEPTH) -> None:
    """Refuse JSON nested deeper than `limit` (see attest.jsonsafe for why it matters)."""
    if nested_deeper_than(text, limit):
        raise RecordError(f"record JSON is nested more than {limit} levels deep; a record is not")
