"""The dispatcher: claims queued jobs for idle workers and runs them as protocol v1 generation calls.

One asyncio service per gateway, started by the app (``await dispatcher.start()``, ``await
dispatcher.stop()``). For every ready worker with a free slot (``workers.max_concurrent`` calls each) it
claims jobs from the store — coalesced compatible jobs when ``queue.coalesce``, after waiting
``queue.gather_window_ms`` so a burst lands in one batch — sends one multi-item ``GenerateCall`` and
follows its event stream:

* ``progress`` → SSE subscribers at every step, and the store (step/total, preview) at most every
  ``PROGRESS_WRITE_S`` without holding up the stream; a cancel taken by this gateway stops the job's item
  on the worker at once (within one step), one taken by another gateway within a watcher tick;
* ``image`` → PNG written atomically to ``<output_dir>/<job_id>/<index>.png``, then recorded, while the
  stream is read on (a job that ends first waits for its images);
* ``done`` → once the images are recorded, each job of the call completed in one transaction.

While a call runs, a watcher renews its leases, stops items whose deadline passed (→ timed_out with the
images they have) or whose cancel was requested (→ cancelled); the other items continue. Retryable
failures (worker unreachable, stream cut, out_of_memory) requeue with backoff — after out_of_memory the
next attempt asks for the worker's memory-saving options — and the rest fail with the worker's error.
Every few seconds it also requeues jobs whose lease lapsed (a dead gateway) and times out queued jobs
past their deadline.

State changes go through the store only; all store calls run in threads.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import os
import time
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Protocol

from ablerefusal.gateway.events import EventHub, JobImage, JobPreview, JobProgress
from ablerefusal.gateway.jobs import ClaimedJob, JobStore
from ablerefusal.gateway.schemas import TERMINAL_STATUSES, Job, JobError, JobResult, JobStatus
from ablerefusal.gateway.settings import Settings
from ablerefusal.gateway.workers.client import WorkerClient, WorkerError, WorkerUnreachable, error_from_event
from ablerefusal.protocol import (
    SEED_MAX,
    DoneEvent,
    ErrorCode,
    ErrorEvent,
    GenerateCall,
    GeneratedEvent,
    GenerateItem,
    ImageEvent,
    ItemCancelledEvent,
    MemoryOptions,
    ProgressEvent,
    StartedEvent,
    WorkerEvent,
    WorkerInfo,
)

log = logging.getLogger(__name__)

# Longest wait for a worker to end a call after we cancelled all of it; then the slot is freed anyway.
DRAIN_TIMEOUT_S = 30.0
# How long a worker that answered "busy" (another gateway's call) is left alone.
BUSY_PAUSE_S = 0.5
# Least time between two progress writes of one call to the store.
PROGRESS_WRITE_S = 0.2
MEMORY_SAVING = MemoryOptions(attention_slicing=True, vae_tiling=True, cpu_offload=True)


class DispatchWorker(Protocol):
    """What the dispatcher reads of a worker; the pool's ``WorkerHandle`` has these attributes."""

    @property
    def id(self) -> str: ...

    @property
    def url(self) -> str: ...

    @property
    def ready(self) -> bool: ...

    @property
    def busy(self) -> bool: ...

    @property
    def info(self) -> WorkerInfo | None: ...


def item_seeds(seed: int, batch_size: int) -> list[int]:
    """Image i of a job uses seed + i (wrapping past 2**32-1, which the protocol does not accept)."""
    return [(seed + i) % (SEED_MAX + 1) for i in range(batch_size)]


def write_png_atomically(output_dir: Path, job_id: str, index: int, png: bytes) -> str:
    """Write ``<output_dir>/<job_id>/<index>.png`` via temp file + rename (a retry overwrites, a reader
    never sees half a file); returns the path relative to ``output_dir``."""
    folder = output_dir / job_id
    folder.mkdir(parents=True, exist_ok=True)
    final = folder / f"{index}.png"
    tmp = folder / f".{index}.png.{uuid.uuid4().hex}.tmp"
    try:
        with open(tmp, "wb") as fh:
            fh.write(png)
        os.replace(tmp, final)
    finally:
        tmp.unlink(missing_ok=True)
    return f"{job_id}/{index}.png"


def _to_job_error(exc: WorkerError) -> JobError:
    return JobError(code=exc.code, message=exc.message)


class Dispatcher:
    """Runs queued jobs on workers; see the module docstring. No globals: everything comes in here."""

    def __init__(
        self,
        store: JobStore,
        settings: Settings,
        output_dir: Path,
        events: EventHub,
        workers: Iterable[DispatchWorker] | Callable[[], Iterable[DispatchWorker]],
        *,
        on_finished: Callable[[Job], None] | None = None,
    ) -> None:
        """``workers`` is a live collection (or a function returning one) read on every round, so the
        pool may add and remove handles; ``on_finished`` is called with every job that reached a terminal
        state here (for metrics)."""
        self.store = store
        self.settings = settings
        self.output_dir = Path(output_dir)
        self.events = events
        self._workers = workers
        self._on_finished = on_finished
        self._clients: dict[str, WorkerClient] = {}
        self._inflight: dict[str, int] = {}
        self._loaded: dict[str, str] = {}
        self._paused_until: dict[str, float] = {}
        self._last_call_end: dict[str, float] = {}
        self._calls: dict[str, _Call] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        # Small follow-up tasks (cancels found by progress writes) kept referenced until they finish.
        self._tasks_aux: set[asyncio.Future[None]] = set()
        self._wake = asyncio.Event()
        # Set by notify(): a job was just submitted here, so the next round need not ask the store first.
        self._submitted = False
        self._loop_task: asyncio.Task[None] | None = None
        self._stopping = False

    # -- lifecycle -----------------------------------------------------------------------------------

    async def start(self) -> None:
        """Requeue what a dead gateway left running, then start dispatching."""
        try:
            await self._maintain()
        except Exception:
            # The store may come up after the gateway; the loop retries every round and /ready tells.
            log.exception("job store housekeeping failed at start")
        self._loop_task = asyncio.create_task(self._run(), name="dispatcher")

    async def stop(self) -> None:
        """Stop dispatching; calls in flight are cancelled on their workers and their jobs requeued."""
        self._stopping = True
        self._wake.set()
        if self._loop_task is not None:
            self._loop_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._loop_task
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, *self._tasks_aux, return_exceptions=True)
        for client in self._clients.values():
            await client.aclose()
        self._clients.clear()

    def notify(self) -> None:
        """Wake the dispatcher now (after a submit) instead of at its next poll."""
        self._submitted = True
        self._wake.set()

    async def cancel(self, job_id: str) -> Job:
        """Cancel a job by request (queued → cancelled; running → stopped on its worker within one step
        if it runs here, else by the gateway running it). Raises ``JobNotFound``."""
        job = await asyncio.to_thread(self.store.cancel, job_id)
        if job.status == JobStatus.running:
            call = self._calls.get(job_id)
            if call is not None:
                await call.stop_item(job_id, JobStatus.cancelled)
                job = await asyncio.to_thread(self.store.get, job_id)
        elif job.status == JobStatus.cancelled:
            self.publish_final(job)
        return job

    def publish_final(self, job: Job) -> None:
        self.events.publish_job(job)
        if self._on_finished is not None:
            self._on_finished(job)

    # -- main loop -----------------------------------------------------------------------------------

    async def _run(self) -> None:
        q = self.settings.queue
        maintain_every = max(q.poll_interval_s, min(2.0, q.lease_s / 3))
        next_maintenance = time.monotonic() + maintain_every
        # The flag, not only the task's cancellation, ends the loop: Python 3.11's wait_for can swallow a
        # cancel that lands as the wake event fires.
        while not self._stopping:
            try:
                if time.monotonic() >= next_maintenance:
                    next_maintenance = time.monotonic() + maintain_every
                    await self._maintain()
                await self._fill_workers()
            except Exception:
                # A database hiccup must not end dispatching; the next round tries again.
                log.exception("dispatch round failed")
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(q.poll_interval_s):
                    await self._wake.wait()

    async def _maintain(self) -> None:
        for job_id in await asyncio.to_thread(self.store.requeue_expired_leases):
            job = await asyncio.to_thread(self.store.get, job_id)
            log.warning("job %s: lease lapsed, now %s", job_id, job.status)
            if job.status == JobStatus.queued:
                self.events.publish_job(job)
            else:
                self.publish_final(job)
        for job_id in await asyncio.to_thread(self.store.expire_deadlines):
            self.publish_final(await asyncio.to_thread(self.store.get, job_id))

    def _workers_now(self) -> list[DispatchWorker]:
        return list(self._workers() if callable(self._workers) else self._workers)

    def _free_slots(self, worker: DispatchWorker) -> int:
        if not worker.ready or time.monotonic() < self._paused_until.get(worker.id, 0.0):
            return 0
        inflight = self._inflight.get(worker.id, 0)
        # The pool's busy flag is a probe result: it only means "someone else's call" when it was
        # taken after our last call on that worker ended.
        probe_age_ok = (
            time.monotonic() - self._last_call_end.get(worker.id, 0.0) > self.settings.workers.probe_interval_s
        )
        if worker.busy and inflight == 0 and probe_age_ok:
            return 0
        return max(0, self.settings.workers.max_concurrent - inflight)

    async def _fill_workers(self) -> None:
        idle = [w for w in self._workers_now() if self._free_slots(w) > 0]
        if not idle:
            return
        submitted, self._submitted = self._submitted, False
        if not submitted and not await asyncio.to_thread(self.store.has_claimable):
            return
        q = self.settings.queue
        if q.coalesce and q.gather_window_ms > 0:
            await asyncio.sleep(q.gather_window_ms / 1000)
        # Workers with a model loaded first, so they get the jobs for it.
        idle.sort(key=lambda w: w.id not in self._loaded)
        for worker in idle:
            for _ in range(self._free_slots(worker)):
                jobs = await self._claim(worker)
                if not jobs:
                    return
                self._launch(worker, jobs)

    async def _claim(self, worker: DispatchWorker) -> list[ClaimedJob]:
        claim = asyncio.ensure_future(
            asyncio.to_thread(
                self.store.claim,
                worker.id,
                loaded_model=self._loaded.get(worker.id) or self._info_model(worker),
                max_images=self._max_images(worker),
                coalesce=self.settings.queue.coalesce,
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

    def _client(self, worker: DispatchWorker) -> WorkerClient:
        client = self._clients.get(worker.id)
        if client is None or client.base_url != worker.url.rstrip("/"):
            client = self._clients[worker.id] = WorkerClient(worker.url)
        return client

    def _launch(self, worker: DispatchWorker, jobs: list[ClaimedJob]) -> None:
        call = _Call(self, worker, self._client(worker), jobs)
        self._inflight[worker.id] = self._inflight.get(worker.id, 0) + 1
        for job in jobs:
            self._calls[job.id] = call
        task = asyncio.create_task(call.run(), name=f"call-{call.call_id}")
        self._tasks.add(task)

        def _done(t: asyncio.Task[None]) -> None:
            self._tasks.discard(t)
            call.free_slot()
            for job in jobs:
                if self._calls.get(job.id) is call:
                    del self._calls[job.id]
            if not t.cancelled() and t.exception() is not None:
                log.error("call %s crashed", call.call_id, exc_info=t.exception())
            self._wake.set()

        task.add_done_callback(_done)

    def _model_for(self, worker: DispatchWorker, job: ClaimedJob) -> str | None:
        return (
            job.request.model
            or self.settings.inference.default_model
            or self._loaded.get(worker.id)
            or self._info_model(worker)
        )


class _Call:
    """One generation call on one worker: its live jobs, the images seen, and the stream handling."""

    def __init__(self, d: Dispatcher, worker: DispatchWorker, client: WorkerClient, jobs: list[ClaimedJob]) -> None:
        self.d = d
        self.store = d.store
        self.worker = worker
        self.client = client
        self.call_id = uuid.uuid4().hex
        self.live: dict[str, ClaimedJob] = {j.id: j for j in jobs}
        self.jobs = list(jobs)
        self.images: dict[str, set[int]] = {j.id: set() for j in jobs}
        self.all_stopped_at: float | None = None
        self._lock = asyncio.Lock()
        self._slot_freed = False
        self._progress_write: asyncio.Future[set[str]] | None = None
        # Images being written (file, then row) while the stream goes on; `done` waits for them.
        self._saves: list[asyncio.Future[None]] = []
        # The first store write waits PROGRESS_WRITE_S too: a job shorter than that needs none (this
        # gateway's subscribers get every step from the hub).
        self._progress_written_at = time.monotonic()

    def free_slot(self) -> None:
        """The worker is done with this call: let the dispatcher send it the next one. Called as soon as
        the stream ends, before the jobs' final writes, so the worker does not idle while they happen."""
        if self._slot_freed:
            return
        self._slot_freed = True
        self.d._inflight[self.worker.id] -= 1
        self.d._last_call_end[self.worker.id] = time.monotonic()
        self.d._wake.set()

    # -- building ------------------------------------------------------------------------------------

    def build(self, model: str) -> GenerateCall:
        head = self.jobs[0].request
        watched = any(self.d.events.wants_previews(j.id) for j in self.jobs)
        return GenerateCall(
            call_id=self.call_id,
            model=model,
            width=head.width,
            height=head.height,
            steps=head.steps,
            cfg_scale=head.cfg_scale,
            sampler=head.sampler,
            items=[
                GenerateItem(
                    job_id=j.id,
                    prompt=j.request.prompt,
                    negative_prompt=j.request.negative_prompt,
                    seeds=item_seeds(j.request.seed, j.request.batch_size),
                )
                for j in self.jobs
            ],
            # Previews cost worker time: only when someone watches the job live and wants them.
            previews=watched,
            memory=MEMORY_SAVING if any(j.memory_saving for j in self.jobs) else None,
        )

    # -- running -------------------------------------------------------------------------------------

    async def run(self) -> None:
        model = self.d._model_for(self.worker, self.jobs[0])
        if model is None:
            err = WorkerError(ErrorCode.model_not_found, "no model requested and none configured", retryable=False)
            await self._fail_live(err)
            return
        stream = asyncio.create_task(self._consume(self.build(model), model))
        watcher = asyncio.create_task(self._watch(stream))
        # The claim's own snapshots: announcing "running" costs no store read.
        for claimed in self.jobs:
            if claimed.job is not None:
                self.d.events.publish_job(claimed.job)
        try:
            await stream
        except asyncio.CancelledError:
            if not stream.cancelled() or self.live:
                # Gateway shutdown: stop the worker and put the jobs back, not counting the attempt.
                stream.cancel()
                await asyncio.shield(self._give_back())
                raise
        except WorkerError as exc:
            if exc.code == ErrorCode.busy and not any(self.images.values()):
                self.d._paused_until[self.worker.id] = time.monotonic() + BUSY_PAUSE_S
                await self._give_back()
            else:
                await self._fail_live(exc)
        except Exception as exc:
            # Our own bug or a store outage mid-call: retry the jobs elsewhere rather than leave them
            # running until their lease lapses (if the store is down, the lease path still catches them).
            log.exception("call %s on %s failed in the gateway", self.call_id, self.worker.id)
            stream.cancel()
            await self._fail_live(WorkerError(ErrorCode.internal, f"gateway error: {exc!r}", retryable=True))
        finally:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
            # A call that ended without `done` may still be writing images; their rows are guarded by
            # the attempt, so whatever happened to the jobs meanwhile, only the outcome needs logging.
            try:
                await asyncio.shield(self._saved())
            except Exception:
                log.exception("call %s: writing an image failed", self.call_id)

    async def _give_back(self) -> None:
        if self.live:
            with contextlib.suppress(WorkerError):
                await self.client.cancel(self.call_id)
        for job in list(self.live.values()):
            released = await asyncio.to_thread(self.store.release, job.id, attempt=job.attempt)
            self.live.pop(job.id, None)
            if released is not None:
                self._publish(released)

    async def _consume(self, call: GenerateCall, model: str) -> None:
        async for event in self.client.generate(call):
            # `generated`: the device is free while this call's images are still being encoded, so the
            # next call goes out now and the GPU does not wait for PNGs.
            call_over = isinstance(event, ErrorEvent) and event.job_id is None
            if call_over or isinstance(event, GeneratedEvent | DoneEvent):
                self.free_slot()
            await self._on_event(event, model)

    async def _on_event(self, event: WorkerEvent, model: str) -> None:
        if isinstance(event, StartedEvent):
            self.d._loaded[self.worker.id] = model
        elif isinstance(event, ProgressEvent):
            await self._on_progress(event)
        elif isinstance(event, ImageEvent):
            await self._on_image(event)
        elif isinstance(event, ItemCancelledEvent):
            if event.job_id in self.live:
                # The worker dropped an item we did not ask it to drop.
                await self._end(
                    event.job_id,
                    WorkerError(ErrorCode.cancelled, "the worker dropped the item", retryable=True),
                )
        elif isinstance(event, ErrorEvent):
            await self._on_error(event)
        elif isinstance(event, DoneEvent):
            await self._on_done()

    async def _on_progress(self, event: ProgressEvent) -> None:
        claims = list(self.live.values())
        if not claims:
            return
        previews: dict[str, str] = {}
        if event.preview:
            target = next((j for j in event.job_ids if j in self.live), claims[0].id)
            previews[target] = "data:image/jpeg;base64," + event.preview
        pct = 100.0 * event.step / event.total if event.total else 0.0
        for job in claims:
            self.d.events.publish(JobProgress(job_id=job.id, step=event.step, total=event.total, progress=pct))
        for job_id, url in previews.items():
            self.d.events.publish(JobPreview(job_id=job_id, step=event.step, image=url))
        # The store gets progress at most every PROGRESS_WRITE_S and never holds up the stream: a step
        # can be shorter than a database write. Subscribers of this gateway already have every step;
        # cancels requested here act at once (Dispatcher.cancel), those from other gateways via the
        # answer of this write or the watcher.
        now = time.monotonic()
        busy = self._progress_write is not None and not self._progress_write.done()
        if busy or now - self._progress_written_at < PROGRESS_WRITE_S:
            return
        self._progress_written_at = now
        write = asyncio.ensure_future(
            asyncio.to_thread(self.store.record_progress, claims, event.step, event.total, previews)
        )
        self._progress_write = write
        write.add_done_callback(self._after_progress_write)

    def _after_progress_write(self, write: asyncio.Future[set[str]]) -> None:
        if write.cancelled() or write.exception() is not None:
            return
        for job_id in write.result():
            task = asyncio.ensure_future(self.stop_item(job_id, JobStatus.cancelled))
            self.d._tasks_aux.add(task)
            task.add_done_callback(self.d._tasks_aux.discard)

    async def _on_image(self, event: ImageEvent) -> None:
        job = self.live.get(event.job_id)
        if job is None:
            return  # stopped meanwhile: its images are not wanted
        # Not awaited here: the next event (often `done`) is read while the file and row are written.
        self._saves.append(asyncio.ensure_future(self._save(event, job.attempt)))

    async def _save(self, event: ImageEvent, attempt: int) -> None:
        result = await asyncio.to_thread(self._save_image, event, attempt)
        if result is None:
            return
        self.images[event.job_id].add(event.index)
        self.d.events.publish(JobImage(job_id=event.job_id, result=result))

    async def _settle(self) -> None:
        """Let the image writes in flight end first, so a job that ends now keeps the images it made
        (a failure is raised later, by ``_saved``)."""
        if self._saves:
            await asyncio.gather(*self._saves, return_exceptions=True)

    async def _saved(self) -> None:
        """Wait for the image writes started so far; the first failure is raised (after all ended)."""
        saves, self._saves = self._saves, []
        outcomes = await asyncio.gather(*saves, return_exceptions=True)
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                raise outcome

    def _save_image(self, event: ImageEvent, attempt: int) -> JobResult | None:
        # File first, then the row: a crash in between leaves a file a retry overwrites, never a result
        # without its file.
        rel = write_png_atomically(self.d.output_dir, event.job_id, event.index, base64.b64decode(event.png_base64))
        result = self.store.add_result(
            event.job_id, event.index, rel, event.seed, event.metadata, event.infotext, attempt=attempt
        )
        if result is None:
            self._drop_orphan(event.job_id, event.index, rel)
        return result

    def _drop_orphan(self, job_id: str, index: int, rel: str) -> None:
        # The job ended (cancel, deadline) while the file was written: leave no file without a result.
        # A job taken over by another gateway may still write this very path, so only a final job's.
        job = self.store.get(job_id)
        if job.status in TERMINAL_STATUSES and all(r.index != index for r in job.results):
            (self.d.output_dir / rel).unlink(missing_ok=True)

    async def _on_error(self, event: ErrorEvent) -> None:
        exc = error_from_event(event)
        if event.job_id is not None:
            if event.job_id in self.live:
                await self._end(event.job_id, exc)
            return
        if event.code == ErrorCode.cancelled and not self.live:
            return  # the cancel we sent for the whole call
        await self._fail_live(exc)

    async def _on_done(self) -> None:
        await self._saved()
        complete = []
        for job in list(self.live.values()):
            got = len(self.images[job.id])
            if got < job.request.batch_size:
                err = WorkerError(
                    ErrorCode.internal, f"the worker sent {got} of {job.request.batch_size} images", retryable=True
                )
                await self._end(job.id, err)
                continue
            self.live.pop(job.id, None)
            complete.append(job)
        if complete:
            for finished in await asyncio.to_thread(self.store.complete_many, complete):
                self.d.publish_final(finished)

    # -- ending jobs ---------------------------------------------------------------------------------

    def _publish(self, job: Job) -> None:
        if job.status == JobStatus.queued:
            self.d.events.publish_job(job)
        else:
            self.d.publish_final(job)

    async def _end(self, job_id: str, exc: WorkerError) -> None:
        """A failure of one job: requeue when retryable, else failed."""
        await self._settle()
        job = self.live.pop(job_id, None)
        if job is None:
            return
        error = _to_job_error(exc)
        if exc.retryable:
            oom = exc.code == ErrorCode.out_of_memory
            after = await asyncio.to_thread(self.store.retry, job_id, error, attempt=job.attempt, memory_saving=oom)
        else:
            after = await asyncio.to_thread(self.store.fail, job_id, error, attempt=job.attempt)
        if after is not None:
            self._publish(after)

    async def _fail_live(self, exc: WorkerError) -> None:
        if isinstance(exc, WorkerUnreachable):
            log.warning("worker %s: %s", self.worker.id, exc.message)
        for job_id in list(self.live):
            await self._end(job_id, exc)

    async def stop_item(self, job_id: str, outcome: JobStatus) -> None:
        """Stop one job of this call (cancelled or timed_out): record it, then tell the worker to drop
        the item — or stop the whole call when it was the last live one."""
        async with self._lock:
            await self._settle()
            job = self.live.pop(job_id, None)
            if job is None:
                return
            if outcome == JobStatus.timed_out:
                after = await asyncio.to_thread(self.store.time_out, job_id, attempt=job.attempt)
            else:
                after = await asyncio.to_thread(self.store.mark_cancelled, job_id, attempt=job.attempt)
            if after is not None:
                self.d.publish_final(after)
            try:
                if self.live:
                    await self.client.cancel(self.call_id, job_id)
                else:
                    self.all_stopped_at = time.monotonic()
                    await self.client.cancel(self.call_id)
            except WorkerError as exc:
                log.warning("cancel of %s on %s failed: %s", job_id, self.worker.id, exc)

    async def _watch(self, stream: asyncio.Task[None]) -> None:
        """Lease renewal, deadlines, cancel requests from other gateways, and the drain limit."""
        q = self.d.settings.queue
        tick = max(q.poll_interval_s, min(0.25, q.lease_s / 4))
        last_renew = time.monotonic()
        while not stream.done():
            await asyncio.sleep(tick)
            claims = list(self.live.values())
            if time.monotonic() - last_renew >= q.lease_s / 3 and claims:
                last_renew = time.monotonic()
                held = await asyncio.to_thread(self.store.renew_leases, claims)
                for job in claims:
                    if job.id not in held:
                        # Another gateway requeued it after our lease lapsed: it is theirs now.
                        self.live.pop(job.id, None)
            now = time.time()
            for job in list(self.live.values()):
                if job.deadline_at <= now:
                    await self.stop_item(job.id, JobStatus.timed_out)
            for job_id in await asyncio.to_thread(self.store.cancel_requested, list(self.live.values())):
                await self.stop_item(job_id, JobStatus.cancelled)
            if self.all_stopped_at is not None and time.monotonic() - self.all_stopped_at > DRAIN_TIMEOUT_S:
                stream.cancel()
                return
