"""Samplers the gateway accepts."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel, Field

from ablerefusal.gateway.deps import ServiceDep
from ablerefusal.protocol import SamplerInfo

router = APIRouter(tags=["models"])


class SamplersResponse(BaseModel):
    samplers: list[SamplerInfo] = Field(..., description="Valid `sampler` values: id, A1111 name, aliases.")
    default: str = Field("euler_a", description="Sampler used when a request names none.")


@router.get("/samplers", summary="Samplers a request may name")
async def list_samplers(service: ServiceDep) -> SamplersResponse:
    return SamplersResponse(samplers=service.samplers())
