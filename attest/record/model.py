"""The attestation record, schema v1: what an answer was, what it cited, and who vouches for it.

Presence rule (one rule, so two writers never disagree on bytes): every field is always present. Information a
provider did not report is written as an explicit `null`, never omitted. The one exception is `signature`,
which is absent while the record is unsigned and never `null`; it is also the only field left out of the digest.

Validation is strict: unknown fields are refused, nothing is coerced (no "1" for 1, no 1.0 for an integer), and
floats appear only in `model.params.temperature` and `model.params.top_p`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Literal

from eth_utils.address import is_checksum_address
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    WithJsonSchema,
    field_validator,
    model_validator,
)
from pydantic.config import JsonDict
from pydantic_core import ErrorDetails

from attest.errors import RecordError, UnsupportedSchema

SCHEMA_V1 = "llm-attest/record/v1"
SUPPORTED_SCHEMAS = (SCHEMA_V1,)
SCHEMA_FILE = Path(__file__).resolve().parent / "schema.json"

# JSON numbers are IEEE doubles; larger integers would not survive a round trip through other languages.
MAX_SAFE_INT = 2**53 - 1
CID_PATTERN = r"^(Qm[1-9A-HJ-NP-Za-km-z]{44}|b[a-z2-7]{58,})$"
SHA256_PATTERN = r"^[0-9a-f]{64}$"
ADDRESS_PATTERN = r"^0x[0-9a-fA-F]{40}$"
SIGNATURE_PATTERN = r"^0x[0-9a-f]{130}$"
# [0-9] rather than \d: \d matches non-ASCII digits in some regex engines that read the schema file.
CREATED_AT_PATTERN = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,6})?Z$"
TEMPLATE_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._/-]*@[A-Za-z0-9][A-Za-z0-9._+-]*$"
_MAX_REPORTED_ERRORS = 5


def _unicode_text(value: str) -> str:
    # JSON's \ud800 escapes decode to lone surrogates, which have no UTF-8 form and so no canonical bytes.
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("text contains a lone UTF-16 surrogate, which is not valid Unicode") from None
    return value


def _checksummed(value: str) -> str:
    if not is_checksum_address(value):
        raise ValueError("address is not EIP-55 checksummed; write it as Web3.to_checksum_address gives it")
    return value


def _utc_instant(value: str) -> str:
    try:
        datetime.fromisoformat(value)
    except ValueError:
        raise ValueError("not a real calendar date and time") from None
    return value


Text = Annotated[str, AfterValidator(_unicode_text)]
NonEmptyText = Annotated[Text, StringConstraints(min_length=1)]
Cid = Annotated[str, StringConstraints(pattern=CID_PATTERN)]
Sha256Hex = Annotated[str, StringConstraints(pattern=SHA256_PATTERN)]
Address = Annotated[str, StringConstraints(pattern=ADDRESS_PATTERN), AfterValidator(_checksummed)]
Timestamp = Annotated[str, StringConstraints(pattern=CREATED_AT_PATTERN), AfterValidator(_utc_instant)]
Count = Annotated[int, Field(ge=0, le=MAX_SAFE_INT)]
Signature = Annotated[
    Annotated[str, StringConstraints(pattern=SIGNATURE_PATTERN)] | None,
    # The schema file must not advertise null: absent is the only unsigned form.
    WithJsonSchema({"type": "string", "pattern": SIGNATURE_PATTERN}),
]


def _no_default(schema: JsonDict) -> None:
    # A "default": null would tell schema readers that null is a valid signature.
    schema.pop("default", None)


class _Strict(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid", frozen=True, allow_inf_nan=False)


class ContextChunk(_Strict):
    """One retrieved chunk, exactly as the model saw it."""

    source: NonEmptyText = Field(description="Where the document came from: a path or URL, for humans.")
    doc_cid: Cid = Field(description="CID of the whole source document.")
    chunk_index: Count = Field(description="Position of this chunk in the document, from 0.")
    text: Text = Field(description="The chunk text given to the model.")
    sha256: Sha256Hex = Field(description="sha256 of `text` encoded as UTF-8, lowercase hex.")

    @model_validator(mode="after")
    def _sha256_matches_text(self) -> ContextChunk:
        if hashlib.sha256(self.text.encode("utf-8")).hexdigest() != self.sha256:
            raise ValueError("sha256 is not the sha256 of this chunk's text (UTF-8)")
        return self


class Params(_Strict):
    """Sampling parameters as requested; null when not sent to the provider."""

    temperature: float | None = Field(ge=0, le=2)
    top_p: float | None = Field(ge=0, le=1)
    max_tokens: Count | None
    seed: Annotated[int, Field(ge=-MAX_SAFE_INT, le=MAX_SAFE_INT)] | None


class Usage(_Strict):
    """Token counts as the provider reported them."""

    input_tokens: Count
    output_tokens: Count


class Sdk(_Strict):
    name: NonEmptyText
    version: NonEmptyText


class ModelInfo(_Strict):
    """What answered: requested and returned identities, settings, usage; null where the provider is silent."""

    provider: NonEmptyText = Field(description='Free string such as "openai", "anthropic", "extractive", "external".')
    requested_model: NonEmptyText
    returned_model: NonEmptyText | None = Field(description="The model id the provider's response named.")
    system_fingerprint: NonEmptyText | None
    response_id: NonEmptyText | None
    params: Params
    usage: Usage | None
    license: NonEmptyText | None = Field(description="The model's license where known.")
    sdk: Sdk | None = Field(description="The client library that made the call.")


class Prompt(_Strict):
    template: Annotated[str, StringConstraints(pattern=TEMPLATE_PATTERN)] = Field(description="Template id@version.")
    template_sha256: Sha256Hex = Field(description="sha256 of the template text (UTF-8), lowercase hex.")


class AttestationRecord(_Strict):
    """Schema v1. Every field is present (null where unknown) except `signature`, absent while unsigned."""

    # In Python the `schema` field is `schema_` (BaseModel already has a `schema` attribute); JSON keeps `schema`.
    # Build records with validate_record(dict) so a bad field is a RecordError, not pydantic's ValidationError.

    schema_: Literal["llm-attest/record/v1"] = Field(alias="schema")
    query: NonEmptyText
    answer: NonEmptyText
    context: list[ContextChunk]
    corpus: Cid | None = Field(description="Manifest CID of the knowledge-base snapshot searched; null if none.")
    model: ModelInfo
    prompt: Prompt | None = Field(description="Null when no prompt template was used (extractive, external).")
    created_at: Timestamp = Field(description="RFC 3339 UTC instant ending in Z.")
    asserter: Address = Field(description="EIP-55 checksummed address whose key signs the record.")
    signature: Signature = Field(
        default=None,
        description="0x + 65-byte EIP-191 personal_sign of the 32-byte digest (r, s, v). Absent while unsigned.",
        json_schema_extra=_no_default,
    )

    @field_validator("signature", mode="before")
    @classmethod
    def _absent_not_null(cls, value: object) -> object:
        # Runs only on supplied values, so an explicit null is refused while an omitted key stays allowed.
        if value is None:
            raise ValueError("signature must be a 0x-hex string, or absent while the record is unsigned; not null")
        return value


def utc_timestamp(moment: datetime) -> str:
    """`created_at` for an aware datetime: RFC 3339 in UTC with a Z, microseconds only when non-zero."""
    if moment.tzinfo is None:
        raise RecordError("created_at needs a timezone-aware datetime, such as datetime.now(UTC)")
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def check_schema(data: Mapping[str, object]) -> None:
    """Refuse records of another schema version before judging their fields by ours."""
    if "schema" not in data:
        raise RecordError(f'record has no "schema" field; a v1 record starts with "schema": "{SCHEMA_V1}"')
    version = data["schema"]
    if version not in SUPPORTED_SCHEMAS:
        raise UnsupportedSchema(
            f"record schema {json.dumps(version)[:80]} is not supported; this release reads "
            f"{', '.join(SUPPORTED_SCHEMAS)}. Upgrade llm-attest to read newer records."
        )


def validate_record(data: object) -> AttestationRecord:
    """A record from plain JSON data (dicts, lists, str, int, float, bool, None), or a RecordError."""
    if not isinstance(data, Mapping):
        raise RecordError(f"a record is a JSON object, not {type(data).__name__}")
    check_schema(data)
    try:
        return AttestationRecord.model_validate(data)
    except ValidationError as err:
        raise RecordError(_describe(err.errors(include_url=False, include_input=False))) from None


def _describe(errors: list[ErrorDetails]) -> str:
    # Inputs are left out on purpose: a bad field can be megabytes long.
    parts = [f"{'.'.join(str(p) for p in e['loc']) or '(record)'}: {e['msg']}" for e in errors]
    shown = "; ".join(parts[:_MAX_REPORTED_ERRORS])
    more = f" (and {len(parts) - _MAX_REPORTED_ERRORS} more)" if len(parts) > _MAX_REPORTED_ERRORS else ""
    return f"record does not match {SCHEMA_V1}: {shown}{more}. Fix these fields (see attest/record/schema.json)."


def record_json_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of v1 records, as shipped in attest/record/schema.json."""
    schema = AttestationRecord.model_json_schema(by_alias=True, mode="validation")
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", **schema}


def render_json_schema() -> str:
    """The exact text of schema.json, so the export script and the test compare the same bytes."""
    return json.dumps(record_json_schema(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"
