"""Connection-level settings of the gateway's HTTP server (uvicorn): how long a client may take to send
its headers, and whose forwarded headers are believed.

uvicorn has no header read timeout: a client that sends half a request line and then nothing holds its
connection (and a file descriptor) for ever, and a few thousand such clients exhaust the process. The
protocol class below closes a connection whose request headers are not complete ``timeout_s`` after the
connection opened or the request began (body reads have their own timeout, ``bodies.BodyGuard``).
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

_REQUEST_TIMEOUT = b"HTTP/1.1 408 Request Timeout\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"


class HeaderTimeoutProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a deadline on each request's headers."""

    header_timeout_s = 10.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._header_deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._arm()

    def on_headers_complete(self) -> None:
        self._disarm()
        super().on_headers_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self) -> None:
        if self._header_deadline is None:
            self._header_deadline = self.loop.call_later(self.header_timeout_s, self._headers_too_slow)

    def _disarm(self) -> None:
        if self._header_deadline is not None:
            self._header_deadline.cancel()
            self._header_deadline = None

    def _headers_too_slow(self) -> None:
        self._header_deadline = None
        if self.transport.is_closing():
            return
        # Only between answers may we write one of our own; mid-answer (a pipelined request behind a
        # stream) closing is all that is left.
        if self.cycle is None or self.cycle.response_complete:
            self.transport.write(_REQUEST_TIMEOUT)
        self.transport.close()


def header_timeout_protocol(timeout_s: float) -> type[HeaderTimeoutProtocol]:
    """The protocol class to give uvicorn's ``http=``, with this deadline."""
    return type("HeaderTimeoutProtocol", (HeaderTimeoutProtocol,), {"header_timeout_s": timeout_s})


def uvicorn_options(header_timeout_s: float, trusted_proxies: list[str]) -> dict[str, Any]:
    """Keyword arguments for ``uvicorn.Config``: the header deadline, and forwarded headers
    (X-Forwarded-For/-Proto) believed only from ``trusted_proxies`` (uvicorn believes 127.0.0.1 by
    default, which lets any local process claim to be https or another client)."""
    return {
        "http": header_timeout_protocol(header_timeout_s),
        "proxy_headers": bool(trusted_proxies),
        "forwarded_allow_ips": list(trusted_proxies) or None,
    }
