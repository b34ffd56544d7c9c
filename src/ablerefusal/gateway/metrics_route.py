"""``GET /metrics`` in the Prometheus text format."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from ablerefusal.gateway.metrics import CONTENT_TYPE, GatewayMetrics

router = APIRouter(tags=["metrics"])


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
async def metrics(request: Request) -> Response:
    registry: GatewayMetrics = request.app.state.metrics
    service = getattr(request.app.state, "service", None)
    if service is not None:
        await service.refresh_metrics()
    return Response(registry.render(), media_type=CONTENT_TYPE)
