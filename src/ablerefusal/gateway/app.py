"""The gateway's app factory. ``create_app`` only wires; the lifespan starts the runtime (store,
worker pool, dispatcher) so building the app — e.g. to dump its OpenAPI schema — starts nothing."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib.metadata import version

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from ablerefusal.gateway import outputs
from ablerefusal.gateway.api import api_router
from ablerefusal.gateway.compat import a1111_router, controlnet_router, openai_router
from ablerefusal.gateway.errors import install_error_handlers
from ablerefusal.gateway.metrics import GatewayMetrics
from ablerefusal.gateway.metrics_route import router as metrics_router
from ablerefusal.gateway.runtime import Runtime
from ablerefusal.gateway.security import install_request_guards
from ablerefusal.gateway.security_headers import SecurityHeaders
from ablerefusal.gateway.settings import Settings
from ablerefusal.gateway.web import mount_web_ui


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    runtime = Runtime(app.state.settings, app.state.metrics)
    await runtime.start()
    app.state.runtime = runtime
    app.state.service = runtime.service
    # One upload service for the uploads API and the jobs that name its ids.
    app.state.uploads = runtime.uploads
    try:
        yield
    finally:
        await runtime.stop()


def create_app(settings: Settings) -> FastAPI:
    app = FastAPI(
        title="AbleRefusal",
        version=version("ablerefusal"),
        description="Self-hosted Stable Diffusion: REST API with a persistent job queue, SSE progress, "
        "AUTOMATIC1111 and OpenAI Images compatible endpoints.",
        lifespan=_lifespan,
    )
    app.state.settings = settings
    app.state.metrics = GatewayMetrics()
    install_error_handlers(app)
    install_request_guards(app, settings)
    app.add_middleware(SecurityHeaders)
    server = settings.server
    if server.enable_cors:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=server.cors_origins,
            allow_credentials=server.cors_allow_credentials,
            allow_methods=server.cors_methods,
            allow_headers=server.cors_headers,
        )
    app.include_router(api_router())
    app.include_router(outputs.router)
    app.include_router(metrics_router)
    # Compatibility APIs carry their own prefixes, auth and error shapes.
    app.include_router(a1111_router)
    app.include_router(controlnet_router)
    app.include_router(openai_router)
    mount_web_ui(app, server.web_dir, server.frame_ancestors)
    return app
