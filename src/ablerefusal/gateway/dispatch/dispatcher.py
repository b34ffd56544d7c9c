"""The dispatcher: claims queued jobs for idle workers and runs them as protocol v1 generation calls.

One asyncio service per gateway, started by the app (``await dispatcher.start()``, ``await
dispatcher.stop()``). For every ready worker with a free slot (``workers.max_concurrent`` calls each) it
claims jobs from the store — coalesced compatible jobs when ``queue.coalesce``, after waiting
``queue.gather_window_ms`` so a burst lands in one batch — and runs each claim as one ``Call``
(``call.py``), which follows the worker's event stream to the jobs' ends.

When there is nothing to do it sleeps: a submit on this gateway (``notify``), a submit on another gateway
sharing the PostgreSQL store (``LISTEN/NOTIFY``, ``events.QueueListener``), a call ending, a worker
becoming ready, or the moment a retried job's backoff ends wakes it; otherwise it looks at the store
every ``queue.idle_poll_s``. Every few seconds it also requeues jobs whose lease lapsed (a dead gateway)
and times out queued jobs past their deadline.

State changes go through the store only; all store calls run in threads.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from typing import Any

from ablerefusal.gateway.dispatch.call import Call
from ablerefusal.gateway.dispatch.slots import DispatchWorker, WorkerSlot
from ablerefusal.gateway.events import EventHub, QueueListener
from ablerefusal.gateway.jobs import ClaimedJob, JobStore
from ablerefusal.gateway.schemas import Job, JobStatus
from ablerefusal.gateway.settings import Settings
from ablerefusal.gateway.storage import ObjectStore
from ablerefusal.gateway.uploads import UploadService, make_upload_service

log = logging.getLogger("ablerefusal.gateway.dispatch")


def default_model(settings: Settings, workers: Iterable[DispatchWorker]) -> str | None:
    """The model for a job that names none: the configured default, else the first id (sorted) that the
    given workers offer. The API shows the same choice (``/api/v1/models``'s ``default``)."""
    if settings.inference.default_model:
        return settings.inference.default_model
    ids = sorted({m.id for w in workers for m in w.models})
    return ids[0] if ids else None


class Dispatcher:
    """Runs queued jobs on workers; see the module docstring. No globals: everything comes in here."""

    def __init__(
        self,
        store: JobStore,
        settings: Settings,
        outputs: ObjectStore,
        events: EventHub,
        workers: Iterable[DispatchWorker] | Callable[[], Iterable[DispatchWorker]],
        *,
        on_finished: Callable[[Job], None] | None = None,
        on_worker_lost: Callable[[DispatchWorker, str], None] | None = None,
        worker_changes: Callable[[float], Awaitable[None]] | None = None,
        uploads: UploadService | None = None,
        caller: str | None = None,
    ) -> None:
        """``workers`` is a live collection (or a function returning one) read on every round, so the
        pool may add and remove handles; ``on_finished`` is called with every job that reached a terminal
        state here (for metrics); ``on_worker_lost`` with a worker that broke or could not be reached
        during a call (the pool takes it out of rotation); ``worker_changes(timeout)`` returns when some
        worker's readiness changed (the pool's ``wait_changed``), which wakes the dispatcher; ``caller`` is
        the gateway's id, sent to workers with every call."""
        self.store = store
        self.settings = settings
        self.outputs = outputs
        # Where jobs' input images are read from when a call is built (the settings' store by default).
        self.uploads = uploads if uploads is not None else make_upload_service(settings)
        self.events = events
        self._workers = workers
        self._on_finished = on_finished
        self._on_worker_lost = on_worker_lost
        self._worker_changes = worker_changes
        self._caller = caller
        # Where a cancel of a job running on another gateway goes (the fleet bus's NOTIFY); None: the
        # other gateway finds the request in the store.
        self.relay_cancel: Callable[[str], None] | None = None
        self.slots: dict[str, WorkerSlot] = {}
        # Workers a claim is being made for now: with the calls in flight, what ``in_use`` reports.
        self._claiming: dict[str, int] = {}
        self._calls: dict[str, Call] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        # Small follow-up tasks (cancels found by progress writes, client closes) kept referenced.
        self._tasks_aux: set[asyncio.Future[None]] = set()
        self._wake = asyncio.Event()
        self._woken = False
        # Set by notify(): a job was just submitted here, so the next round need not ask the store first.
        self._submitted = False
        # When the earliest queued job becomes eligible (a retry's backoff), if that is in the future.
        self._next_eligible: float | None = None
        # What the last look at the store found: no queued job can run before this store-clock time (inf:
        # none queued); None: unknown. A round woken only by a call ending here (``slot_freed``) trusts it
        # instead of asking the store again; anything that may bring news of the queue (a submit, a
        # NOTIFY, a job put back, a worker's change, the idle poll) forgets it. ``_news`` counts those, so
        # a look that raced with news is not trusted.
        self._quiet_until: float | None = None
        self._news = 0
        self._background: list[asyncio.Task[None]] = []
        self._stopping = False

    # -- lifecycle -----------------------------------------------------------------------------------

    async def start(self) -> None:
        """Requeue what a dead gateway left running, then start dispatching."""
        try:
            await self._maintain()
        except Exception:
            # The store may come up after the gateway; the loop retries every round and /ready tells.
            log.exception("job store housekeeping failed at start")
        self._background.append(asyncio.create_task(self._run(), name="dispatcher"))
        if self._worker_changes is not None:
            self._background.append(asyncio.create_task(self._follow_workers(), name="dispatcher-workers"))
        channel, url = self.store.notify_channel, self.store.listen_url
        if channel is not None and url is not None:
            listener = QueueListener(url, channel, self.store.notify_payload, self.wake)
            self._background.append(asyncio.create_task(listener.run(), name="dispatcher-listen"))

    async def stop(self) -> None:
        """Stop dispatching; calls in flight are cancelled on their workers and their jobs requeued."""
        self._stopping = True
        self._wake.set()
        for task in self._background:
            task.cancel()
        for task in self._background:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for call_task in list(self._tasks):
            call_task.cancel()
        await asyncio.gather(*self._tasks, *self._tasks_aux, return_exceptions=True)
        for slot in self.slots.values():
            for client in slot.clients():
                await client.aclose()

    def notify(self) -> None:
        """Wake the dispatcher now (after a submit here) instead of at its next poll."""
        self._submitted = True
        self.wake()

    def wake(self) -> None:
        """Wake the dispatcher for a new look at the store and the workers."""
        self._news += 1
        self._quiet_until = None
        self._woken = True
        self._wake.set()

    def slot_freed(self) -> None:
        """A call here no longer needs its worker: give the worker its next call. Brings no news of the
        queue, so when the store last showed nothing to run, the round asks it nothing (a job put back by
        the call wakes with ``wake``)."""
        self._woken = True
        self._wake.set()

    def spawn(self, work: Coroutine[Any, Any, None]) -> None:
        """Run a small follow-up task of a call, kept referenced until it ends and awaited at stop."""
        task = asyncio.ensure_future(work)
        self._tasks_aux.add(task)
        task.add_done_callback(self._tasks_aux.discard)

    def worker_lost(self, worker: DispatchWorker, reason: str) -> None:
        if self._on_worker_lost is not None:
            self._on_worker_lost(worker, reason)

    async def cancel(self, job_id: str) -> Job:
        """Cancel a job by request (queued → cancelled; running → stopped on its worker within one step
        if it runs here, else by the gateway running it). Raises ``JobNotFound``."""
        job = await asyncio.to_thread(self.store.cancel, job_id)
        if job.status == JobStatus.running:
            call = self._calls.get(job_id)
            if call is not None:
                await call.stop_item(job_id, JobStatus.cancelled)
                job = await asyncio.to_thread(self.store.get, job_id)
            elif self.relay_cancel is not None:
                self.relay_cancel(job_id)
        elif job.status == JobStatus.cancelled:
            self.publish_final(job)
        return job

    def stop_if_here(self, job_id: str) -> None:
        """Another gateway recorded a cancel request for ``job_id``: stop it now if it runs here (the
        call's watcher would find the request in the store at its next tick anyway)."""
        call = self._calls.get(job_id)
        if call is not None:
            self.spawn(call.stop_item(job_id, JobStatus.cancelled))

    def in_use(self, worker_id: str) -> bool:
        """Whether a call or a claim of this dispatcher is on the worker (the pool hands back only unused ones)."""
        slot = self.slots.get(worker_id)
        return self._claiming.get(worker_id, 0) > 0 or (slot is not None and slot.inflight > 0)

    def publish_final(self, job: Job) -> None:
        self.events.publish_job(job)
        if self._on_finished is not None:
            try:
                self._on_finished(job)
            except Exception:
                # Metrics must never stop a job's end from being handled.
                log.exception("on_finished failed for job %s", job.id)

    # -- main loop -----------------------------------------------------------------------------------

    async def _run(self) -> None:
        q = self.settings.queue
        maintain_every = max(q.poll_interval_s, min(2.0, q.lease_s / 3))
        next_maintenance = time.monotonic() + maintain_every
        look_at = 0.0  # monotonic time of the next look at the queue without a wake-up: now
        # The flag, not only the task's cancellation, ends the loop: Python 3.11's wait_for can swallow a
        # cancel that lands as the wake event fires.
        while not self._stopping:
            # Cleared before the round, so a wake-up during it leads to one more round, not a lost wake.
            self._wake.clear()
            woken, self._woken = self._woken, False
            try:
                if time.monotonic() >= next_maintenance:
                    next_maintenance = time.monotonic() + maintain_every
                    # Jobs back in the queue (a dead gateway's) can run now.
                    woken = await self._maintain() or woken
                polled = time.monotonic() >= look_at
                if woken or polled:
                    look_at = time.monotonic() + q.idle_poll_s
                    await self._fill_workers(trust_quiet=not polled)
            except Exception:
                # A database hiccup must not end dispatching; the next round tries again.
                log.exception("dispatch round failed")
            look_at = min(look_at, self._resume_at())
            until = min(next_maintenance, look_at) - time.monotonic()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(max(until, q.poll_interval_s)):
                    await self._wake.wait()

    def _resume_at(self) -> float:
        """The monotonic time at which something this dispatcher waits for by itself happens: a retried
        job's backoff ends, or a paused worker may be called again (inf: nothing)."""
        now = time.monotonic()
        times = [s.paused_until for s in self.slots.values() if s.paused_until > now]
        if self._next_eligible is not None:
            times.append(now + max(0.0, self._next_eligible - time.time()))
        return min(times, default=float("inf"))

    async def _follow_workers(self) -> None:
        assert self._worker_changes is not None
        while True:
            await self._worker_changes(self.settings.queue.idle_poll_s)
            self.wake()

    async def _maintain(self) -> bool:
        """Housekeeping; True when it put jobs back in the queue."""
        requeued = False
        for job_id in await asyncio.to_thread(self.store.requeue_expired_leases):
            job = await asyncio.to_thread(self.store.get, job_id)
            log.warning("job %s: lease lapsed, now %s", job_id, job.status)
            if job.status == JobStatus.queued:
                requeued = True
                self._quiet_until = None
                self.events.publish_job(job)
            else:
                self.publish_final(job)
        for job_id in await asyncio.to_thread(self.store.expire_deadlines):
            self.publish_final(await asyncio.to_thread(self.store.get, job_id))
        return requeued

    def _workers_now(self) -> list[DispatchWorker]:
        return list(self._workers() if callable(self._workers) else self._workers)

    def _slot(self, worker: DispatchWorker) -> WorkerSlot:
        slot = self.slots.get(worker.id)
        if slot is None:
            slot = self.slots[worker.id] = WorkerSlot(worker.id, caller=self._caller)
        return slot

    def _free(self, worker: DispatchWorker) -> int:
        w = self.settings.workers
        return self._slot(worker).free(worker, w.max_concurrent, w.probe_interval_s)

    async def _fill_workers(self, *, trust_quiet: bool = True) -> None:
        """Claim jobs for every worker with a free slot. ``trust_quiet``: a store that showed no job to run
        and brought no news since is not asked again (False on the idle poll, which must look)."""
        idle = [w for w in self._workers_now() if self._free(w) > 0]
        if not idle:
            # A call ending or a worker becoming ready wakes us; a backoff ending alone changes nothing.
            self._next_eligible = None
            return
        submitted, self._submitted = self._submitted, False
        if not submitted:
            quiet = self._quiet_until if trust_quiet else None
            if quiet is not None and quiet > time.time():
                # Only a call ended here since the last look: the queue has nothing to run yet. This
                # saves a store read per job at the moment its images are being written.
                self._next_eligible = None if math.isinf(quiet) else quiet
                return
            self._next_eligible = None
            news = self._news
            next_at = await asyncio.to_thread(self.store.next_eligible_at)
            if next_at is None or next_at > time.time():
                if news == self._news:
                    self._quiet_until = math.inf if next_at is None else next_at
                self._next_eligible = next_at
                return
        self._quiet_until = None
        q = self.settings.queue
        if q.coalesce and q.gather_window_ms > 0:
            await asyncio.sleep(q.gather_window_ms / 1000)
        # Workers with a model loaded first, so they get the jobs for it.
        idle.sort(key=lambda w: self._slot(w).loaded_model is None)
        ready = self._workers_now()
        for worker in idle:
            for _ in range(self._free(worker)):
                # The pool may have taken the worker away meanwhile (its lease handed back or lapsing).
                if worker.id not in {w.id for w in self._workers_now()}:
                    break
                jobs = await self._claim(worker)
                if not jobs:
                    return
                self._launch(worker, jobs, ready)

    async def _claim(self, worker: DispatchWorker) -> list[ClaimedJob]:
        self._claiming[worker.id] = self._claiming.get(worker.id, 0) + 1
        try:
            return await self._claim_for(worker)
        finally:
            self._claiming[worker.id] -= 1

    async def _claim_for(self, worker: DispatchWorker) -> list[ClaimedJob]:
        claim = asyncio.ensure_future(
            asyncio.to_thread(
                self.store.claim,
                worker.id,
                loaded_model=self._slot(worker).loaded_model or self._info_model(worker),
                max_images=self._max_images(worker),
                coalesce=self.settings.queue.coalesce,
                # Older workers take one cfg_scale per call: mixed scales go to them in separate calls.
                per_item_cfg=worker.info is not None and worker.info.per_item_cfg,
            )
        )
        try:
            return await asyncio.shield(claim)
        except asyncio.CancelledError:
            # Stopping mid-claim: the thread still commits, so hand those jobs straight back rather
            # than leave them running until their lease lapses.
            for job in await claim:
                await asyncio.to_thread(self.store.release, job.id, attempt=job.attempt)
            raise

    @staticmethod
    def _info_model(worker: DispatchWorker) -> str | None:
        return worker.info.loaded_models[0] if worker.info and worker.info.loaded_models else None

    def _max_images(self, worker: DispatchWorker) -> int:
        limit = self.settings.inference.max_batch_size
        if worker.info is not None:
            limit = min(limit, worker.info.max_batch_images)
        return max(1, limit)

    def _launch(self, worker: DispatchWorker, jobs: list[ClaimedJob], ready: list[DispatchWorker]) -> None:
        slot = self._slot(worker)
        client, retired = slot.acquire(worker)
        if retired is not None:
            # The worker's URL changed (a restarted local worker): its old client is of no more use.
            self.spawn(retired.aclose())
        call = Call(self, worker, slot, client, jobs)
        for job in jobs:
            self._calls[job.id] = call
        # A job accepted before any worker was ready names no model: it gets the default now.
        model = jobs[0].request.model or default_model(self.settings, ready)
        task = asyncio.create_task(call.run(model), name=f"call-{call.call_id}")
        self._tasks.add(task)

        def _done(t: asyncio.Task[None]) -> None:
            self._tasks.discard(t)
            call.free_slot()
            if slot.release(client):
                self.spawn(client.aclose())
            for job in jobs:
                if self._calls.get(job.id) is call:
                    del self._calls[job.id]
            if not t.cancelled() and t.exception() is not None:
                log.error("call %s crashed", call.call_id, exc_info=t.exception())
            # Jobs the call put back in the queue woke the dispatcher as news (Call._publish).
            self.slot_freed()

        task.add_done_callback(_done)
