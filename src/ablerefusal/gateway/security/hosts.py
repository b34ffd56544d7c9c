"""DNS-rebinding guard: answer only requests whose ``Host`` names this gateway.

A web page can rebind its own name to 127.0.0.1 and then talk to a key-less local gateway as a "same-origin"
page; its requests still carry the attacker's name in ``Host``, which is what this checks. Installed by
``serve`` (it depends on the bind address), not by ``create_app``.
"""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import urlsplit

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from ablerefusal.gateway.errors import ApiException
from ablerefusal.gateway.schemas import FieldError
from ablerefusal.gateway.security.answers import refuse

LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")
# Binding every interface means the gateway is reached by names it cannot know; the bind-safety rule already
# demands API keys (or --insecure) there.
WILDCARD_BINDS = ("0.0.0.0", "::", "")


def host_name(host_header: str) -> str:
    """The name in a Host header value, without port or IPv6 brackets, lower-cased."""
    value = host_header.strip().lower()
    if value.startswith("["):
        return value[1 : value.find("]")] if "]" in value else value
    name, _, _port = value.partition(":")
    return name.rstrip(".")


def default_allowed_hosts(bind: str, public_url: str | None) -> list[str] | None:
    """Loopback names, the bind address and public_url's host; None (any) for a wildcard bind."""
    if bind in WILDCARD_BINDS:
        return None
    names = [*LOOPBACK_NAMES, bind.strip("[]").lower()]  # a bind address has no port; IPv6 ones no brackets
    if public_url:
        names.append((urlsplit(public_url).hostname or "").lower())
    return names


def host_allowed(name: str, allowed: Iterable[str]) -> bool:
    for pattern in allowed:
        pattern = pattern.lower()
        if pattern == "*" or pattern == name:
            return True
        if pattern.startswith("*.") and name.endswith(pattern[1:]):
            return True
    return False


class HostGuard:
    """Pure ASGI middleware: 400 (or a refused WebSocket) when ``Host`` is not an allowed name."""

    def __init__(self, app: ASGIApp, allowed: list[str]) -> None:
        self.app = app
        self.allowed = allowed

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        host = Headers(scope=scope).get("host", "")
        if host_allowed(host_name(host), self.allowed):
            await self.app(scope, receive, send)
            return
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008, "reason": "Host not allowed"})
            return
        exc = ApiException(
            400,
            "invalid_host",
            f"Host {host!r} is not one of server.allowed_hosts ({', '.join(self.allowed)})",
            details=[FieldError(field="Host", message="must name this gateway (server.allowed_hosts)")],
        )
        await refuse(scope, receive, send, exc)
