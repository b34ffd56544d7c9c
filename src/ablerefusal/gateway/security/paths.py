"""Keys for the routes FastAPI and Prometheus serve outside ``/api/v1``: ``/docs``, ``/redoc`` and
``/openapi.json`` (they map every internal route) and ``/metrics`` (queue sizes, worker states), when
``auth.protect_docs`` / ``auth.protect_metrics`` ask for it."""

from __future__ import annotations

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from ablerefusal.gateway.auth import principal_for
from ablerefusal.gateway.errors import ApiException, error_response
from ablerefusal.gateway.settings import AuthSettings

DOCS_PATHS = frozenset({"/docs", "/docs/oauth2-redirect", "/redoc", "/openapi.json"})
METRICS_PATHS = frozenset({"/metrics"})


def protected_paths(auth: AuthSettings) -> frozenset[str]:
    if not auth.all_keys:
        return frozenset()
    return (DOCS_PATHS if auth.protect_docs else frozenset()) | (METRICS_PATHS if auth.protect_metrics else frozenset())


class KeyedPaths:
    """Pure ASGI middleware: a Bearer key for the listed paths."""

    def __init__(self, app: ASGIApp, auth: AuthSettings, paths: frozenset[str]) -> None:
        self.app = app
        self.auth = auth
        self.paths = paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] in self.paths:
            scheme, _, credentials = Headers(scope=scope).get("authorization", "").partition(" ")
            presented = credentials.strip() if scheme.lower() == "bearer" and credentials.strip() else None
            if principal_for(self.auth, presented) is None:
                exc = ApiException(
                    401,
                    "unauthorized",
                    f"{scope['path']} needs an API key here (auth.protect_docs / auth.protect_metrics): "
                    "send 'Authorization: Bearer <key>'",
                    headers={"WWW-Authenticate": "Bearer"},
                )
                await error_response(exc)(scope, receive, send)
                return
        await self.app(scope, receive, send)
