"""Queue status."""

from __future__ import annotations

from fastapi import APIRouter

from ablerefusal.gateway.auth import PrincipalDep
from ablerefusal.gateway.deps import ServiceDep
from ablerefusal.gateway.schemas import QueueStatus

router = APIRouter(tags=["queue"])


@router.get("/queue", summary="Counts, running jobs and queued jobs in the order they will run")
async def queue_status(service: ServiceDep, principal: PrincipalDep) -> QueueStatus:
    return await service.queue_status(principal=principal)
