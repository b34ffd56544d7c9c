"""Compatibility APIs: AUTOMATIC1111 ``/sdapi/v1`` and OpenAI ``/v1/images``, translated onto the queue."""

from __future__ import annotations

from collections.abc import Callable

from starlette.responses import Response

from ablerefusal.gateway.compat import a1111, openai_api, openai_edits  # noqa: F401 - openai_edits adds routes
from ablerefusal.gateway.compat.a1111 import router as a1111_router
from ablerefusal.gateway.compat.controlnet import router as controlnet_router
from ablerefusal.gateway.compat.errors import CompatError
from ablerefusal.gateway.compat.openai_api import router as openai_router
from ablerefusal.gateway.errors import ApiException

_RENDERERS: tuple[tuple[str, Callable[[Exception], Response]], ...] = (
    (a1111_router.prefix + "/", a1111.render_error),
    (controlnet_router.prefix + "/", a1111.render_error),
    (openai_router.prefix + "/", openai_api.render_error),
)


def render_error_for(path: str) -> Callable[[ApiException], Response] | None:
    """The error renderer of the compatibility API serving ``path`` (None for the others), for answers
    given before routing (middleware refusals): A1111 and OpenAI clients parse only their own shapes."""
    for prefix, render in _RENDERERS:
        if path.startswith(prefix):
            # As a CompatError: the status stays (a field list would make A1111's renderer answer 422).
            return lambda exc: render(CompatError(exc.status_code, exc.code, exc.message, exc.headers))
    return None


__all__ = ["a1111_router", "controlnet_router", "openai_router", "render_error_for"]
