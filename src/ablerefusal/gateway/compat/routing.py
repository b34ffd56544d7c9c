"""A route class per compatibility API that renders every error of its routes in that API's shape.

The app's exception handlers answer in our ``/api/v1`` envelope; A1111 and OpenAI clients parse their own
shapes, so errors raised by these routes (validation, our deliberate errors, service errors) are caught in
the route handler itself, before the app's handlers see them.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException as StarletteHTTPException

from ablerefusal.gateway.compat.errors import CompatError, CompatFieldError
from ablerefusal.gateway.compat.waiting import ClientGone
from ablerefusal.gateway.errors import ApiException, from_http_exception

Handler = Callable[[Request], Coroutine[Any, Any, Response]]
Renderer = Callable[[Exception], Response]

CLIENT_CLOSED_REQUEST = 499
HANDLED = (RequestValidationError, CompatFieldError, CompatError, ApiException)


def route_class(render: Renderer) -> type[APIRoute]:
    class CompatRoute(APIRoute):
        def get_route_handler(self) -> Handler:
            handler = super().get_route_handler()

            async def handle(request: Request) -> Response:
                try:
                    return await handler(request)
                except HANDLED as exc:
                    return render(exc)
                except StarletteHTTPException as exc:
                    # Raised by FastAPI itself (an unparsable body): still this API's shape, status kept.
                    api = from_http_exception(exc)
                    return render(CompatError(api.status_code, api.code, api.message, api.headers))
                except ClientGone:
                    # Nobody reads this answer; 499 is the "client closed request" code proxies log.
                    return Response(status_code=CLIENT_CLOSED_REQUEST)

            return handle

    return CompatRoute


def validation_field(loc: tuple[int | str, ...] | list[int | str]) -> str:
    parts = list(loc)
    if parts and parts[0] in {"body", "query", "path", "header"}:
        parts = parts[1:]
    return ".".join(str(p) for p in parts) or "body"
