"""Models available on the workers."""

from __future__ import annotations

from fastapi import APIRouter

from ablerefusal.gateway.deps import ServiceDep
from ablerefusal.gateway.schemas import ModelsResponse

router = APIRouter(tags=["models"])


@router.get("/models", summary="Models available on the ready workers")
async def list_models(service: ServiceDep) -> ModelsResponse:
    return service.models()
