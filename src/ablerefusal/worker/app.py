"""Worker app factory: one WorkerService per process, started and stopped with the app's lifespan."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from ablerefusal.protocol import ErrorBody, ErrorCode, ErrorResponse
from ablerefusal.worker.api import error_response, open_router, router
from ablerefusal.worker.callers import CallerLedger
from ablerefusal.worker.engine.errors import EngineError, UnauthorizedError
from ablerefusal.worker.service import WorkerService
from ablerefusal.worker.settings import WorkerSettings

log = logging.getLogger(__name__)


def create_app(settings: WorkerSettings) -> FastAPI:
    service = WorkerService(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        service.start()
        yield
        service.shutdown()

    app = FastAPI(title="AbleRefusal worker", version="1", lifespan=lifespan)
    app.state.service = service
    app.state.callers = CallerLedger()
    app.include_router(open_router)
    app.include_router(router)

    @app.exception_handler(EngineError)
    async def engine_error(request: Request, exc: EngineError) -> JSONResponse:
        response = error_response(exc)
        if isinstance(exc, UnauthorizedError):
            response.headers["WWW-Authenticate"] = "Bearer"
        return response

    @app.exception_handler(Exception)
    async def unhandled(request: Request, exc: Exception) -> JSONResponse:
        # The process never dies on a bad request; the caller gets a typed error with the reason.
        log.exception("unhandled error on %s", request.url.path)
        body = ErrorResponse(error=ErrorBody(code=ErrorCode.internal, message=f"{type(exc).__name__}: {exc}"))
        return JSONResponse(body.model_dump(mode="json"), status_code=500)

    return app
