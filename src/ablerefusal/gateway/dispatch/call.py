"""One generation call on one worker: its live jobs, the images seen, and the handling of its stream.

A ``Call`` talks to the rest of the gateway through its ``CallHost`` (the dispatcher) and its worker's
``WorkerSlot``, never through the dispatcher's internals.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import time
import uuid
from collections.abc import Coroutine
from typing import Any, Protocol

import httpx

from ablerefusal.gateway.dispatch.slots import DispatchWorker, WorkerSlot
from ablerefusal.gateway.events import EventHub, JobImage, JobPreview, JobProgress
from ablerefusal.gateway.jobs import ClaimedJob, JobStore
from ablerefusal.gateway.jobs.shape import effective_loras, request_mode
from ablerefusal.gateway.schemas import TERMINAL_STATUSES, GenerateRequest, Job, JobError, JobResult, JobStatus
from ablerefusal.gateway.settings import Settings
from ablerefusal.gateway.storage import ObjectStore
from ablerefusal.gateway.uploads import UploadService
from ablerefusal.gateway.workers.client import WorkerClient, WorkerError, WorkerUnreachable, error_from_event
from ablerefusal.protocol import (
    SEED_MAX,
    ControlNetUnit,
    DoneEvent,
    ErrorCode,
    ErrorEvent,
    GenerateCall,
    GeneratedEvent,
    GenerateItem,
    GenerationMode,
    ImageEvent,
    ItemCancelledEvent,
    MemoryOptions,
    ProgressEvent,
    StartedEvent,
    WorkerEvent,
)

log = logging.getLogger("ablerefusal.gateway.dispatch")

# Longest wait for a worker to end a call after we cancelled all of it; then the slot is freed anyway.
DRAIN_TIMEOUT_S = 30.0
# How long a worker that answered "busy" (another gateway's call) is left alone.
BUSY_PAUSE_S = 0.5
# How long this dispatcher leaves alone a worker it could not connect to (the pool, told at once, keeps
# it out of rotation until a probe finds it ready; this covers workers no pool watches).
UNREACHABLE_PAUSE_S = 1.0
# Least time between two progress writes of one call to the store.
PROGRESS_WRITE_S = 0.2
MEMORY_SAVING = MemoryOptions(attention_slicing=True, vae_tiling=True, cpu_offload=True)


class CallHost(Protocol):
    """What a call needs from the dispatcher that runs it."""

    store: JobStore
    settings: Settings
    events: EventHub
    outputs: ObjectStore
    uploads: UploadService

    def publish_final(self, job: Job) -> None: ...

    def wake(self) -> None: ...

    def slot_freed(self) -> None: ...

    def spawn(self, work: Coroutine[Any, Any, None]) -> None: ...

    def worker_lost(self, worker: DispatchWorker, reason: str) -> None: ...


def item_seeds(seed: int, batch_size: int) -> list[int]:
    """Image i of a job uses seed + i (wrapping past 2**32-1, which the protocol does not accept)."""
    return [(seed + i) % (SEED_MAX + 1) for i in range(batch_size)]


def output_key(job_id: str, index: int) -> str:
    """Where image ``index`` of a job is stored; a retry writes the same key (it overwrites, never adds)."""
    return f"{job_id}/{index}.png"


def never_reached(exc: WorkerError) -> bool:
    """True when the call provably never got to the worker: no connection could be made."""
    return isinstance(exc, WorkerUnreachable) and isinstance(exc.__cause__, httpx.ConnectError | httpx.ConnectTimeout)


def _to_job_error(exc: WorkerError) -> JobError:
    return JobError(code=exc.code, message=exc.message)


def mode_fields(head: GenerateRequest) -> dict[str, Any]:
    """The call's image-mode parameters, from the head job (coalesced jobs share them: jobs/shape.py). Only
    what the mode reads is set, so a plain text-to-image call carries none of these fields and reads the
    same to a worker that predates them."""
    mode = request_mode(head)
    fields: dict[str, Any] = {}
    if mode is not GenerationMode.txt2img:
        fields |= {"mode": mode, "denoising_strength": head.denoising_strength, "resize_mode": head.resize_mode}
    if mode in (GenerationMode.inpaint, GenerationMode.outpaint):
        fields |= {"mask_blur": head.mask_blur, "inpainting_fill": head.inpainting_fill}
    if mode is GenerationMode.inpaint:
        fields |= {
            "mask_invert": head.mask_invert,
            "inpaint_only_masked": head.inpaint_only_masked,
            "inpaint_padding": head.inpaint_padding,
        }
    if head.outpaint is not None:
        fields["outpaint"] = head.outpaint
    if head.hires is not None:
        fields["hires"] = head.hires
    return fields


def adapter_fields(head: GenerateRequest) -> dict[str, Any]:
    """The call's adapters, from the head job (coalesced jobs share them: jobs/shape.py): the merged LoRA set
    (prompt tags stay in the prompts; the worker strips them and this set wins), clip skip, VAE and the
    ControlNet units (their images go per item). Only what is set, as for ``mode_fields``."""
    fields: dict[str, Any] = {}
    loras = effective_loras(head)
    if loras:
        fields["loras"] = loras
    if head.clip_skip is not None:
        fields["clip_skip"] = head.clip_skip
    if head.vae is not None:
        fields["vae"] = head.vae
    if head.controlnets:
        fields["controlnets"] = [
            ControlNetUnit.model_validate(unit.model_dump(exclude={"image"})) for unit in head.controlnets
        ]
    return fields


class Call:
    """One generation call on one worker: its live jobs, the images seen, and the stream handling."""

    def __init__(
        self,
        host: CallHost,
        worker: DispatchWorker,
        slot: WorkerSlot,
        client: WorkerClient,
        jobs: list[ClaimedJob],
    ) -> None:
        self.host = host
        self.store = host.store
        self.worker = worker
        self.slot = slot
        self.client = client
        self.call_id = uuid.uuid4().hex
        self.live: dict[str, ClaimedJob] = {j.id: j for j in jobs}
        self.jobs = list(jobs)
        self.images: dict[str, set[int]] = {j.id: set() for j in jobs}
        self.all_stopped_at: float | None = None
        self._started = False
        self._lock = asyncio.Lock()
        self._slot_freed = False
        self._progress_write: asyncio.Future[set[str]] | None = None
        self._pending_progress: tuple[int, int, dict[str, str]] | None = None  # the latest step not yet written
        self._progress_timer: asyncio.TimerHandle | None = None
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
        self.slot.finished()
        self.host.slot_freed()

    # -- building ------------------------------------------------------------------------------------

    async def _input_images(self, job: ClaimedJob, cache: dict[str, str]) -> dict[str, Any] | None:
        """The job's input images as the item carries them (base64 of the stored PNG), by field (ControlNet
        images as ``control_images``, in unit order); None after failing the job when one of its uploads is
        gone (deleted from storage since it was accepted)."""
        images: dict[str, str] = {}
        sources: list[tuple[str, str | None]] = [(f, getattr(job.request, f)) for f in ("init_image", "mask")]
        sources += [(f"controlnets.{i}.image", unit.image) for i, unit in enumerate(job.request.controlnets)]
        for field, upload_id in sources:
            if upload_id is None:
                continue
            if upload_id not in cache:
                # Reading from disk or the bucket blocks: off the loop (UploadService.load runs in a thread).
                data = await self.host.uploads.load(upload_id)
                if data is None:
                    message = f"{field}: upload {upload_id} is no longer stored; upload the image again"
                    await self._end(job.id, WorkerError(ErrorCode.invalid_request, message, retryable=False))
                    return None
                cache[upload_id] = base64.b64encode(data).decode("ascii")
            images[field] = cache[upload_id]
        controls = [images.pop(f"controlnets.{i}.image") for i in range(len(job.request.controlnets))]
        return {**images, "control_images": controls} if controls else images

    async def build(self, model: str) -> GenerateCall | None:
        """The call for this claim, its parameters from the head job. Jobs whose input images are gone fail
        here and leave the call; None when no job is left."""
        cache: dict[str, str] = {}  # one read and one encoding per upload, however many jobs share it
        inputs: dict[str, dict[str, Any]] = {}
        for job in list(self.jobs):
            found = await self._input_images(job, cache)
            if found is not None:
                inputs[job.id] = found
        self.jobs = [j for j in self.jobs if j.id in inputs]
        if not self.jobs:
            return None
        head = self.jobs[0].request
        # A job that asked for previews gets them even when its watcher subscribes after the call started.
        watched = any(j.request.previews or self.host.events.wants_previews(j.id) for j in self.jobs)
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
                    # Sent only when it differs, so a uniform call reads the same to any worker version.
                    cfg_scale=None if j.request.cfg_scale == head.cfg_scale else j.request.cfg_scale,
                    **inputs[j.id],
                )
                for j in self.jobs
            ],
            # Previews cost worker time: only when someone watches the job live and wants them.
            previews=watched,
            memory=MEMORY_SAVING if any(j.memory_saving for j in self.jobs) else None,
            **mode_fields(head),
            **adapter_fields(head),
        )

    # -- running -------------------------------------------------------------------------------------

    async def run(self, model: str | None) -> None:
        """Run the call with ``model`` (None: no model was requested and none can be chosen)."""
        if model is None:
            err = WorkerError(ErrorCode.model_not_found, "no model requested and none configured", retryable=False)
            await self._fail_live(err)
            return
        try:
            call = await self.build(model)
        except asyncio.CancelledError:
            await asyncio.shield(self._give_back())
            raise
        except Exception as exc:
            # The input images could not be read (a storage outage): retry, as for any gateway-side error.
            log.exception("call %s: building it failed", self.call_id)
            await self._fail_live(WorkerError(ErrorCode.internal, f"gateway error: {exc!r}", retryable=True))
            return
        if call is None:
            return  # every job failed while building (its inputs are gone)
        stream = asyncio.create_task(self._consume(call, model))
        watcher = asyncio.create_task(self._watch(stream))
        # The claim's own snapshots: announcing "running" costs no store read.
        for claimed in self.jobs:
            if claimed.job is not None:
                self.host.events.publish_job(claimed.job)
        try:
            await stream
        except asyncio.CancelledError:
            if not stream.cancelled() or self.live:
                # Gateway shutdown: stop the worker and put the jobs back, not counting the attempt.
                stream.cancel()
                await asyncio.shield(self._give_back())
                raise
        except WorkerError as exc:
            await self._on_call_error(exc)
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

    async def _on_call_error(self, exc: WorkerError) -> None:
        untouched = not self._started and not any(self.images.values())
        if exc.code == ErrorCode.busy and untouched:
            self.slot.pause(BUSY_PAUSE_S)
            await self._give_back()
        elif never_reached(exc) and untouched:
            # Nothing ran (typically a crashed worker's old port, before the pool noticed): the jobs
            # go back without spending an attempt, and the worker leaves the rotation until it is ready.
            self.slot.pause(UNREACHABLE_PAUSE_S)
            self.host.worker_lost(self.worker, exc.message)
            await self._give_back()
        else:
            if isinstance(exc, WorkerUnreachable):
                # It broke mid-call: no more calls until a probe finds it ready again. The attempt counts.
                self.host.worker_lost(self.worker, exc.message)
            await self._fail_live(exc)

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
            self._started = True
            self.slot.loaded_model = model
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
            previews[target] = event.preview
        pct = 100.0 * event.step / event.total if event.total else 0.0
        events = self.host.events
        for job in claims:
            events.publish(JobProgress(job_id=job.id, step=event.step, total=event.total, progress=pct))
        for job_id, jpeg in previews.items():
            events.publish(JobPreview(job_id=job_id, step=event.step, image="data:image/jpeg;base64," + jpeg))
        # The store gets progress at most every PROGRESS_WRITE_S and never holds up the stream: a step
        # can be shorter than a database write. Subscribers of this gateway already have every step;
        # cancels requested here act at once (Dispatcher.cancel), those from other gateways via the
        # answer of this write or the watcher.
        self._pending_progress = (event.step, event.total, previews)
        self._write_progress()

    def _write_progress(self) -> None:
        """Write the latest progress now, or once PROGRESS_WRITE_S has passed since the last write: a step
        skipped by the throttle is still written when no later step comes soon (a long step, a pause), so
        other gateways and pollers never keep an old step for longer than that."""
        if self._pending_progress is None:
            return
        claims = list(self.live.values())
        if not claims:
            self._pending_progress = None
            return
        wait = self._progress_written_at + PROGRESS_WRITE_S - time.monotonic()
        if self._progress_write is not None and not self._progress_write.done():
            wait = max(wait, PROGRESS_WRITE_S / 4)
        if wait > 0:
            if self._progress_timer is None:
                self._progress_timer = asyncio.get_running_loop().call_later(wait, self._progress_due)
            return
        step, total, previews = self._pending_progress
        self._pending_progress = None
        self._progress_written_at = time.monotonic()
        write = asyncio.ensure_future(asyncio.to_thread(self.store.record_progress, claims, step, total, previews))
        self._progress_write = write
        write.add_done_callback(self._after_progress_write)

    def _progress_due(self) -> None:
        self._progress_timer = None
        self._write_progress()

    def _after_progress_write(self, write: asyncio.Future[set[str]]) -> None:
        if write.cancelled():
            return
        if (exc := write.exception()) is not None:
            # Progress is advisory (the next write, or the job's end, supersedes it), so the call goes
            # on; but a failing store must show in the log.
            log.warning("call %s: progress write failed: %r", self.call_id, exc, exc_info=exc)
            return
        for job_id in write.result():
            self.host.spawn(self.stop_item(job_id, JobStatus.cancelled))

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
        self.host.events.publish(JobImage(job_id=event.job_id, result=result))

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
        rel = output_key(event.job_id, event.index)
        self.host.outputs.put(rel, base64.b64decode(event.png_base64), "image/png")
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
            self.host.outputs.delete(rel)

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
                self.host.publish_final(finished)

    # -- ending jobs ---------------------------------------------------------------------------------

    def _publish(self, job: Job) -> None:
        if job.status == JobStatus.queued:
            self.host.events.publish_job(job)
            # News of the queue for the dispatcher: it looks at the store again (a retry's backoff).
            self.host.wake()
        else:
            self.host.publish_final(job)

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
                self.host.publish_final(after)
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
        q = self.host.settings.queue
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
