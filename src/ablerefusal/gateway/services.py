"""The gateway's service layer: what the REST routers and the compatibility APIs call.

Routers stay thin (one call here each); every rule that is not a field constraint of ``GenerateRequest``
(prompt length, sampler id, model id, timeout cap, queue limit, idempotency) is applied here, before the
store is touched, so a refused request leaves nothing behind.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
from collections.abc import AsyncGenerator, AsyncIterator

from ablerefusal.gateway import job_inputs
from ablerefusal.gateway.adapters import check_adapters
from ablerefusal.gateway.auth import OPEN, Principal
from ablerefusal.gateway.dispatch import Dispatcher
from ablerefusal.gateway.dispatch import default_model as pick_default_model
from ablerefusal.gateway.errors import ApiException, invalid
from ablerefusal.gateway.events import EventHub, JobEvent, JobStatusChange, follow_job
from ablerefusal.gateway.jobs import IdempotencyConflict, JobNotFinished, JobNotFound, JobStore, QueueFull, request_hash
from ablerefusal.gateway.metrics import GatewayMetrics
from ablerefusal.gateway.schemas import (
    GenerateRequest,
    Job,
    JobPage,
    JobStatus,
    ModelKind,
    ModelsResponse,
    QueueStatus,
    ReadyResponse,
    WorkerStatus,
)
from ablerefusal.gateway.settings import Settings
from ablerefusal.gateway.storage import ObjectStore
from ablerefusal.gateway.uploads import UploadService
from ablerefusal.gateway.workers.catalog import ModelCatalog
from ablerefusal.gateway.workers.pool import WorkerPool
from ablerefusal.protocol import SamplerInfo
from ablerefusal.samplers import SAMPLERS, SamplerError, resolve_sampler

log = logging.getLogger(__name__)


def _known_samplers(pool: WorkerPool) -> list[SamplerInfo]:
    """Samplers the ready workers announce, else the shared table (every surface lists and accepts these)."""
    announced = {s.id: s for h in pool.ready_handles() if h.info for s in h.info.samplers}
    if announced:
        return [announced[k] for k in sorted(announced)]
    return list(SAMPLERS)


def _without_addresses(worker: WorkerStatus, index: int) -> WorkerStatus:
    # Ids of remote workers are their URLs, and probe errors quote them.
    return worker.model_copy(
        update={
            "id": f"worker-{index + 1}",
            "url": "",
            "last_error": None if worker.last_error is None else "not ready (details for admin keys)",
        }
    )


class GatewayService:
    """Job operations for every API surface (REST, A1111, OpenAI). Raises ``ApiException`` only."""

    def __init__(
        self,
        settings: Settings,
        store: JobStore,
        pool: WorkerPool,
        events: EventHub,
        metrics: GatewayMetrics,
        dispatcher: Dispatcher,
        *,
        outputs: ObjectStore,
        uploads: UploadService,
    ) -> None:
        self.settings = settings
        self.outputs = outputs
        self.uploads = uploads
        self.store = store
        self.pool = pool
        # Listings of LoRAs, VAEs, ControlNets … of the ready workers (checkpoints come from the probes).
        self.catalog = ModelCatalog(pool)
        self.events = events
        self.metrics = metrics
        self.dispatcher = dispatcher

    # --- validation -------------------------------------------------------------------------------------

    def default_model(self) -> str | None:
        """The model a job that names none runs with, if it can be told yet (the dispatcher decides for
        jobs accepted before any worker was ready, by the same rule)."""
        return pick_default_model(self.settings, self.pool.ready_handles())

    def samplers(self) -> list[SamplerInfo]:
        return _known_samplers(self.pool)

    def upscalers(self) -> list[str]:
        """Hires upscalers the ready workers announce, else the ones every worker has."""
        announced = {u for h in self.pool.ready_handles() if h.info for u in h.info.upscalers}
        return sorted(announced) if announced else list(job_inputs.BUILTIN_UPSCALERS)

    def validate(self, request: GenerateRequest) -> GenerateRequest:
        """Rules that depend on config or on the workers; returns the request to store."""
        limit = self.settings.queue.max_prompt_length
        for name in ("prompt", "negative_prompt"):
            if len(getattr(request, name)) > limit:
                raise invalid(name, f"must be at most {limit} characters (queue.max_prompt_length)")
        if not request.prompt.strip():
            raise invalid("prompt", "must not be blank")
        try:
            sampler = resolve_sampler(request.sampler, table=self.samplers()).id
        except SamplerError as exc:
            raise invalid(exc.field, exc.message, exc.available) from exc
        model = request.model or self.default_model()
        if request.model is not None and self.pool.models_known():
            available = [m.id for m in self.pool.models()]
            if request.model not in available:
                raise ApiException(
                    404,
                    "model_not_found",
                    f"model {request.model!r} not found; available: {', '.join(available) or 'none'}",
                    available=available,
                )
        self._check_inpainting_model(request, model)
        default_timeout = self.settings.queue.default_timeout_s
        if request.timeout_s is not None and request.timeout_s > default_timeout:
            raise invalid("timeout_s", f"must be at most {default_timeout} (queue.default_timeout_s)")
        job_inputs.check_modes(request, self.upscalers())
        return request.model_copy(update={"sampler": sampler, "model": model})

    def _check_inpainting_model(self, request: GenerateRequest, model: str | None) -> None:
        """A dedicated inpainting model (9-channel UNet) runs inpaint and outpaint only: refuse anything else now,
        naming the field, rather than accept a job its worker can only fail."""
        if model is None or not self.pool.models_known():
            return
        info = next((m for m in self.pool.models() if m.id == model), None)
        if info is not None and info.inpainting and request.mask is None and request.outpaint is None:
            raise invalid(
                "model",
                f"{model!r} is an inpainting model (9-channel UNet): it runs inpainting and outpainting only; "
                "send a mask or outpaint borders, or choose another model",
            )

    # --- jobs ---------------------------------------------------------------------------------------------

    async def submit(
        self, request: GenerateRequest, idempotency_key: str | None = None, *, principal: Principal = OPEN
    ) -> Job:
        """Validate and store; the job is durable before this returns. It belongs to ``principal``'s key.

        Inline input images (base64 or data: URLs, as the A1111 and OpenAI clients send them) are checked
        with the rest, stored as uploads once everything passed, and the job row names them by upload id."""
        # Idempotency compares what the client sent: the defaults filled in below depend on which workers
        # are ready, and inline images become upload ids, so an identical retry could otherwise look like
        # another body.
        sent_hash = request_hash(request)
        validated = self.validate(request)
        await check_adapters(validated, validated.model, self.catalog)
        inputs = await job_inputs.resolve(validated, self.uploads)
        await job_inputs.store(inputs, self.uploads)
        stored = inputs.request
        client_key = idempotency_key
        if idempotency_key is not None and principal.owner is not None:
            # Keys are per client: another key's identical Idempotency-Key must not replay this one's job.
            digest = hashlib.sha256(idempotency_key.encode()).hexdigest()
            idempotency_key = f"{principal.owner}:{digest}"
        try:
            submitted = await asyncio.to_thread(
                self.store.submit,
                stored,
                idempotency_key=idempotency_key,
                body_hash=sent_hash,
                owner=principal.owner,
                shape=inputs.shape,
            )
        except QueueFull as exc:
            self.metrics.rejected.labels(reason="queue_full").inc()
            raise ApiException(429, "queue_full", str(exc), headers={"Retry-After": str(exc.retry_after)}) from exc
        except IdempotencyConflict as exc:
            # Named as the client sent it, not as stored (scoped to its API key).
            message = str(IdempotencyConflict(client_key or exc.key, exc.job_id))
            raise ApiException(422, "idempotency_conflict", message) from exc
        if submitted.created:
            self.metrics.submitted.inc()
            log.info("job submitted", extra={"job_id": submitted.job.id})
            self.dispatcher.notify()
        return submitted.job

    async def check_access(self, job_id: str, principal: Principal) -> None:
        """404 unless the job exists and ``principal`` may see it: another key's job is "not found", so its
        existence is not revealed either."""
        if principal.admin:
            return
        try:
            owner = await asyncio.to_thread(self.store.owner_of, job_id)
        except JobNotFound as exc:
            raise ApiException(404, "not_found", str(exc)) from exc
        if not principal.may_access(owner):
            raise ApiException(404, "not_found", str(JobNotFound(job_id)))

    async def get(self, job_id: str, *, principal: Principal = OPEN) -> Job:
        await self.check_access(job_id, principal)
        try:
            return await asyncio.to_thread(self.store.get, job_id)
        except JobNotFound as exc:
            raise ApiException(404, "not_found", str(exc)) from exc

    async def preview(self, job_id: str, *, principal: Principal = OPEN) -> bytes:
        """The JPEG of a running job's latest latent preview; 404 when it has none (not running, or
        nobody watching it live asked the worker for previews)."""
        await self.check_access(job_id, principal)
        found = await asyncio.to_thread(self.store.preview, job_id)
        if found is None:
            raise ApiException(404, "not_found", f"job {job_id} has no preview now; only running jobs have one")
        return base64.b64decode(found.jpeg_base64)

    async def with_preview(self, job: Job) -> Job:
        """``job`` with its latest preview inline (``preview``, a data: URL), for A1111's /progress."""
        found = await asyncio.to_thread(self.store.preview, job.id)
        if found is None:
            return job
        return job.model_copy(update={"preview": "data:image/jpeg;base64," + found.jpeg_base64})

    async def wait(
        self, job_id: str, timeout: float | None, *, previews: bool = True, snapshot: Job | None = None
    ) -> Job:
        """The job as soon as it is terminal, or as it is when ``timeout`` seconds have passed.
        ``previews``: keep latent previews coming for this job (A1111 /progress shows them). ``snapshot``:
        the job as just returned by ``submit``, with no await in between (saves a store read; see
        ``follow_job``)."""
        try:
            async with asyncio.timeout(timeout):
                events = follow_job(
                    self.events, job_id, self.store.get, poll_interval_s=1.0, previews=previews, snapshot=snapshot
                )
                async for event in events:
                    if isinstance(event, JobStatusChange) and event.terminal:
                        return event.job
        except JobNotFound as exc:
            raise ApiException(404, "not_found", str(exc)) from exc
        except TimeoutError:
            pass
        return await self.get(job_id)

    async def submit_and_wait(
        self,
        request: GenerateRequest,
        wait_s: float,
        idempotency_key: str | None = None,
        *,
        principal: Principal = OPEN,
    ) -> Job:
        """Synchronous mode: the finished job, or an ApiException carrying the job (408 still running or
        timed out, 500 failed)."""
        job = await self.submit(request, idempotency_key=idempotency_key, principal=principal)
        # A synchronous client sees only the finished job: no previews to compute for it. Nothing was
        # awaited since the submit's answer, so that answer is the starting snapshot (no second read).
        job = await self.wait(job.id, wait_s, previews=False, snapshot=job)
        if job.status == JobStatus.completed:
            return job
        if job.status == JobStatus.failed:
            message = job.error.message if job.error else "generation failed"
            raise ApiException(500, job.error.code if job.error else "internal", message, job=job)
        if job.status == JobStatus.cancelled:
            raise ApiException(409, "cancelled", "the job was cancelled", job=job)
        reason = "the job's deadline passed" if job.status == JobStatus.timed_out else f"still {job.status}"
        raise ApiException(408, "timeout", f"{reason} after waiting {wait_s:g}s; partial results included", job=job)

    async def list_jobs(
        self, *, offset: int, limit: int, status: JobStatus | None, principal: Principal = OPEN
    ) -> JobPage:
        return await asyncio.to_thread(
            self.store.list_jobs, status=status, offset=offset, limit=limit, owner=principal.scope
        )

    async def cancel(self, job_id: str, *, principal: Principal = OPEN) -> Job:
        await self.check_access(job_id, principal)
        try:
            job = await self.dispatcher.cancel(job_id)
        except JobNotFound as exc:
            raise ApiException(404, "not_found", str(exc)) from exc
        log.info("cancel requested, job now %s", job.status.value, extra={"job_id": job_id})
        return job

    async def delete(self, job_id: str, *, principal: Principal = OPEN) -> None:
        await self.check_access(job_id, principal)
        try:
            paths = await asyncio.to_thread(self.store.delete, job_id)
        except JobNotFound as exc:
            raise ApiException(404, "not_found", str(exc)) from exc
        except JobNotFinished as exc:
            raise ApiException(409, "conflict", f"{exc}; cancel it first") from exc
        # Off the event loop: a slow disk or the bucket must not stall every other request. The job's whole
        # folder goes (images, thumbnails): its id is a fresh uuid, so nothing else is kept under it.
        removed = await asyncio.to_thread(self.outputs.delete_prefix, job_id)
        log.info("job deleted with %d result(s), %d file(s)", len(paths), removed, extra={"job_id": job_id})

    async def event_stream(self, job_id: str, *, principal: Principal = OPEN) -> AsyncIterator[dict[str, str]]:
        """SSE messages for one job; 404 before the stream starts for an unknown id (or another key's)."""
        await self.get(job_id, principal=principal)
        return self._sse(job_id)

    async def _sse(self, job_id: str) -> AsyncIterator[dict[str, str]]:
        async for event in self.follow(job_id):
            yield {"event": event.type, "data": event.model_dump_json()}

    def follow(self, job_id: str, *, previews: bool = True) -> AsyncGenerator[JobEvent, None]:
        """Every event of one job until it ends, for the live streams (SSE and WebSocket); raises
        ``JobNotFound`` on first iteration for an unknown id."""
        interval = self.settings.queue.poll_interval_s * 20
        return follow_job(self.events, job_id, self.store.get, poll_interval_s=interval, previews=previews)

    # --- queue, models, readiness, metrics ----------------------------------------------------------------

    async def queue_status(self, *, principal: Principal = OPEN) -> QueueStatus:
        """Counts of every job; the running and queued lists hold only what ``principal`` may see."""
        return await asyncio.to_thread(self.store.queue_status, owner=principal.scope)

    def models(self) -> ModelsResponse:
        return ModelsResponse(models=self.pool.models(), default=self.default_model())

    async def models_of_kind(self, kind: ModelKind) -> ModelsResponse:
        """Models of one kind on the ready workers; ``default`` is set for checkpoints only."""
        if kind is ModelKind.checkpoint:
            return self.models()
        return ModelsResponse(models=await self.catalog.listing(kind), default=None)

    async def ready(self, *, show_workers: bool = True) -> ReadyResponse:
        """Readiness; without ``show_workers`` worker URLs and errors (internal addresses) are withheld."""
        store_ok = await asyncio.to_thread(self.store.ping)
        workers = self.pool.statuses()
        if not show_workers:
            workers = [_without_addresses(w, i) for i, w in enumerate(workers)]
        ready_workers = [w for w in workers if w.ready]
        reason = None
        if not store_ok:
            reason = "job store unreachable"
        elif not workers:
            reason = "no workers configured (start local workers or give --worker-url)"
        elif not ready_workers:
            reason = "no worker ready: " + "; ".join(f"{w.id}: {w.last_error or 'starting'}" for w in workers)
        return ReadyResponse(ready=reason is None, store=store_ok, workers=workers, reason=reason)

    async def refresh_metrics(self) -> None:
        counts = await asyncio.to_thread(self.store.counts)
        self.metrics.refresh(counts, self.pool.statuses())
