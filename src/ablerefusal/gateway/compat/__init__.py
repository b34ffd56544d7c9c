"""Compatibility APIs: AUTOMATIC1111 ``/sdapi/v1`` and OpenAI ``/v1/images``, translated onto the queue."""

from ablerefusal.gateway.compat.a1111 import router as a1111_router
from ablerefusal.gateway.compat.openai_api import router as openai_router

__all__ = ["a1111_router", "openai_router"]
