"""API keys for the compatibility APIs. A1111 clients know only HTTP Basic (``--api-auth user:pass``), so
there the key is accepted as the Basic password (any user name) as well as a Bearer token; OpenAI clients
always send ``Authorization: Bearer <key>``."""

from __future__ import annotations

import base64
import binascii

from fastapi import Request

from ablerefusal.gateway.auth import principal_for
from ablerefusal.gateway.compat.errors import CompatError


def presented_key(authorization: str | None, allow_basic: bool) -> str | None:
    """The key in an Authorization header value, or None when there is none we accept."""
    if not authorization:
        return None
    scheme, _, credentials = authorization.partition(" ")
    scheme = scheme.casefold()
    if scheme == "bearer":
        return credentials.strip() or None
    if scheme == "basic" and allow_basic:
        try:
            decoded = base64.b64decode(credentials.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return None
        _user, sep, password = decoded.partition(":")
        return password if sep else None
    return None


def check_key(request: Request, allow_basic: bool) -> None:
    """Resolve the caller's principal (``auth.principal_of``) or refuse with 401 in this API's shape."""
    key = presented_key(request.headers.get("authorization"), allow_basic)
    principal = principal_for(request.app.state.settings.auth, key)
    if principal is None:
        schemes = "Basic (the key as password) or Bearer" if allow_basic else "Bearer"
        challenge = 'Basic realm="ablerefusal"' if allow_basic else "Bearer"
        raise CompatError(
            401,
            "invalid_api_key",
            f"missing or invalid API key: send it with {schemes} auth",
            headers={"WWW-Authenticate": challenge},
        )
    request.state.principal = principal


async def require_a1111_key(request: Request) -> None:
    check_key(request, allow_basic=True)


async def require_openai_key(request: Request) -> None:
    check_key(request, allow_basic=False)
