"""Live job events across the gateways of one PostgreSQL store, through LISTEN/NOTIFY.

Each gateway's ``EventHub`` hands what its dispatcher publishes to ``FleetBus.relay``; the bus sends it as a
small notice on the ``ablerefusal_events`` channel (job id, kind, step/total, status, image index — never
image bytes: a preview stays in ``ar_job_previews``, an image in the output store and ``ar_job_results``).
Every other gateway's bus hears it and, only for jobs someone follows there:

- ``progress``: delivers the step to the followers at once;
- ``preview``: reads the job's latest preview from the store (the notice is its reference) and delivers it;
- ``status`` / ``image``: pokes the followers, which read the job from the store (``follow_job``), so the
  whole job, images and terminal state arrive as they would by polling, only at once;
- ``cancel``: a cancel request for a job that may run here: the dispatcher stops it now.

Notices of one gateway go out in order on one connection, several per NOTIFY (a payload stays under
PostgreSQL's 8000 bytes); while one is being sent, newer progress of a job replaces the pending one. A lost
connection is reopened with backoff; meanwhile followers fall back to polling the store, and after the
listener reconnects every followed job is poked once, in case a notice was missed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Literal

import psycopg
from psycopg import sql
from pydantic import BaseModel, ValidationError

from ablerefusal.gateway.events import EventHub, JobEvent, JobImage, JobPreview, JobProgress, JobStatusChange
from ablerefusal.gateway.jobs.store import Preview

log = logging.getLogger(__name__)

CHANNEL = "ablerefusal_events"
# PostgreSQL refuses payloads of 8000 bytes or more.
MAX_PAYLOAD = 7000
# Notices waiting while the database is away: beyond this, the oldest are dropped (followers poll).
MAX_PENDING = 10_000
RETRY_S = (0.5, 30.0)
# A preview announced but not in the store yet is read again after this (the running gateway writes
# previews at most every 0.2 s: dispatch/call.py PROGRESS_WRITE_S).
PREVIEW_REREAD_S = 0.3

Kind = Literal["progress", "preview", "status", "image", "cancel"]


class Notice(BaseModel):
    """One job event, as small as it can be said."""

    j: str  # job id
    k: Kind
    st: int | None = None  # step (progress, preview)
    t: int | None = None  # total steps (progress)
    s: str | None = None  # status (status)
    i: int | None = None  # image index (image)


class Envelope(BaseModel):
    """One NOTIFY payload: the store it is about (its schema), the gateway that sent it, its notices."""

    d: str
    g: str
    e: list[Notice]


def notice_of(event: JobEvent) -> Notice:
    if isinstance(event, JobProgress):
        return Notice(j=event.job_id, k="progress", st=event.step, t=event.total)
    if isinstance(event, JobPreview):
        return Notice(j=event.job_id, k="preview", st=event.step)
    if isinstance(event, JobImage):
        return Notice(j=event.job_id, k="image", i=event.result.index)
    assert isinstance(event, JobStatusChange)
    return Notice(j=event.job_id, k="status", s=event.status.value)


def pack(store: str, origin: str, notices: list[Notice]) -> list[str]:
    """The notices as few payloads as fit under MAX_PAYLOAD, in order."""
    head = len(Envelope(d=store, g=origin, e=[]).model_dump_json(exclude_none=True))
    payloads: list[str] = []
    batch: list[Notice] = []
    size = head
    for notice in notices:
        n = len(notice.model_dump_json(exclude_none=True)) + 1
        if batch and size + n > MAX_PAYLOAD:
            payloads.append(Envelope(d=store, g=origin, e=batch).model_dump_json(exclude_none=True))
            batch, size = [], head
        batch.append(notice)
        size += n
    if batch:
        payloads.append(Envelope(d=store, g=origin, e=batch).model_dump_json(exclude_none=True))
    return payloads


class FleetBus:
    """One gateway's end of the event channel; ``run`` until cancelled."""

    def __init__(
        self,
        url: str,
        store: str,
        gateway_id: str,
        hub: EventHub,
        *,
        load_preview: Callable[[str], Preview | None],
        on_cancel: Callable[[str], None],
    ) -> None:
        """``url``: the store's database (psycopg form); ``store``: its schema ("" for the default), so
        fleets on other schemas of the same database are not heard; ``load_preview``: the store's
        ``preview`` (called in a thread); ``on_cancel``: the dispatcher's ``stop_if_here``."""
        self._url = url
        self._store = store
        self.gateway_id = gateway_id
        self._hub = hub
        self._load_preview = load_preview
        self._on_cancel = on_cancel
        self._pending: list[Notice] = []
        self._has_pending = asyncio.Event()
        # Previews being read from the store, and the newest step already delivered, per job.
        self._fetching: dict[str, bool] = {}
        self._preview_step: dict[str, int] = {}
        self._wanted: dict[str, int] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self.sent = 0  # notices sent and heard, for /metrics and tests
        self.heard = 0
        self.application_name = f"ablerefusal-events {store or 'public'}"[:63]

    # -- sending -------------------------------------------------------------------------------------

    def relay(self, event: JobEvent) -> None:
        """The hub's relay: queue a notice for ``event`` (never blocks)."""
        self._queue(notice_of(event))

    def relay_cancel(self, job_id: str) -> None:
        """A cancel request recorded here for a job another gateway may be running."""
        self._queue(Notice(j=job_id, k="cancel"))

    def _queue(self, notice: Notice) -> None:
        if notice.k in ("progress", "preview"):
            # Only the newest step matters: replace one still waiting rather than add another.
            for n, waiting in enumerate(self._pending):
                if waiting.j == notice.j and waiting.k == notice.k:
                    self._pending[n] = notice
                    return
        self._pending.append(notice)
        if len(self._pending) > MAX_PENDING:
            del self._pending[0]
        self._has_pending.set()

    async def _send_loop(self) -> None:
        delay = RETRY_S[0]
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(
                    self._url, autocommit=True, application_name=self.application_name
                ) as conn:
                    delay = RETRY_S[0]
                    while True:
                        await self._has_pending.wait()
                        self._has_pending.clear()
                        notices, self._pending = self._pending, []
                        try:
                            for payload in pack(self._store, self.gateway_id, notices):
                                await conn.execute("SELECT pg_notify(%s, %s)", (CHANNEL, payload))
                        except BaseException:
                            # Not sent (or not known to be): send again after reconnecting; a repeated
                            # notice is harmless, every receiver acts idempotently.
                            self._pending[:0] = notices
                            self._has_pending.set()
                            raise
                        self.sent += len(notices)
            except psycopg.Error as exc:
                log.warning("fleet events: sending failed: %s; reconnecting in %.1fs", exc, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, RETRY_S[1])

    # -- hearing -------------------------------------------------------------------------------------

    async def _listen_loop(self) -> None:
        delay = RETRY_S[0]
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(
                    self._url, autocommit=True, application_name=self.application_name
                ) as conn:
                    await conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(CHANNEL)))
                    delay = RETRY_S[0]
                    # Anything said while we were not listening is in the store: followers look now.
                    for job_id in self._hub.job_ids():
                        self._hub.poke(job_id)
                    async for note in conn.notifies():
                        self.hear(note.payload)
            except psycopg.Error as exc:
                log.warning("fleet events: listening failed: %s; reconnecting in %.1fs (polling meanwhile)", exc, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, RETRY_S[1])

    def hear(self, payload: str) -> None:
        """Act on one NOTIFY payload (another gateway's notices)."""
        try:
            envelope = Envelope.model_validate_json(payload)
        except ValidationError:
            log.warning("fleet events: ignoring an unreadable notice (%d bytes)", len(payload))
            return
        if envelope.d != self._store or envelope.g == self.gateway_id:
            return
        for notice in envelope.e:
            self.heard += 1
            try:
                self._act(notice)
            except Exception:
                log.exception("fleet events: acting on a %s notice of job %s failed", notice.k, notice.j)

    def _act(self, notice: Notice) -> None:
        hub, job_id = self._hub, notice.j
        if notice.k == "cancel":
            self._on_cancel(job_id)
        elif not hub.subscribers(job_id):
            return
        elif notice.k == "progress" and notice.st is not None and notice.t is not None:
            pct = 100.0 * notice.st / notice.t if notice.t else 0.0
            hub.deliver(JobProgress(job_id=job_id, step=notice.st, total=notice.t, progress=pct))
        elif notice.k == "preview":
            if hub.wants_previews(job_id) and notice.st is not None:
                self._fetch_preview(job_id, notice.st)
        else:
            if notice.k == "status":
                self._preview_step.pop(job_id, None)  # a new run (or none) of the job: steps start again
            hub.poke(job_id)

    def _fetch_preview(self, job_id: str, step: int) -> None:
        self._wanted[job_id] = max(step, self._wanted.get(job_id, -1))
        if job_id in self._fetching:
            self._fetching[job_id] = True  # read again once the read in flight is done
            return
        self._fetching[job_id] = False
        task = asyncio.create_task(self._read_preview(job_id))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _read_preview(self, job_id: str) -> None:
        waited = False
        try:
            while True:
                found = await asyncio.to_thread(self._load_preview, job_id)
                # The running gateway writes previews to the store a little after it announces them
                # (throttled): a read may find the one before, delivered unless it was already; one more
                # read after that write's interval brings the announced one.
                if found is not None and found.step > self._preview_step.get(job_id, -1):
                    self._preview_step[job_id] = found.step
                    image = "data:image/jpeg;base64," + found.jpeg_base64
                    self._hub.deliver(JobPreview(job_id=job_id, step=found.step, image=image))
                behind = found is None or found.step < self._wanted.get(job_id, -1)
                if behind and not waited and self._hub.subscribers(job_id):
                    waited = True
                    await asyncio.sleep(PREVIEW_REREAD_S)
                    continue
                if not self._fetching.get(job_id):
                    return
                self._fetching[job_id] = False
                waited = False
        except Exception:
            log.exception("fleet events: reading the preview of job %s failed", job_id)
        finally:
            self._fetching.pop(job_id, None)
            self._wanted.pop(job_id, None)
            if not self._hub.subscribers(job_id):
                self._preview_step.pop(job_id, None)

    async def run(self) -> None:
        try:
            await asyncio.gather(self._send_loop(), self._listen_loop())
        finally:
            for task in list(self._tasks):
                task.cancel()
