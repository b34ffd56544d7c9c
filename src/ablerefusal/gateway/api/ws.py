"""WebSocket progress: ``GET /api/v1/ws`` streams the SSE events of the jobs a client subscribes to.

The API key is checked at the handshake, before the connection is accepted: a refused client gets a plain
HTTP 401 answer with the REST error body. Browsers cannot set headers on a WebSocket, so besides
``Authorization: Bearer <key>`` the key may come as the ``api_key`` query parameter (the gateway does not log
request lines; a proxy in front may, so prefer the header where the client can send it). As everywhere, a
key follows only the jobs it submitted (an admin key every job); another key's job is "not found".

WebSockets are not subject to CORS: any page a user visits could open one to a gateway on their machine, so
``security.OriginGuard`` refuses handshakes from foreign origins before they get here.
"""

from __future__ import annotations

from fastapi import APIRouter, WebSocket

from ablerefusal.gateway.auth import principal_for
from ablerefusal.gateway.errors import ApiException, error_response
from ablerefusal.gateway.live import LiveSession
from ablerefusal.gateway.services import GatewayService
from ablerefusal.gateway.settings import Settings

router = APIRouter(tags=["events"])


def _presented_key(websocket: WebSocket) -> str | None:
    scheme, _, credentials = websocket.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and credentials:
        return credentials.strip()
    return websocket.query_params.get("api_key")


_UNAUTHORIZED = ApiException(
    401,
    "unauthorized",
    "missing or invalid API key: send 'Authorization: Bearer <key>' or the api_key query parameter",
    headers={"WWW-Authenticate": "Bearer"},
)


@router.websocket("/ws", name="job_events_ws")
async def job_events_ws(websocket: WebSocket) -> None:
    """Send ``{"type": "subscribe", "job_ids": [...]}`` / ``{"type": "unsubscribe", ...}``; receive each
    job's events as JSON frames (same bodies as the SSE stream's ``data``), and ``error`` frames for refused
    messages. Foreign ``Origin`` headers never get here (``security.OriginGuard``)."""
    settings: Settings = websocket.app.state.settings
    service: GatewayService = websocket.app.state.service
    principal = principal_for(settings.auth, _presented_key(websocket))
    if principal is None:
        await websocket.send_denial_response(error_response(_UNAUTHORIZED))
        return
    await websocket.accept()
    await LiveSession(websocket, service, principal).run()
