"""Models available on the workers."""

from __future__ import annotations

from fastapi import APIRouter, Query

from ablerefusal.gateway.deps import ServiceDep
from ablerefusal.gateway.schemas import ModelKind, ModelsResponse

router = APIRouter(tags=["models"])


@router.get("/models", summary="Models of one kind available on the ready workers")
async def list_models(
    service: ServiceDep,
    kind: ModelKind = Query(
        ModelKind.checkpoint,
        description="checkpoint (default), lora, embedding, controlnet, vae or upscaler. Each entry has its id "
        "(a file or folder name, never a path), family (sd15/sdxl), size and sha256.",
    ),
) -> ModelsResponse:
    return await service.models_of_kind(kind)
