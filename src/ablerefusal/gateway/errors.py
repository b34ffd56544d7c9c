"""Error answers of the gateway: every 4xx/5xx of /api/v1 is a ``schemas.ErrorEnvelope``.

FastAPI's default 422 is replaced by a 400 with one entry per offending field, because clients (and the web
UI's form) want the field name and the rule, not pydantic's internal location tuples.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from ablerefusal.gateway.schemas import ApiError, ErrorEnvelope, FieldError, Job

log = logging.getLogger(__name__)

# Sources FastAPI puts first in a validation error's location; the client knows them only as field names.
_LOC_SOURCES = {"body", "query", "path", "header", "cookie"}

_STATUS_CODES = {
    400: "invalid_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    408: "timeout",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "conflict",
    429: "queue_full",
    500: "internal",
    503: "unavailable",
}


class ApiException(Exception):
    """An answer the API gives on purpose; carries everything the envelope needs."""

    def __init__(
        self,
        status_code: int,
        code: str,
        message: str,
        *,
        details: Sequence[FieldError] = (),
        available: list[str] | None = None,
        job: Job | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.code = code
        self.message = message
        self.details = list(details)
        self.available = available
        self.job = job
        self.headers = headers or {}

    def envelope(self) -> ErrorEnvelope:
        return ErrorEnvelope(
            error=ApiError(code=self.code, message=self.message, details=self.details, available=self.available),
            job=self.job,
        )


def invalid(field: str, message: str, available: list[str] | None = None) -> ApiException:
    """A 400 for one bad field."""
    return ApiException(
        400,
        "invalid_request",
        f"{field}: {message}",
        details=[FieldError(field=field, message=message)],
        available=available,
    )


def error_response(exc: ApiException) -> JSONResponse:
    return JSONResponse(
        exc.envelope().model_dump(mode="json"), status_code=exc.status_code, headers=exc.headers or None
    )


def _field_name(loc: Sequence[int | str]) -> str:
    parts = list(loc)
    if parts and parts[0] in _LOC_SOURCES:
        parts = parts[1:]
    return ".".join(str(p) for p in parts) or "body"


def field_errors(errors: Sequence[Any]) -> list[FieldError]:
    """One entry per offending field, first rule broken wins (a field that is both missing and wrong
    reports once)."""
    seen: dict[str, FieldError] = {}
    for err in errors:
        name = _field_name(err.get("loc", ()))
        if err.get("type") == "json_invalid":
            name, msg = "body", f"invalid JSON: {err.get('ctx', {}).get('error', err.get('msg'))}"
        elif err.get("type") == "extra_forbidden":
            msg = "unknown field"
        else:
            msg = str(err.get("msg", "invalid value"))
        seen.setdefault(name, FieldError(field=name, message=msg))
    return list(seen.values())


async def _validation_handler(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    details = field_errors(exc.errors())
    message = "; ".join(f"{d.field}: {d.message}" for d in details) or "invalid request"
    return error_response(ApiException(400, "invalid_request", message, details=details))


async def _api_handler(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiException)
    return error_response(exc)


def from_http_exception(exc: StarletteHTTPException) -> ApiException:
    """Our error for an HTTPException raised by Starlette or FastAPI themselves."""
    code = _STATUS_CODES.get(exc.status_code, "error")
    headers = dict(exc.headers or {})
    if isinstance(exc.__cause__, RecursionError):
        # FastAPI says only "error parsing the body" when json.loads gives up on nesting depth.
        message = "body: JSON nested too deeply (arrays and objects may nest at most about 900 levels)"
        details = [FieldError(field="body", message="JSON nested too deeply")]
        return ApiException(exc.status_code, code, message, details=details, headers=headers)
    return ApiException(exc.status_code, code, str(exc.detail), headers=headers)


async def _http_handler(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    return error_response(from_http_exception(exc))


async def _unhandled_handler(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return error_response(ApiException(500, "internal", "internal server error"))


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, _validation_handler)
    app.add_exception_handler(ApiException, _api_handler)
    app.add_exception_handler(StarletteHTTPException, _http_handler)
    app.add_exception_handler(Exception, _unhandled_handler)
