"""Per-job events for SSE subscribers: progress, previews, images and status changes.

``EventHub`` is in-process pub/sub: the dispatcher publishes, each SSE connection subscribes to one job id.
Publishing never waits: every subscriber has a bounded queue, and when a slow subscriber's queue is full
its oldest *non-status* event is dropped (a later progress or preview supersedes it; status changes and
images are what a client must not miss, and the store still has everything).

Another gateway may run the job (several gateways on one PostgreSQL store). Its dispatcher's events reach
this hub through the fleet bus (``fleet/bus.py``, LISTEN/NOTIFY): what a hub publishes goes to its ``relay``
as well, and what the bus hears from other gateways comes in through ``deliver`` (progress, previews read
from the store) and ``poke`` (status changes and images: followers re-read the job from the store now).
``follow_job`` covers every case: it starts from the store's snapshot, streams hub events, and when poked,
or after ``poll_interval_s`` without news (the bus may be down), reads the store to synthesise events for
changes the hub did not carry, ending after the terminal status. The SSE endpoint should iterate
``follow_job``, not the hub.

``QueueListener`` carries one signal across gateways: "a job can be claimed", PostgreSQL ``NOTIFY`` from the
store's submits, which wakes idle dispatchers everywhere.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from typing import Annotated, Literal, Protocol

import psycopg
from psycopg import sql
from pydantic import BaseModel, Field

from ablerefusal.gateway.schemas import TERMINAL_STATUSES, Job, JobResult, JobStatus

log = logging.getLogger(__name__)
# Reconnect delays of a listener whose connection broke: from the first to the largest.
LISTEN_RETRY_S = (0.5, 30.0)


class JobProgress(BaseModel):
    type: Literal["progress"] = "progress"
    job_id: str = Field(..., description="Job the event is about.")
    step: int = Field(..., description="Denoising steps finished.")
    total: int = Field(..., description="Denoising steps in total.")
    progress: float = Field(..., description="Percent done, 0-100.")


class JobPreview(BaseModel):
    type: Literal["preview"] = "preview"
    job_id: str = Field(..., description="Job the event is about.")
    step: int = Field(..., description="Step the preview shows.")
    image: str = Field(..., description="Latent preview as a data: URL (JPEG).")


class JobImage(BaseModel):
    type: Literal["image"] = "image"
    job_id: str = Field(..., description="Job the event is about.")
    result: JobResult = Field(..., description="The finished image.")


class JobStatusChange(BaseModel):
    type: Literal["status"] = "status"
    job_id: str = Field(..., description="Job the event is about.")
    status: JobStatus = Field(..., description="The job's new status.")
    terminal: bool = Field(..., description="True for the last event of the job.")
    job: Job = Field(..., description="The whole job after the change.")

    @classmethod
    def of(cls, job: Job) -> JobStatusChange:
        return cls(job_id=job.id, status=job.status, terminal=job.status in TERMINAL_STATUSES, job=job)


JobEvent = Annotated[JobProgress | JobPreview | JobImage | JobStatusChange, Field(discriminator="type")]


class Subscription:
    """One subscriber's bounded queue for one job; iterate it, then ``close`` (or use ``async with``)."""

    def __init__(self, hub: EventHub, job_id: str, maxsize: int, previews: bool = True) -> None:
        self.job_id = job_id
        self.previews = previews
        self.dropped = 0
        self._hub = hub
        self._maxsize = maxsize
        self._items: deque[JobEvent] = deque()
        self._ready = asyncio.Event()
        self._poked = False

    def _offer(self, event: JobEvent) -> None:
        if len(self._items) >= self._maxsize:
            stale = next((e for e in self._items if isinstance(e, JobProgress | JobPreview)), None)
            # With only status and image events queued, keep them all: a job has few of them.
            if stale is not None:
                self._items.remove(stale)
                self.dropped += 1
        self._items.append(event)
        self._ready.set()

    def _poke(self) -> None:
        self._poked = True
        self._ready.set()

    async def get(self, timeout: float | None = None) -> JobEvent | None:
        """Next event, or None after ``timeout`` seconds without one, or at once after a poke (the job
        changed on another gateway: look at the store)."""
        while not self._items:
            if self._poked:
                self._poked = False
                return None
            self._ready.clear()
            try:
                # asyncio.timeout, not wait_for: 3.11's wait_for can swallow the SSE task's cancellation.
                async with asyncio.timeout(timeout):
                    await self._ready.wait()
            except TimeoutError:
                return None
        return self._items.popleft()

    def close(self) -> None:
        self._hub._unsubscribe(self)

    async def __aenter__(self) -> Subscription:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()

    def __aiter__(self) -> AsyncIterator[JobEvent]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[JobEvent]:
        while True:
            event = await self.get()
            if event is not None:
                yield event


class EventHub:
    """In-process pub/sub keyed by job id; use from the event loop's thread only."""

    def __init__(self, maxsize: int = 256) -> None:
        self._maxsize = maxsize
        self._subs: dict[str, set[Subscription]] = {}
        # Also handed every published event: the fleet bus, which tells the other gateways (NOTIFY).
        self.relay: Callable[[JobEvent], None] | None = None

    def subscribe(self, job_id: str, *, previews: bool = True) -> Subscription:
        """``previews=False``: this subscriber does not need latent previews, so it does not make the
        dispatcher ask the worker for them (they cost worker time every step)."""
        sub = Subscription(self, job_id, self._maxsize, previews)
        self._subs.setdefault(job_id, set()).add(sub)
        return sub

    def _unsubscribe(self, sub: Subscription) -> None:
        subs = self._subs.get(sub.job_id)
        if subs is not None:
            subs.discard(sub)
            if not subs:
                del self._subs[sub.job_id]

    def subscribers(self, job_id: str) -> int:
        return len(self._subs.get(job_id, ()))

    def wants_previews(self, job_id: str) -> bool:
        return any(sub.previews for sub in self._subs.get(job_id, ()))

    def job_ids(self) -> list[str]:
        """Jobs someone here follows."""
        return list(self._subs)

    def publish(self, event: JobEvent) -> None:
        """An event of a job this gateway runs: to every subscriber here, and to the relay (other gateways)."""
        self.deliver(event)
        if self.relay is not None:
            try:
                self.relay(event)
            except Exception:
                log.exception("event relay failed on a %s event of job %s", event.type, event.job_id)

    def poke(self, job_id: str) -> None:
        """The job changed elsewhere: its followers read it from the store now."""
        for sub in list(self._subs.get(job_id, ())):
            sub._poke()

    def deliver(self, event: JobEvent) -> None:
        """Hand ``event`` to every subscriber of its job; never blocks, and one failing subscriber
        neither stops the others nor the publisher (the dispatcher, mid-call)."""
        for sub in list(self._subs.get(event.job_id, ())):
            try:
                sub._offer(event)
            except Exception:
                log.exception("event fan-out: a subscriber of job %s failed on a %s event", event.job_id, event.type)

    def publish_job(self, job: Job) -> None:
        """Publish a status change carrying the whole job."""
        self.publish(JobStatusChange.of(job))


class _JobSource(Protocol):
    def get(self, job_id: str) -> Job: ...


class _Tracker:
    """What a follower already told its client, so hub events and store polls never repeat themselves."""

    def __init__(self) -> None:
        self.status: JobStatus | None = None
        self.step = -1
        self.images: set[int] = set()

    def accept(self, event: JobEvent) -> bool:
        if isinstance(event, JobImage):
            if event.result.index in self.images:
                return False
            self.images.add(event.result.index)
        elif isinstance(event, JobProgress):
            # Store writes of progress are throttled, so a poll can read a step older than one the hub already
            # delivered: progress only moves forward within an attempt.
            if event.step <= self.step:
                return False
            self.step = event.step
        elif isinstance(event, JobStatusChange):
            if event.status == self.status and not event.terminal:
                return False
            self.status = event.status
            if event.status != JobStatus.running:
                self.step = -1  # a retried job starts again from step 1
        return True

    def from_snapshot(self, job: Job) -> list[JobEvent]:
        """Events for whatever changed between what was sent and ``job``. A new non-terminal status comes
        first (running, then its progress); a terminal one last (the images, then the end)."""
        events: list[JobEvent] = []
        if job.status == JobStatus.running and job.step > 0 and job.step > self.step:
            events.append(JobProgress(job_id=job.id, step=job.step, total=job.total_steps, progress=job.progress))
        events += [JobImage(job_id=job.id, result=r) for r in job.results if r.index not in self.images]
        if job.status != self.status:
            change = JobStatusChange.of(job)
            events = [*events, change] if change.terminal else [change, *events]
        return [e for e in events if self.accept(e)]


async def follow_job(
    hub: EventHub,
    job_id: str,
    load: Callable[[str], Job] | _JobSource,
    *,
    poll_interval_s: float = 1.0,
    previews: bool = True,
    snapshot: Job | None = None,
) -> AsyncGenerator[JobEvent, None]:
    """Every event of one job from now to its end, whichever gateway runs it.

    ``load`` is ``store.get`` (or the store): it is called in a thread for the initial snapshot and for
    each poll, and raises ``JobNotFound`` for an unknown id before anything is yielded. The first events
    describe the snapshot (a status event, images already made); the last one is the terminal status.
    ``snapshot``: the job as the caller just had it from the store (the answer of a submit), used instead
    of the first read. The caller got it without awaiting anything since, so this gateway cannot have
    published a newer event of the job; one relayed from another gateway in that instant is caught up by
    the next poll (the tracker never moves backwards).
    """
    get = load if callable(load) else load.get
    tracker = _Tracker()
    sub = hub.subscribe(job_id, previews=previews)
    try:
        # Subscribe before reading, so nothing published between the two is lost.
        job = snapshot if snapshot is not None else await asyncio.to_thread(get, job_id)
        for event in tracker.from_snapshot(job):
            yield event
        if job.status in TERMINAL_STATUSES:
            return
        while True:
            hub_event = await sub.get(timeout=poll_interval_s)
            if hub_event is None:
                job = await asyncio.to_thread(get, job_id)
                pending = tracker.from_snapshot(job)
            else:
                pending = [hub_event] if tracker.accept(hub_event) else []
            for event in pending:
                yield event
                if isinstance(event, JobStatusChange) and event.terminal:
                    return
    finally:
        try:
            sub.close()
        except Exception:
            log.exception("event fan-out: closing a subscription of job %s failed", job_id)


class QueueListener:
    """Calls ``on_notify`` whenever a store on the same PostgreSQL database announces a claimable job on
    ``channel`` with ``payload`` (its schema). Runs until cancelled; reconnects with backoff after a
    connection loss, and wakes the dispatcher after each reconnect in case it missed something."""

    def __init__(self, url: str, channel: str, payload: str, on_notify: Callable[[], None]) -> None:
        self._url = url
        self._channel = channel
        self._payload = payload
        self._on_notify = on_notify
        # Shows in pg_stat_activity, so operators (and tests) can see who listens for which store.
        self.application_name = f"ablerefusal-listen {payload or 'public'}"[:63]

    async def run(self) -> None:
        delay = LISTEN_RETRY_S[0]
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(
                    self._url, autocommit=True, application_name=self.application_name
                ) as conn:
                    await conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(self._channel)))
                    delay = LISTEN_RETRY_S[0]
                    self._on_notify()
                    async for note in conn.notifies():
                        if note.payload == self._payload:
                            self._on_notify()
            except psycopg.Error as exc:
                log.warning("job notifications: %s; reconnecting in %.1fs (polling meanwhile)", exc, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, LISTEN_RETRY_S[1])
