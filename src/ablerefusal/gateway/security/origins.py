"""Cross-site request guard for state-changing requests.

A browser sends some cross-site requests without asking first (a "simple" POST: no body, or a
``text/plain``, form or multipart body), and with Basic auth it even attaches the user's credentials. So a
POST, PUT, PATCH or DELETE is refused when it carries an ``Origin`` that is not the gateway's own (nor
listed), and when its ``Content-Type`` is not one our routes read (JSON, multipart uploads). Requests
without ``Origin`` (scripts, curl, A1111 and OpenAI clients) are not cross-site and pass.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from ablerefusal.gateway.errors import ApiException
from ablerefusal.gateway.schemas import FieldError
from ablerefusal.gateway.security.answers import refuse

STATE_CHANGING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
ACCEPTED_TYPES = ("application/json", "multipart/form-data")


def origin_of(url: str) -> str:
    """``scheme://host[:port]`` of a URL, lower-cased, default ports dropped (how browsers send Origin)."""
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if ":" in host:
        host = f"[{host}]"
    port = parts.port
    if port is None or (scheme, port) in (("http", 80), ("https", 443)):
        return f"{scheme}://{host}"
    return f"{scheme}://{host}:{port}"


def _origin_or_none(url: str) -> str | None:
    # "null" (sandboxed frames, file: pages) and malformed values are never an allowed origin.
    try:
        origin = origin_of(url)
    except ValueError:
        return None
    return None if origin.endswith("://") else origin


def _content_type_accepted(value: str) -> bool:
    media = value.split(";", 1)[0].strip().lower()
    return media in ACCEPTED_TYPES or (media.startswith("application/") and media.endswith("+json"))


class OriginGuard:
    """Pure ASGI middleware: 403 for a foreign ``Origin``, 415 for a body type no route reads."""

    def __init__(self, app: ASGIApp, allowed_origins: list[str]) -> None:
        self.app = app
        self.allowed = {origin for origin in map(_origin_or_none, allowed_origins) if origin is not None}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # A WebSocket handshake is a GET, but the socket it opens acts: cross-site pages may not open one.
        if scope["type"] == "websocket" or (scope["type"] == "http" and scope["method"] in STATE_CHANGING):
            refusal = self._refusal(scope)
            if refusal is not None:
                if scope["type"] == "websocket":
                    await send({"type": "websocket.close", "code": 1008, "reason": refusal.message})
                    return
                await refuse(scope, receive, send, refusal)
                return
        await self.app(scope, receive, send)

    def _refusal(self, scope: Scope) -> ApiException | None:
        headers = Headers(scope=scope)
        origin = headers.get("origin")
        if origin is not None:
            host = headers.get("host", "")
            # Same origin: the page was served by this gateway under the name the browser used.
            own = {_origin_or_none(f"{scheme}://{host}") for scheme in ("http", "https")}
            normalised = _origin_or_none(origin)
            if normalised is None or normalised not in own | self.allowed:
                return ApiException(
                    403,
                    "forbidden_origin",
                    f"Origin {origin!r} may not send this request: only the gateway's own origin, "
                    "server.public_url, server.cors_origins and server.allowed_origins may",
                    details=[FieldError(field="Origin", message="must be an allowed origin")],
                )
        content_type = headers.get("content-type")
        if scope["type"] == "http" and content_type is not None and not _content_type_accepted(content_type):
            return ApiException(
                415,
                "unsupported_media_type",
                f"Content-Type {content_type!r} is not accepted: send application/json "
                "(multipart/form-data for uploads)",
                details=[FieldError(field="Content-Type", message="must be application/json or multipart/form-data")],
            )
        return None
