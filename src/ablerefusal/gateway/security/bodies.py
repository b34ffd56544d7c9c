"""Request bodies: a size limit and a read timeout, answered 413 / 408 in the shape the client's API uses.

Both are enforced while the body streams in, so a chunked body (no Content-Length) is cut off at the limit,
and a client that stops sending mid-body does not hold a request open. The answer is sent from here, and
the application is told the client is gone: FastAPI would otherwise turn an error raised inside its body
read into a 400 "error parsing the body".
"""

from __future__ import annotations

import asyncio

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ablerefusal.gateway.errors import ApiException
from ablerefusal.gateway.schemas import FieldError
from ablerefusal.gateway.security.answers import refuse

_DISCONNECT: Message = {"type": "http.disconnect"}


def too_large(max_bytes: int) -> ApiException:
    return ApiException(
        413,
        "payload_too_large",
        f"request body exceeds server.max_body_bytes ({max_bytes} bytes)",
        details=[FieldError(field="body", message=f"must be at most {max_bytes} bytes")],
    )


def too_slow(timeout_s: float) -> ApiException:
    return ApiException(
        408,
        "timeout",
        f"request body not received in time: each part must arrive within server.body_timeout_s ({timeout_s:g}s)",
        details=[FieldError(field="body", message=f"each part must arrive within {timeout_s:g}s")],
        headers={"Connection": "close"},
    )


class BodyGuard:
    """Pure ASGI middleware: 413 past ``max_bytes`` (declared or streamed), 408 when the next part of the
    body takes longer than ``timeout_s``."""

    def __init__(self, app: ASGIApp, max_bytes: int, timeout_s: float) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.timeout_s = timeout_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = Headers(scope=scope).get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await refuse(scope, receive, send, too_large(self.max_bytes))
            return
        received = 0
        body_done = False
        answered = False  # by us (the app's own answer is then dropped) or by the app
        refused = False

        async def guarded_receive() -> Message:
            nonlocal received, body_done, answered, refused
            if refused:
                return _DISCONNECT
            if body_done:
                # Past the body the app only waits for a disconnect (streaming answers): no deadline.
                return await receive()
            exc: ApiException
            try:
                async with asyncio.timeout(self.timeout_s):
                    message = await receive()
            except TimeoutError:
                exc = too_slow(self.timeout_s)
            else:
                if message["type"] != "http.request":
                    return message
                received += len(message.get("body", b""))
                body_done = not message.get("more_body", False)
                if received <= self.max_bytes:
                    return message
                exc = too_large(self.max_bytes)
            refused = True
            if not answered:
                answered = True
                await refuse(scope, receive, send, exc)
            return _DISCONNECT

        async def guarded_send(message: Message) -> None:
            nonlocal answered
            if refused:
                return  # we answered already; the app's late answer has nowhere to go
            if message["type"] == "http.response.start":
                answered = True
            await send(message)

        await self.app(scope, guarded_receive, guarded_send)
