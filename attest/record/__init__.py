"""Attestation records: the v1 model, RFC 8785 canonical bytes and digest, the asserter's signature, and the
size-limited codec used whenever a record crosses a trust boundary."""

from attest.record.canonical import canonicalize, digest, digest_hex, record_bytes, signed_content, signing_bytes
from attest.record.codec import DEFAULT_MAX_BYTES, MAX_BYTES_ENV, decode_record, encode_record, max_record_bytes
from attest.record.model import (
    SCHEMA_FILE,
    SCHEMA_V1,
    SUPPORTED_SCHEMAS,
    AttestationRecord,
    ContextChunk,
    ModelInfo,
    Params,
    Prompt,
    Sdk,
    Usage,
    record_json_schema,
    render_json_schema,
    utc_timestamp,
    validate_record,
)
from attest.record.signing import recover_signer, sign_record, verify_record

__all__ = [
    "DEFAULT_MAX_BYTES",
    "MAX_BYTES_ENV",
    "SCHEMA_FILE",
    "SCHEMA_V1",
    "SUPPORTED_SCHEMAS",
    "AttestationRecord",
    "ContextChunk",
    "ModelInfo",
    "Params",
    "Prompt",
    "Sdk",
    "Usage",
    "canonicalize",
    "decode_record",
    "digest",
    "digest_hex",
    "encode_record",
    "max_record_bytes",
    "record_bytes",
    "record_json_schema",
    "recover_signer",
    "render_json_schema",
    "sign_record",
    "signed_content",
    "signing_bytes",
    "utc_timestamp",
    "validate_record",
    "verify_record",
]
