"""Optional API keys: ``Authorization: Bearer <key>`` on /api/v1 and /outputs when ``auth.api_keys`` (or
``auth.admin_keys``) is set.

Jobs belong to the key that submitted them: each request is resolved to a ``Principal`` that names its key
by a key id (a hash prefix, never the key itself, which is what the job store keeps) and says whether it is
an admin key, which sees and changes every job.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from ablerefusal.gateway.errors import ApiException
from ablerefusal.gateway.settings import AuthSettings

# auto_error=False: with no keys configured the API is open, and a missing header must not be an error.
bearer_scheme = HTTPBearer(auto_error=False, description="API key from auth.api_keys, when keys are configured.")


@dataclass(frozen=True)
class Principal:
    """Who is asking. ``owner`` is the key id jobs are stored under (None when no keys are configured);
    ``admin`` may see and change every job."""

    owner: str | None
    admin: bool

    def may_access(self, job_owner: str | None) -> bool:
        return self.admin or job_owner == self.owner

    @property
    def scope(self) -> str | None:
        """The owner whose jobs listings show; None for all of them."""
        return None if self.admin else self.owner


# No keys configured: one user (the machine's), who is everyone's admin.
OPEN = Principal(owner=None, admin=True)


def key_id(key: str) -> str:
    """What the job store keeps of a key: enough to tell keys apart, nothing to authenticate with."""
    return hashlib.sha256(key.encode()).hexdigest()[:16]


def key_matches(presented: str, keys: list[str]) -> bool:
    # compare_digest against every key, without early exit, so timing does not reveal which key is close.
    found = False
    for key in keys:
        found |= hmac.compare_digest(presented.encode(), key.encode())
    return found


def principal_for(auth: AuthSettings, presented: str | None) -> Principal | None:
    """The principal a presented key stands for; None when keys are configured and it is not one."""
    if not auth.all_keys:
        return OPEN
    if presented is None or not key_matches(presented, auth.all_keys):
        return None
    return Principal(owner=key_id(presented), admin=key_matches(presented, auth.admin_keys))


def principal_of(request: Request) -> Principal:
    """The principal an auth dependency resolved for this request (open when there was none to resolve)."""
    principal: Principal = getattr(request.state, "principal", OPEN)
    return principal


async def require_api_key(request: Request) -> None:
    credentials: HTTPAuthorizationCredentials | None = await bearer_scheme(request)
    auth: AuthSettings = request.app.state.settings.auth
    principal = principal_for(auth, credentials.credentials if credentials else None)
    if principal is None:
        raise ApiException(
            401,
            "unauthorized",
            "missing or invalid API key: send 'Authorization: Bearer <key>'",
            headers={"WWW-Authenticate": "Bearer"},
        )
    request.state.principal = principal


async def optional_principal(request: Request) -> Principal | None:
    """For open routes (readiness): who is asking if they sent a valid key, else None."""
    credentials: HTTPAuthorizationCredentials | None = await bearer_scheme(request)
    auth: AuthSettings = request.app.state.settings.auth
    return principal_for(auth, credentials.credentials if credentials else None)


PrincipalDep = Annotated[Principal, Depends(principal_of)]
OptionalPrincipalDep = Annotated[Principal | None, Depends(optional_principal)]


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
