"""Worker protocol v1 routes. Thin: each handler makes one service call and maps errors to ErrorResponse.

Every route but ``/v1/health`` needs the worker's token when it has one. Handlers whose service call can block
(model scans hash files, ``/v1/info`` imports libraries and asks the device for memory figures) run it in a
thread, so the event loop always answers probes and cancels at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, Field, ValidationError

from ablerefusal.protocol import (
    CancelRequest,
    DetectRequest,
    DetectResponse,
    ErrorDetail,
    ErrorResponse,
    GenerateCall,
    ModelList,
    PreprocessorList,
    WorkerInfo,
)
from ablerefusal.worker.callers import ANONYMOUS, CALLER_HEADER, CallerLedger
from ablerefusal.worker.engine.errors import EngineError, InvalidRequestError, UnauthorizedError
from ablerefusal.worker.service import WorkerService, is_end

NDJSON = "application/x-ndjson"


def get_service(request: Request) -> WorkerService:
    service: WorkerService = request.app.state.service
    return service


Service = Annotated[WorkerService, Depends(get_service)]


def require_token(request: Request, service: Service) -> None:
    expected = service.settings.token
    if expected is None:
        return
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not secrets.compare_digest(given.encode(), expected.encode()):
        raise UnauthorizedError("this worker needs its token: Authorization: Bearer <token>", field="authorization")


open_router = APIRouter(prefix="/v1")
router = APIRouter(prefix="/v1", dependencies=[Depends(require_token)])


class HealthResponse(BaseModel):
    status: str = Field("ok", description="Always 'ok' while the process answers.")


class ReadyResponse(BaseModel):
    ready: bool = Field(..., description="Device initialised and preloaded models loaded.")
    reason: str | None = Field(None, description="Why the worker is not ready yet.")
    device: str | None = Field(None, description="Device in use once ready.")


class CancelResponse(BaseModel):
    call_id: str = Field(..., description="The call the cancel applied to.")
    job_id: str | None = Field(None, description="The dropped item, or None when the whole call stops.")
    accepted: bool = Field(True, description="The call stops (or drops the item) at the next step.")


def error_response(exc: EngineError) -> JSONResponse:
    return JSONResponse(ErrorResponse(error=exc.body()).model_dump(mode="json"), status_code=exc.status)


def _field(loc: tuple[Any, ...]) -> str:
    return ".".join(str(part) for part in loc) or "body"


async def parse_body(request: Request, model: type[BaseModel]) -> Any:
    """Parse a JSON body into ``model``; every problem becomes a 400 naming the field (not FastAPI's 422)."""
    raw = await request.body()
    try:
        data = json.loads(raw) if raw else None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InvalidRequestError(f"body is not valid JSON: {exc}", field="body") from exc
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        details = [ErrorDetail(field=_field(tuple(e["loc"])), message=e["msg"]) for e in exc.errors()]
        summary = "; ".join(f"{d.field}: {d.message}" for d in details)
        raise InvalidRequestError(f"invalid request: {summary}", details=details) from exc


@open_router.get("/health", response_model=HealthResponse)
async def health() -> HealthResponse:
    return HealthResponse()


@router.get("/ready", response_model=ReadyResponse, responses={503: {"model": ReadyResponse}})
async def ready(service: Service) -> Any:
    if service.ready:
        return ReadyResponse(ready=True, device=str(service.device.device))
    return JSONResponse(ReadyResponse(ready=False, reason=service.not_ready_reason).model_dump(), status_code=503)


@router.get("/info", response_model=WorkerInfo)
async def info(service: Service) -> WorkerInfo:
    return await asyncio.to_thread(service.info)


@router.get("/models", response_model=ModelList, responses={400: {"model": ErrorResponse}})
async def models(service: Service, kind: str = "checkpoint") -> Any:
    """Checkpoints, or with ``?kind=lora|embedding|vae|controlnet`` the adapter files of that kind (the scan
    hashes new files: in a thread)."""
    try:
        return await asyncio.to_thread(service.models, kind)
    except EngineError as exc:
        return error_response(exc)


async def _stream(
    service: WorkerService, call_id: str, queue: Any, callers: CallerLedger, caller: str
) -> AsyncIterator[bytes]:
    finished = False
    try:
        while True:
            event = await queue.get()
            if is_end(event):
                finished = True
                return
            yield (event.model_dump_json() + "\n").encode()
    finally:
        if not finished:  # the client went away: stop spending the device on images nobody will read
            with contextlib.suppress(EngineError):
                service.cancel(call_id, None)
        callers.leave(caller, call_id)


@router.post(
    "/generate",
    responses={
        200: {"content": {NDJSON: {}}, "description": "NDJSON stream of protocol.WorkerEvent lines."},
        400: {"model": ErrorResponse},
        404: {"model": ErrorResponse},
        409: {"model": ErrorResponse},
        503: {"model": ErrorResponse},
    },
)
async def generate(request: Request, service: Service) -> Any:
    callers: CallerLedger = request.app.state.callers
    caller = request.headers.get(CALLER_HEADER, ANONYMOUS)[:128]
    callers.arrive(caller)
    try:
        call = await parse_body(request, GenerateCall)
        checked = await asyncio.to_thread(service.validate, call)  # may rescan the models folder
        call_id, queue = service.begin(call, checked)
    except EngineError as exc:
        callers.refused(caller, str(exc.code))
        return error_response(exc)
    callers.enter(caller, call_id, [item.job_id for item in call.items])
    return StreamingResponse(_stream(service, call_id, queue, callers, caller), media_type=NDJSON)


@router.post(
    "/generate/{call_id}/cancel",
    response_model=CancelResponse,
    responses={400: {"model": ErrorResponse}, 404: {"model": ErrorResponse}},
)
async def cancel(call_id: str, request: Request, service: Service) -> Any:
    try:
        body = await parse_body(request, CancelRequest) if await request.body() else CancelRequest()
        service.cancel(call_id, body.job_id)
    except EngineError as exc:
        return error_response(exc)
    return CancelResponse(call_id=call_id, job_id=body.job_id)


@router.get("/controlnet/preprocessors", response_model=PreprocessorList)
async def controlnet_preprocessors(service: Service) -> PreprocessorList:
    return await asyncio.to_thread(service.preprocessors)  # imports controlnet-aux to see whether it works


@router.post(
    "/controlnet/detect",
    response_model=DetectResponse,
    responses={400: {"model": ErrorResponse}},
)
async def controlnet_detect(request: Request, service: Service) -> Any:
    try:
        body = await parse_body(request, DetectRequest)
        return await asyncio.to_thread(service.detect, body)
    except EngineError as exc:
        return error_response(exc)
