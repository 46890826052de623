"""RFC 8785 (JCS) bytes of a record, and its digest: the sha256 that becomes `domainId` on chain.

Two byte strings matter. The *signing bytes* leave `signature` out, because a signature cannot cover itself;
their sha256 is the digest. The *record bytes* include the signature; they are what gets pinned to IPFS.
"""

from __future__ import annotations

import hashlib
from typing import Any

import rfc8785

from attest.errors import RecordError
from attest.record.model import AttestationRecord

_UNSIGNED_FIELDS = frozenset({"signature"})


def canonicalize(value: Any) -> bytes:
    """RFC 8785 bytes of plain JSON data, or a RecordError for data JCS cannot express."""
    try:
        return rfc8785.dumps(value)
    except rfc8785.CanonicalizationError as err:
        raise RecordError(f"record cannot be canonicalized (RFC 8785): {err}") from None


def signed_content(record: AttestationRecord) -> dict[str, Any]:
    """The record as JSON data, without its signature: what the digest covers."""
    return record.model_dump(mode="json", by_alias=True, exclude=set(_UNSIGNED_FIELDS))


def signing_bytes(record: AttestationRecord) -> bytes:
    return canonicalize(signed_content(record))


def digest(record: AttestationRecord) -> bytes:
    """sha256 of the signing bytes: 32 bytes, the assertion's `domainId`."""
    return hashlib.sha256(signing_bytes(record)).digest()


def digest_hex(record: AttestationRecord) -> str:
    return "0x" + digest(record).hex()


def record_bytes(record: AttestationRecord) -> bytes:
    """Canonical bytes of the whole record, signature included when present: the bytes that get pinned."""
    content = signed_content(record)
    if record.signature is not None:
        content["signature"] = record.signature
    return canonicalize(content)
