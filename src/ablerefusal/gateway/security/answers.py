"""Refusals given by the guards, before routing: in the error shape of the API the request addressed
(A1111 and OpenAI clients parse only their own)."""

from __future__ import annotations

from starlette.types import Receive, Scope, Send

from ablerefusal.gateway.compat import render_error_for
from ablerefusal.gateway.errors import ApiException, error_response


async def refuse(scope: Scope, receive: Receive, send: Send, exc: ApiException) -> None:
    """Answer ``exc`` in the error shape of the API ``scope`` addresses."""
    render = render_error_for(scope["path"])
    response = render(exc) if render is not None else error_response(exc)
    await response(scope, receive, send)
