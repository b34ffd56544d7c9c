"""Request guards against network attackers: who may address the gateway (``Host``), which pages may make
it act (``Origin``, body types), and how big and how slow a request may be.

``install_request_guards`` is wired by ``create_app``; the Host guard and the connection options depend on
how the process listens and are applied by ``serve``.
"""

from __future__ import annotations

from fastapi import FastAPI

from ablerefusal.gateway.security.bodies import BodyGuard
from ablerefusal.gateway.security.hosts import HostGuard, default_allowed_hosts
from ablerefusal.gateway.security.origins import OriginGuard
from ablerefusal.gateway.security.paths import KeyedPaths, protected_paths
from ablerefusal.gateway.settings import ServerSettings, Settings


def allowed_origins(server: ServerSettings) -> list[str]:
    """Origins besides the gateway's own that may send state-changing requests."""
    listed = [*server.allowed_origins, *(server.cors_origins if server.enable_cors else [])]
    return [*listed, server.public_url] if server.public_url else listed


def install_request_guards(app: FastAPI, settings: Settings) -> None:
    server = settings.server
    # Added innermost first: the Origin check runs before any body is read.
    app.add_middleware(BodyGuard, max_bytes=server.max_body_bytes, timeout_s=server.body_timeout_s)
    app.add_middleware(OriginGuard, allowed_origins=allowed_origins(server))
    keyed = protected_paths(settings.auth)
    if keyed:
        app.add_middleware(KeyedPaths, auth=settings.auth, paths=keyed)


def guard_hosts(app: FastAPI, server: ServerSettings) -> list[str] | None:
    """Add the Host check (outermost); returns the names allowed, None when any is."""
    allowed = server.allowed_hosts
    if allowed is None:
        allowed = default_allowed_hosts(server.host, server.public_url)
    if allowed is None or "*" in allowed:
        return None
    app.add_middleware(HostGuard, allowed=allowed)
    return allowed


__all__ = ["allowed_origins", "guard_hosts", "install_request_guards"]
