"""Typed engine errors; the HTTP layer maps each to a protocol ``ErrorBody`` and status code."""

from __future__ import annotations

from ablerefusal.protocol import RETRYABLE_CODES, ErrorBody, ErrorCode, ErrorDetail


class WorkerError(Exception):
    """An error with a protocol code, an HTTP status (when raised before streaming) and optional details."""

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


class InvalidRequestError(WorkerError):
    status = 400
    code = ErrorCode.invalid_request


class CallNotFoundError(WorkerError):
    status = 404
    code = ErrorCode.invalid_request


class ModelNotFoundError(WorkerError):
    status = 404
    code = ErrorCode.model_not_found


class BusyError(WorkerError):
    status = 409
    code = ErrorCode.busy


class NotReadyError(WorkerError):
    status = 503
    code = ErrorCode.internal


class ModelLoadError(WorkerError):
    """The model exists but cannot be loaded (missing configs/tokenizer, offline hub id, corrupt file)."""

    code = ErrorCode.internal


class CallCancelledError(Exception):
    """Raised inside the denoising loop to stop a cancelled call at the next step."""
