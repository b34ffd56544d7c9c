"""Typed engine errors; the HTTP layer maps each to a protocol ``ErrorBody`` and status code."""

from __future__ import annotations

from ablerefusal.protocol import RETRYABLE_CODES, ErrorBody, ErrorCode, ErrorDetail


class EngineError(Exception):
    """An engine error with a protocol code, an HTTP status (when raised before streaming) and optional details.

    The gateway sees it as a ``gateway.workers.client.WorkerError``; the names differ so neither is mistaken
    for the other."""

    status = 500
    code = ErrorCode.internal

    def __init__(
        self,
        message: str,
        *,
        field: str | None = None,
        available: list[str] | None = None,
        details: list[ErrorDetail] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or ([ErrorDetail(field=field, message=message)] if field else [])
        self.available = available

    def body(self) -> ErrorBody:
        return ErrorBody(
            code=self.code,
            message=self.message,
            retryable=self.code in RETRYABLE_CODES or self.status == 503,
            details=self.details,
            available=self.available,
        )


class InvalidRequestError(EngineError):
    status = 400
    code = ErrorCode.invalid_request


class UnauthorizedError(EngineError):
    status = 401
    code = ErrorCode.invalid_request


class CallNotFoundError(EngineError):
    status = 404
    code = ErrorCode.invalid_request


class ModelNotFoundError(EngineError):
    status = 404
    code = ErrorCode.model_not_found


class BusyError(EngineError):
    status = 409
    code = ErrorCode.busy


class NotReadyError(EngineError):
    status = 503
    code = ErrorCode.internal


class ModelLoadError(EngineError):
    """The model exists but cannot be loaded (missing configs/tokenizer, offline hub id, corrupt file)."""

    code = ErrorCode.internal


class CallCancelledError(Exception):
    """Raised inside the denoising loop to stop a cancelled call at the next step."""
