"""Generation jobs: submit (async or synchronous), read, list, cancel, delete, and per-job SSE events."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Response
from sse_starlette import EventSourceResponse

from ablerefusal.gateway.auth import PrincipalDep
from ablerefusal.gateway.deps import ServiceDep
from ablerefusal.gateway.schemas import ErrorEnvelope, GenerateRequest, Job, JobPage, JobStatus

router = APIRouter(prefix="/generate", tags=["generate"])

MAX_WAIT_S = 3600.0


def _errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    return {code: {"model": ErrorEnvelope} for code in codes}


@router.post(
    "",
    status_code=202,
    summary="Submit a job; with ?wait=SECONDS, wait for it to finish",
    response_description="202 with the queued job, or 200 with the finished job in synchronous mode.",
    responses={
        200: {"model": Job, "description": "Synchronous mode: the job finished."},
        **_errors(400, 401, 404, 408, 413, 422, 429, 500),
    },
)
async def submit(
    body: GenerateRequest,
    service: ServiceDep,
    principal: PrincipalDep,
    response: Response,
    wait: Annotated[
        float | None,
        Query(ge=0, le=MAX_WAIT_S, description="Seconds to wait for the job to finish (synchronous mode)."),
    ] = None,
    idempotency_key: Annotated[
        str | None,
        Header(min_length=1, max_length=255, description="Same key and body give back the same job."),
    ] = None,
) -> Job:
    if wait is None:
        return await service.submit(body, idempotency_key=idempotency_key, principal=principal)
    response.status_code = 200
    return await service.submit_and_wait(body, wait, idempotency_key=idempotency_key, principal=principal)


@router.get("", summary="Jobs, newest first", responses=_errors(400, 401))
async def list_jobs(
    service: ServiceDep,
    principal: PrincipalDep,
    offset: Annotated[int, Query(ge=0, le=10**9, description="Index of the first job.")] = 0,
    limit: Annotated[int, Query(ge=1, le=200, description="Page size.")] = 50,
    status: Annotated[JobStatus | None, Query(description="Only jobs in this status.")] = None,
) -> JobPage:
    return await service.list_jobs(offset=offset, limit=limit, status=status, principal=principal)


@router.get("/{job_id}", summary="One job", responses=_errors(401, 404))
async def get_job(job_id: str, service: ServiceDep, principal: PrincipalDep) -> Job:
    return await service.get(job_id, principal=principal)


@router.get(
    "/{job_id}/preview",
    summary="The latest latent preview of a running job (JPEG)",
    response_class=Response,
    responses={
        200: {"content": {"image/jpeg": {}}, "description": "The preview image."},
        **_errors(401, 404),
    },
)
async def job_preview(job_id: str, service: ServiceDep, principal: PrincipalDep) -> Response:
    jpeg = await service.preview(job_id, principal=principal)
    # A newer preview replaces it every few steps: never cache.
    return Response(jpeg, media_type="image/jpeg", headers={"Cache-Control": "no-store"})


@router.post("/{job_id}/cancel", summary="Cancel a queued or running job", responses=_errors(401, 404))
async def cancel_job(job_id: str, service: ServiceDep, principal: PrincipalDep) -> Job:
    return await service.cancel(job_id, principal=principal)


@router.delete(
    "/{job_id}",
    status_code=204,
    summary="Remove a finished job and its image files",
    responses=_errors(401, 404, 409),
)
async def delete_job(job_id: str, service: ServiceDep, principal: PrincipalDep) -> Response:
    await service.delete(job_id, principal=principal)
    return Response(status_code=204)


@router.get(
    "/{job_id}/events",
    summary="Server-Sent Events: progress, previews, results and the terminal state of one job",
    response_class=EventSourceResponse,
    responses={
        200: {"content": {"text/event-stream": {}}, "description": "Event stream."},
        **_errors(401, 404),
    },
)
async def job_events(job_id: str, service: ServiceDep, principal: PrincipalDep) -> EventSourceResponse:
    stream = await service.event_stream(job_id, principal=principal)
    return EventSourceResponse(stream, ping=15)
