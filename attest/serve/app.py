"""The ASGI app: routes, API keys and limits, errors in the OpenAI shape, metrics, and the batch flusher.

`create_app` builds it for a config; `attest serve` (attest/cli/serve.py) runs it on uvicorn, and the tests run it
on a free port. Answers come from `attest.flow.ask`, run in a worker thread: nothing is answered before its record
is signed, pinned and in the ledger.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request, Response
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from attest.config import Config, load_config
from attest.errors import AttestError
from attest.serve.errors import ApiError, from_attest_error
from attest.serve.limits import BodyLimit
from attest.serve.routes import add_routes
from attest.serve.service import Service

log = logging.getLogger("attest.serve")


def create_app(config: Config | None = None, *, require_keys: bool = False, flush_poll_s: float = 1.0) -> FastAPI:
    """The service for `config` (default: the home's). `require_keys`: every /v1 request and /metrics need an
    active API key (`attest serve` sets it on a public bind, or whenever keys exist)."""
    service = Service(config or load_config(), require_keys)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        flusher = None
        if service.settings.assert_mode == "batch":
            from attest.serve.flusher import run_flusher

            flusher = asyncio.create_task(run_flusher(service.config, flush_poll_s, service.metrics))
        try:
            yield
        finally:
            if flusher is not None:
                flusher.cancel()
            service.close()

    app = FastAPI(title="llm-attest", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    app.state.service = service
    _handle_errors(app, service)
    if service.settings.cors_origins:
        app.add_middleware(
            CORSMiddleware, allow_origins=list(service.settings.cors_origins), allow_methods=["GET", "POST"],
            allow_headers=["authorization", "content-type"], expose_headers=["x-attest-record"],
        )  # fmt: skip
    app.add_middleware(BodyLimit, max_bytes=service.settings.max_body_bytes)

    @app.middleware("http")
    async def measure(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        # Until the response starts: a stream's events follow (its answer and record are made by then).
        started = time.perf_counter()
        response = await call_next(request)
        route = request.scope.get("route")
        path = getattr(route, "path", "unmatched")
        service.metrics.requests.labels(path, str(response.status_code)).inc()
        service.metrics.latency.labels(path).observe(time.perf_counter() - started)
        return response

    add_routes(app, service)
    return app


def _handle_errors(app: FastAPI, service: Service) -> None:
    def answer(error: ApiError) -> JSONResponse:
        service.metrics.errors.labels(error.code or error.type).inc()
        return error.response()

    async def api_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ApiError)
        return answer(exc)

    async def attest_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, AttestError)
        return answer(from_attest_error(exc))

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return answer(ApiError(exc.status_code, str(exc.detail), code=code))

    async def crash(request: Request, exc: Exception) -> Response:
        # A bug: its traceback goes to the server's log (the flow's messages and locals name no secret); the
        # client learns only that it happened.
        log.exception("internal error answering %s %s", request.method, request.url.path)
        return answer(ApiError(500, "internal error; the server's log has the details", type="server_error",
                               code="internal_error"))  # fmt: skip

    app.add_exception_handler(ApiError, api_error)
    app.add_exception_handler(AttestError, attest_error)
    app.add_exception_handler(HTTPException, http_error)
    app.add_exception_handler(Exception, crash)
