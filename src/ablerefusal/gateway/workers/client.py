"""Client of worker protocol v1 (DESIGN.md §4): the gateway's only way to talk to a worker.

Errors are typed: every non-2xx answer becomes a ``WorkerError`` carrying the protocol's ``ErrorCode`` and
``retryable``; a refused connection, a timeout or a generation stream cut before its ``done``/``error``
line becomes ``WorkerUnreachable`` (code ``worker_unreachable``, always retryable). A worker's token, when
it has one, goes with every request as ``Authorization: Bearer``; the calling gateway's id, when given, as
``X-AbleRefusal-Caller`` (a worker logs who drives it, and says when two callers overlap).
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from typing import Any

import httpx
from pydantic import ValidationError

from ablerefusal.protocol import (
    EVENT_TYPES,
    RETRYABLE_CODES,
    DetectRequest,
    DetectResponse,
    DoneEvent,
    ErrorBody,
    ErrorCode,
    ErrorEvent,
    ErrorResponse,
    GenerateCall,
    ModelList,
    PreprocessorList,
    WorkerEvent,
    WorkerInfo,
    parse_event,
)

log = logging.getLogger(__name__)

WORKER_UNREACHABLE = "worker_unreachable"
CALLER_HEADER = "X-AbleRefusal-Caller"
DEFAULT_TIMEOUT = httpx.Timeout(10.0, connect=5.0)
# A generation stream may stay silent while the worker loads a model; deadlines and leases bound it.
STREAM_TIMEOUT = httpx.Timeout(None, connect=5.0)


class WorkerError(Exception):
    """A worker answered with an error (HTTP error body or an ``error`` stream event)."""

    def __init__(
        self,
        code: ErrorCode | str,
        message: str,
        *,
        retryable: bool,
        status_code: int | None = None,
        body: ErrorBody | None = None,
    ) -> None:
        super().__init__(f"{code}: {message}")
        self.code = str(code)
        self.message = message
        self.retryable = retryable
        self.status_code = status_code
        self.body = body


class WorkerUnreachable(WorkerError):
    """No usable answer: connection refused/reset, timeout, or the stream ended without ``done``."""

    def __init__(self, message: str) -> None:
        super().__init__(WORKER_UNREACHABLE, message, retryable=True)


def _error_from_response(response: httpx.Response) -> WorkerError:
    try:
        body = ErrorResponse.model_validate_json(response.content).error
    except ValidationError:
        # Not our error shape (a proxy's page, a crash mid-answer): only the status code says anything.
        retryable = response.status_code >= 500
        code = ErrorCode.internal if retryable else ErrorCode.invalid_request
        text = response.text[:200] or response.reason_phrase
        return WorkerError(
            code,
            f"HTTP {response.status_code}: {text}",
            retryable=retryable,
            status_code=response.status_code,
        )
    retryable = body.retryable or body.code in RETRYABLE_CODES
    return WorkerError(body.code, body.message, retryable=retryable, status_code=response.status_code, body=body)


def error_from_event(event: ErrorEvent) -> WorkerError:
    """The exception equivalent of an ``error`` line of a generation stream."""
    return WorkerError(event.code, event.message, retryable=event.retryable or event.code in RETRYABLE_CODES)


class WorkerClient:
    """Async client for one worker's ``/v1`` API at ``base_url`` (e.g. ``http://127.0.0.1:8001``)."""

    def __init__(
        self,
        base_url: str,
        *,
        token: str | None = None,
        timeout: float | httpx.Timeout = DEFAULT_TIMEOUT,
        http: httpx.AsyncClient | None = None,
        caller: str | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._headers = {"Authorization": f"Bearer {token}"} if token else {}
        if caller:
            self._headers[CALLER_HEADER] = caller
        self._http = http or httpx.AsyncClient(timeout=timeout)
        self._owns_http = http is None

    async def aclose(self) -> None:
        if self._owns_http:
            await self._http.aclose()

    async def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = await self._http.request(method, self.base_url + path, headers=self._headers, **kwargs)
        except httpx.TransportError as exc:
            raise WorkerUnreachable(f"{method} {self.base_url}{path}: {exc!r}") from exc
        if response.status_code >= 400:
            raise _error_from_response(response)
        return response

    async def health(self) -> bool:
        """Liveness: True when the process answers; False when unreachable or erroring."""
        try:
            await self._request("GET", "/v1/health")
        except WorkerError:
            return False
        return True

    async def ready(self) -> bool:
        """Readiness: True once the worker's device is initialised (``/v1/ready`` answers 2xx)."""
        return await self.not_ready_reason() is None

    async def not_ready_reason(self) -> str | None:
        """None when ``/v1/ready`` answers 2xx, else why not (the worker's own reason when it gives one);
        raises ``WorkerUnreachable`` when the worker does not answer."""
        try:
            response = await self._http.get(self.base_url + "/v1/ready", headers=self._headers)
        except httpx.TransportError as exc:
            raise WorkerUnreachable(f"GET {self.base_url}/v1/ready: {exc!r}") from exc
        if response.status_code < 400:
            return None
        try:
            reason = json.loads(response.content).get("reason")
        except (ValueError, AttributeError):
            reason = None
        if reason is None and response.status_code != 503:
            reason = str(_error_from_response(response))
        return f"/v1/ready answered {response.status_code}" + (f": {reason}" if reason else "")

    async def info(self) -> WorkerInfo:
        return WorkerInfo.model_validate_json((await self._request("GET", "/v1/info")).content)

    async def models(self, kind: str | None = None) -> ModelList:
        """The worker's checkpoints, or with ``kind`` its files of that kind (lora, embedding, controlnet,
        vae, upscaler)."""
        params = {"kind": kind} if kind is not None else None
        return ModelList.model_validate_json((await self._request("GET", "/v1/models", params=params)).content)

    async def controlnet_preprocessors(self) -> PreprocessorList:
        """The worker's ControlNet preprocessors, each with whether it runs there and why not."""
        response = await self._request("GET", "/v1/controlnet/preprocessors")
        return PreprocessorList.model_validate_json(response.content)

    async def controlnet_detect(self, request: DetectRequest) -> DetectResponse:
        """Run one ControlNet preprocessor on one image (the worker decodes and checks it)."""
        response = await self._request("POST", "/v1/controlnet/detect", json=request.model_dump(mode="json"))
        return DetectResponse.model_validate_json(response.content)

    async def cancel(self, call_id: str, job_id: str | None = None) -> bool:
        """Stop a call at its next step, or drop only ``job_id``'s item. False if the call is unknown
        (already finished); ``WorkerUnreachable`` if the worker does not answer."""
        try:
            await self._request("POST", f"/v1/generate/{call_id}/cancel", json={"job_id": job_id} if job_id else {})
        except WorkerUnreachable:
            raise
        except WorkerError as exc:
            if exc.status_code == 404:
                return False
            raise
        return True

    async def generate(self, call: GenerateCall) -> AsyncIterator[WorkerEvent]:
        """Run one call; yields its parsed events in order, the last being ``done`` or ``error``.

        An HTTP error answer raises ``WorkerError`` before anything is yielded; ``error`` lines are
        yielded (an item's error carries its ``job_id``; a call-wide one ends the stream). A stream that
        breaks or ends without ``done``/``error`` raises ``WorkerUnreachable``.
        """
        url = self.base_url + "/v1/generate"
        # Only the fields the caller set: a plain call then reads the same to a worker that predates a newer
        # optional field (workers refuse unknown fields).
        body = call.model_dump(mode="json", exclude_none=True, exclude_unset=True)
        try:
            async with self._http.stream(
                "POST", url, json=body, headers=self._headers, timeout=STREAM_TIMEOUT
            ) as response:
                if response.status_code >= 400:
                    await response.aread()
                    raise _error_from_response(response)
                lines = response.aiter_lines()
                async for line in lines:
                    if not line.strip():
                        continue
                    try:
                        event = parse_event(line)
                    except ValidationError as exc:
                        if _event_type(line) not in EVENT_TYPES:
                            # A newer worker's event this gateway does not know: growth, not a fault.
                            log.debug("skipping unknown worker event: %.200s", line)
                            continue
                        raise WorkerError(
                            ErrorCode.internal, f"unparseable stream line: {exc.errors()[:1]}", retryable=True
                        ) from exc
                    yield event
                    if isinstance(event, DoneEvent) or (isinstance(event, ErrorEvent) and event.job_id is None):
                        # Read the stream to its end (the worker ends it right after): a response closed
                        # half-read also closes its connection, and the next call would open a new one.
                        async for _ in lines:
                            pass
                        return
        except httpx.TransportError as exc:
            raise WorkerUnreachable(f"generation stream from {self.base_url} broke: {exc!r}") from exc
        raise WorkerUnreachable(f"generation stream from {self.base_url} ended without a done event")


def _event_type(line: str) -> object:
    try:
        data = json.loads(line)
    except ValueError:
        return None
    return data.get("type") if isinstance(data, dict) else None
