"""Optional API keys: ``Authorization: Bearer <key>`` on /api/v1 and /outputs when ``auth.api_keys``
is set."""

from __future__ import annotations

import hmac
import ipaddress

from fastapi import Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from ablerefusal.gateway.errors import ApiException

# auto_error=False: with no keys configured the API is open, and a missing header must not be an error.
bearer_scheme = HTTPBearer(auto_error=False, description="API key from auth.api_keys, when keys are configured.")


def key_matches(presented: str, keys: list[str]) -> bool:
    # compare_digest against every key, without early exit, so timing does not reveal which key is close.
    found = False
    for key in keys:
        found |= hmac.compare_digest(presented.encode(), key.encode())
    return found


async def require_api_key(request: Request) -> None:
    keys: list[str] = request.app.state.settings.auth.api_keys
    if not keys:
        return
    credentials: HTTPAuthorizationCredentials | None = await bearer_scheme(request)
    if credentials is None or not key_matches(credentials.credentials, keys):
        raise ApiException(
            401,
            "unauthorized",
            "missing or invalid API key: send 'Authorization: Bearer <key>'",
            headers={"WWW-Authenticate": "Bearer"},
        )


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_bind_safety(host: str, api_keys: list[str], insecure: bool) -> None:
    """Refuse to expose an open API on the network by accident."""
    if not is_loopback(host) and not api_keys and not insecure:
        raise SystemExit(
            f"refusing to listen on non-loopback host {host!r} without API keys: "
            "set auth.api_keys (or --api-key), or pass --insecure to allow it"
        )
