"""Errors the compatibility routers raise; each router's route class renders them in its API's own shape
(A1111: FastAPI-style 422 ``detail`` list; OpenAI: ``{"error": {...}}``)."""

from __future__ import annotations


class CompatFieldError(Exception):
    """One request field broke one rule."""

    def __init__(self, field: str, message: str, available: list[str] | None = None) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message
        self.available = available


class CompatError(Exception):
    """Any other deliberate error answer: status, a short machine code, a human message."""

    def __init__(self, status_code: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.code = code
        self.message = message
        self.headers = headers or {}
