"""Every error the service answers, in the OpenAI error shape `{"error": {"message", "type", "param", "code"}}`
with its HTTP status, so OpenAI clients raise their usual exceptions (BadRequestError, RateLimitError, ...)."""

from __future__ import annotations

from typing import Any

from fastapi.responses import JSONResponse

from attest.errors import (
    AttestError,
    KbError,
    LedgerError,
    ModelError,
    ProviderUnavailable,
    QueryTooLong,
    RateLimited,
    RecordError,
    StoreError,
    UnknownProvider,
)


class ApiError(Exception):
    """An answer other than 2xx: the status, the OpenAI error fields and any headers (Retry-After)."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = "invalid_request_error",
        code: str | None = None,
        param: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type
        self.code = code
        self.param = param
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}

    def response(self) -> JSONResponse:
        return JSONResponse(self.body(), status_code=self.status, headers=self.headers)


def from_attest_error(err: AttestError) -> ApiError:
    """The status an expected failure of the flow answers with. The message is the flow's own one line, which
    names no secret (the CLI prints the same line)."""
    message = str(err)
    if isinstance(err, QueryTooLong):
        return ApiError(400, message, code="context_length_exceeded", param="messages")
    if isinstance(err, UnknownProvider):
        return ApiError(404, message, code="model_not_found", param="model")
    if isinstance(err, RateLimited | ProviderUnavailable):
        return ApiError(503, message, type="server_error", code="model_unavailable")
    if isinstance(err, ModelError):
        return ApiError(502, message, type="server_error", code="model_error")
    if isinstance(err, KbError):
        # Bad passages named by the client (POST /v1/attestations) are its error; an empty KB is the server's.
        if "not in the KB" in message:
            return ApiError(400, message, code="unknown_context", param="context")
        return ApiError(503, message, type="server_error", code="knowledge_base_unavailable")
    if isinstance(err, LedgerError) and "no attestation" in message.lower():
        return ApiError(404, message, code="attestation_not_found")
    if isinstance(err, RecordError):
        return ApiError(400, message, code="invalid_record")
    if isinstance(err, StoreError):
        return ApiError(503, message, type="server_error", code="store_unavailable")
    return ApiError(500, message, type="server_error", code="attest_error")
