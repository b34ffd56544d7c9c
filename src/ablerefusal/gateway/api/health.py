"""Liveness and readiness."""

from __future__ import annotations

from fastapi import APIRouter, Response
from pydantic import BaseModel, Field

from ablerefusal.gateway.auth import OptionalPrincipalDep
from ablerefusal.gateway.deps import ServiceDep
from ablerefusal.gateway.schemas import ReadyResponse

router = APIRouter(tags=["health"])


class HealthResponse(BaseModel):
    status: str = Field("ok", description="Always 'ok' when the process answers.")


@router.get("/health", summary="Liveness: the process answers")
async def health() -> HealthResponse:
    return HealthResponse()


@router.get(
    "/ready",
    summary="Readiness: store reachable and at least one worker ready",
    responses={503: {"model": ReadyResponse, "description": "Not ready; `reason` says why."}},
)
async def ready(service: ServiceDep, principal: OptionalPrincipalDep, response: Response) -> ReadyResponse:
    # Open to probes; worker addresses only for admin keys (or a gateway without keys).
    answer = await service.ready(show_workers=principal is not None and principal.admin)
    if not answer.ready:
        response.status_code = 503
    return answer
