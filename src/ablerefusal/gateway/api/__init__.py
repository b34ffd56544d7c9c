"""Public REST API (/api/v1): one router module per resource; each route makes one service call."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from ablerefusal.gateway.api import (
    controlnet,
    gallery,
    generate,
    health,
    models,
    png_info,
    queue,
    samplers,
    uploads,
    workers,
    ws,
)
from ablerefusal.gateway.auth import require_api_key


def api_router() -> APIRouter:
    router = APIRouter(prefix="/api/v1")
    # Probes (kubelet, load balancers) carry no credentials, so health and ready stay open.
    router.include_router(health.router)
    protected = APIRouter(dependencies=[Depends(require_api_key)])
    protected.include_router(generate.router)
    protected.include_router(queue.router)
    protected.include_router(models.router)
    protected.include_router(samplers.router)
    protected.include_router(gallery.router)
    protected.include_router(png_info.router)
    protected.include_router(uploads.router)
    protected.include_router(workers.router)
    protected.include_router(controlnet.router)
    router.include_router(protected)
    # Router dependencies see HTTP requests only: the WebSocket route checks its key at the handshake itself.
    router.include_router(ws.router)
    return router
