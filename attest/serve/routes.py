"""The endpoints: chat completions (plain and streamed), attestations of answers made elsewhere, an
attestation's status, the models, health and metrics."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse
from prometheus_client import CONTENT_TYPE_LATEST

from attest.errors import LedgerError
from attest.flow.ask import AskRequest
from attest.serve import shape
from attest.serve.errors import ApiError
from attest.serve.service import Service

MAX_CONTEXT = 50  # passages a client may name for an answer made elsewhere (ask's --top-k bound)


def add_routes(app: FastAPI, service: Service) -> None:
    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request) -> Response:
        client = service.client(request)
        data = shape.read_json(await request.body())
        model = _model(service, data.get("model"))
        query = shape.last_user_message(data)
        result = await service.attest(client, AskRequest(query=query, provider=model.provider, model=model.model))
        mode = service.settings.assert_mode
        headers = {"X-Attest-Record": str(result.attestation.cid)}
        if data.get("stream") is True:
            # The record is whole in the ledger before the first byte: a client that leaves mid-stream leaves it
            # complete, never half-written.
            return StreamingResponse(
                shape.stream(result, model.id, query, mode), media_type="text/event-stream",
                headers={**headers, "Cache-Control": "no-cache"},
            )  # fmt: skip
        return JSONResponse(shape.completion(result, model.id, query, mode), headers=headers)

    @app.post("/v1/attestations")
    async def attestations(request: Request) -> Response:
        client = service.client(request)
        data = shape.read_json(await request.body())
        query = str(shape.text_field(data, "query"))
        answer = str(shape.text_field(data, "answer"))
        model = shape.text_field(data, "model", required=False)
        context = _context(data.get("context"))
        result = await service.attest(client, AskRequest(query=query, answer=answer, model=model, context=context))
        body = shape.attestation(result, service.settings.assert_mode)
        return JSONResponse(body, status_code=201, headers={"X-Attest-Record": str(result.attestation.cid)})

    @app.get("/v1/attestations/{ref}")
    async def attestation_status(ref: str, request: Request) -> Response:
        service.client(request)
        from attest.flow.lifecycle import status_document

        try:
            document = await asyncio.to_thread(status_document, ref, config=service.config)
        except LedgerError:
            raise ApiError(404, f"no attestation {ref!r} here", code="attestation_not_found", param="id") from None
        return JSONResponse(document)

    @app.get("/v1/models")
    async def models(request: Request) -> Response:
        service.client(request)
        now = int(time.time())
        data = [
            {"id": m.id, "object": "model", "created": now, "owned_by": m.provider} for m in service.models.values()
        ]
        return JSONResponse({"object": "list", "data": data})

    @app.get("/healthz")
    async def healthz() -> Response:
        return JSONResponse({"status": "ok", "assert": service.settings.assert_mode})

    @app.get("/metrics")
    async def metrics(request: Request) -> Response:
        if service.require_keys:
            service.client(request)
        return Response(service.metrics.exposition(), media_type=CONTENT_TYPE_LATEST)


def _model(service: Service, requested: Any) -> shape.ServedModel:
    if requested is None:
        return next(iter(service.models.values()))
    if not isinstance(requested, str) or requested not in service.models:
        raise ApiError(
            404, f"the model {requested!r} is not served here; GET /v1/models lists: {', '.join(service.models)}",
            code="model_not_found", param="model",
        )  # fmt: skip
    return service.models[requested]


def _context(value: Any) -> tuple[tuple[str, int], ...] | None:
    """Passages named as "DOC_CID#INDEX" (as a record cites them: the document's CID and the chunk's index)."""
    if value is None:
        return None
    if not isinstance(value, list) or len(value) > MAX_CONTEXT:
        raise ApiError(400, f"`context` must be a list of at most {MAX_CONTEXT} chunk ids", param="context",
                       code="invalid_value")  # fmt: skip
    out: list[tuple[str, int]] = []
    for item in value:
        cid, _, index = item.partition("#") if isinstance(item, str) else ("", "", "")
        if not cid or not index.isdigit():
            raise ApiError(400, f"`context` entry {item!r} is not DOC_CID#INDEX", param="context", code="invalid_value")
        out.append((cid, int(index)))
    return tuple(out)
