"""One WebSocket connection's job subscriptions (``GET /api/v1/ws``).

A client sends ``subscribe`` / ``unsubscribe`` messages naming job ids; for every subscribed job the gateway
sends the same events as that job's SSE stream (``gateway/events.py``: status, progress, preview, image),
each as one JSON text frame whose ``type`` says which. A subscription ends by itself after the job's terminal
status event; ``unsubscribe`` ends it early and is acknowledged by an ``unsubscribed`` frame. Bad messages
get an ``error`` frame naming the field and the rule, and the connection (with its other subscriptions)
stays open: a client's mistake about one job must not cost it the others.

Each subscribed job is followed by its own task (``follow_job``, so jobs another gateway runs are seen too);
one sender task writes frames, because a WebSocket must not be written from several tasks at once. The
outgoing queue is bounded, so a slow client backs up into the event hub, which drops superseded progress
and previews rather than memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError
from starlette.websockets import WebSocket, WebSocketDisconnect

from ablerefusal.gateway.auth import Principal
from ablerefusal.gateway.errors import ApiException
from ablerefusal.gateway.jobs import JobNotFound
from ablerefusal.gateway.schemas import ApiError, FieldError
from ablerefusal.gateway.services import GatewayService

log = logging.getLogger(__name__)

MAX_SUBSCRIPTIONS = 64
MAX_MESSAGE_CHARS = 16_384
_OUTGOING_FRAMES = 64

JobId = Annotated[str, Field(min_length=1, max_length=64)]


class Subscribe(BaseModel):
    """Start streaming the events of these jobs (already subscribed ones are left as they are)."""

    model_config = ConfigDict(extra="forbid")
    type: Literal["subscribe"] = Field(..., description="Message kind.")
    job_ids: list[JobId] = Field(
        ..., min_length=1, max_length=MAX_SUBSCRIPTIONS, description="Jobs to follow until they end."
    )
    previews: bool = Field(True, description="Also send latent previews (they cost the worker time each step).")


class Unsubscribe(BaseModel):
    """Stop streaming these jobs' events (unknown or finished ones are ignored)."""

    model_config = ConfigDict(extra="forbid")
    type: Literal["unsubscribe"] = Field(..., description="Message kind.")
    job_ids: list[JobId] = Field(..., min_length=1, max_length=MAX_SUBSCRIPTIONS, description="Jobs to drop.")


ClientMessage = Annotated[Subscribe | Unsubscribe, Field(discriminator="type")]
_client_message: TypeAdapter[Subscribe | Unsubscribe] = TypeAdapter(ClientMessage)


class Unsubscribed(BaseModel):
    """Acknowledges an ``unsubscribe``: no frame about these jobs follows it."""

    type: Literal["unsubscribed"] = Field("unsubscribed", description="Message kind.")
    job_ids: list[str] = Field(..., description="The jobs named in the unsubscribe message.")


class LiveError(BaseModel):
    """A refused message or subscription; the connection stays open."""

    type: Literal["error"] = Field("error", description="Message kind.")
    job_id: str | None = Field(None, description="The job the error is about, when it is about one.")
    error: ApiError = Field(..., description="Same shape as the REST API's error body.")


def _message_errors(exc: ValidationError) -> list[FieldError]:
    """Field errors named as the client wrote them: without pydantic's union tag in front, and the message
    kind itself called ``type``."""
    details: dict[str, FieldError] = {}
    for err in exc.errors():
        kind, loc = err["type"], list(err["loc"])
        if kind == "json_invalid":
            field, rule = "message", f"must be valid JSON ({err['msg']})"
        elif not loc and kind in {"union_tag_invalid", "union_tag_not_found"}:
            field, rule = "type", "must be 'subscribe' or 'unsubscribe'"
        elif not loc:
            field, rule = "message", "must be a JSON object"
        else:
            field = ".".join(str(part) for part in loc[1:]) or "message"
            rule = "unknown field" if kind == "extra_forbidden" else str(err["msg"])
        details.setdefault(field, FieldError(field=field, message=rule))
    return list(details.values())


def _invalid(details: list[FieldError]) -> LiveError:
    message = "; ".join(f"{d.field}: {d.message}" for d in details)
    return LiveError(error=ApiError(code="invalid_request", message=message, details=details))


class LiveSession:
    """Serves one accepted WebSocket until the client leaves; ``run`` returns then."""

    def __init__(self, websocket: WebSocket, service: GatewayService, principal: Principal) -> None:
        self._ws = websocket
        self._service = service
        self._principal = principal
        self._out: asyncio.Queue[str] = asyncio.Queue(maxsize=_OUTGOING_FRAMES)
        self._follows: dict[str, asyncio.Task[None]] = {}

    async def run(self) -> None:
        sender = asyncio.create_task(self._send_frames())
        try:
            while True:
                message = await self._ws.receive()
                if message["type"] == "websocket.disconnect":
                    return
                await self._handle(message.get("text"))
        finally:
            tasks = [sender, *self._follows.values()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _send_frames(self) -> None:
        # A send to a client that has gone raises; the receive loop sees the disconnect and ends the session.
        with contextlib.suppress(WebSocketDisconnect, RuntimeError, OSError):
            while True:
                await self._ws.send_text(await self._out.get())

    async def _emit(self, frame: BaseModel) -> None:
        await self._out.put(frame.model_dump_json())

    async def _handle(self, text: str | None) -> None:
        if text is None:
            await self._emit(_invalid([FieldError(field="message", message="must be a JSON text frame")]))
            return
        if len(text) > MAX_MESSAGE_CHARS:
            rule = f"must be at most {MAX_MESSAGE_CHARS} characters"
            await self._emit(_invalid([FieldError(field="message", message=rule)]))
            return
        try:
            parsed = _client_message.validate_json(text)
        except ValidationError as exc:
            await self._emit(_invalid(_message_errors(exc)))
            return
        if isinstance(parsed, Unsubscribe):
            tasks = [task for job_id in parsed.job_ids if (task := self._follows.pop(job_id, None)) is not None]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            # Sent after the followers stopped, so no frame of these jobs comes after it.
            await self._emit(Unsubscribed(job_ids=parsed.job_ids))
            return
        new = [job_id for job_id in dict.fromkeys(parsed.job_ids) if job_id not in self._follows]
        if len(self._follows) + len(new) > MAX_SUBSCRIPTIONS:
            rule = f"at most {MAX_SUBSCRIPTIONS} jobs may be followed at once on one connection"
            await self._emit(_invalid([FieldError(field="job_ids", message=rule)]))
            return
        for job_id in new:
            self._follows[job_id] = asyncio.create_task(self._follow(job_id, parsed.previews))

    async def _follow(self, job_id: str, previews: bool) -> None:
        try:
            # Another key's job is "not found" here as on every other route.
            await self._service.check_access(job_id, self._principal)
            async for event in self._service.follow(job_id, previews=previews):
                await self._out.put(event.model_dump_json())
        except ApiException as exc:
            await self._emit(LiveError(job_id=job_id, error=exc.envelope().error))
        except JobNotFound as exc:
            await self._emit(LiveError(job_id=job_id, error=ApiError(code="not_found", message=str(exc))))
        except Exception:
            log.exception("following job %s for a WebSocket client failed", job_id)
            error = ApiError(code="internal", message="following the job failed; subscribe again or poll it")
            await self._emit(LiveError(job_id=job_id, error=error))
        finally:
            if self._follows.get(job_id) is asyncio.current_task():
                del self._follows[job_id]
