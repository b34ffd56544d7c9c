"""The gateway's service layer: what the REST routers and the compatibility APIs call.

Routers stay thin (one call here each); every rule that is not a field constraint of ``GenerateRequest``
(prompt length, sampler id, model id, timeout cap, queue limit, idempotency) is applied here, before the
store is touched, so a refused request leaves nothing behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from ablerefusal.gateway.dispatch import Dispatcher
from ablerefusal.gateway.errors import ApiException, invalid
from ablerefusal.gateway.events import EventHub, JobStatusChange, follow_job
from ablerefusal.gateway.jobs import IdempotencyConflict, JobNotFinished, JobNotFound, JobStore, QueueFull
from ablerefusal.gateway.metrics import GatewayMetrics
from ablerefusal.gateway.schemas import (
    GenerateRequest,
    Job,
    JobPage,
    JobStatus,
    ModelsResponse,
    QueueStatus,
    ReadyResponse,
)
from ablerefusal.gateway.settings import Settings
from ablerefusal.gateway.workers.pool import WorkerPool
from ablerefusal.protocol import SamplerInfo
from ablerefusal.worker.engine.samplers import SAMPLERS, UnknownSamplerError, resolve_sampler

log = logging.getLogger(__name__)


def canonical_sampler(name: str) -> str | None:
    """The sampler id for an id, A1111 name or alias; None when unknown."""
    try:
        return resolve_sampler(name).id
    except UnknownSamplerError:
        return None


def _known_samplers(pool: WorkerPool) -> list[SamplerInfo]:
    """Samplers the ready workers announce, else the worker package's own table."""
    announced = {s.id: s for h in pool.ready_handles() if h.info for s in h.info.samplers}
    if announced:
        return [announced[k] for k in sorted(announced)]
    return [SamplerInfo(id=s.id, name=s.name, aliases=list(s.aliases)) for s in SAMPLERS]


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
    ) -> None:
        self.settings = settings
        self.store = store
        self.pool = pool
        self.events = events
        self.metrics = metrics
        self.dispatcher = dispatcher

    # --- validation -------------------------------------------------------------------------------------

    def default_model(self) -> str | None:
        configured = self.settings.inference.default_model
        if configured:
            return configured
        models = self.pool.models()
        return models[0].id if models else None

    def samplers(self) -> list[SamplerInfo]:
        return _known_samplers(self.pool)

    def validate(self, request: GenerateRequest) -> GenerateRequest:
        """Rules that depend on config or on the workers; returns the request to store."""
        limit = self.settings.queue.max_prompt_length
        for name in ("prompt", "negative_prompt"):
            if len(getattr(request, name)) > limit:
                raise invalid(name, f"must be at most {limit} characters (queue.max_prompt_length)")
        if not request.prompt.strip():
            raise invalid("prompt", "must not be blank")
        sampler = canonical_sampler(request.sampler)
        valid = [s.id for s in self.samplers()]
        if sampler is None or sampler not in valid:
            raise invalid("sampler", f"unknown sampler {request.sampler!r}; valid ids: {', '.join(valid)}", valid)
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
        default_timeout = self.settings.queue.default_timeout_s
        if request.timeout_s is not None and request.timeout_s > default_timeout:
            raise invalid("timeout_s", f"must be at most {default_timeout} (queue.default_timeout_s)")
        return request.model_copy(update={"sampler": sampler, "model": model})

    # --- jobs ---------------------------------------------------------------------------------------------

    async def submit(self, request: GenerateRequest, idempotency_key: str | None = None) -> Job:
        """Validate and store; the job is durable before this returns."""
        stored = self.validate(request)
        try:
            submitted = await asyncio.to_thread(self.store.submit, stored, idempotency_key=idempotency_key)
        except QueueFull as exc:
            self.metrics.rejected.labels(reason="queue_full").inc()
            raise ApiException(429, "queue_full", str(exc), headers={"Retry-After": str(exc.retry_after)}) from exc
        except IdempotencyConflict as exc:
            raise ApiException(422, "idempotency_conflict", str(exc)) from exc
        if submitted.created:
            self.metrics.submitted.inc()
            log.info("job submitted", extra={"job_id": submitted.job.id})
            self.dispatcher.notify()
        return submitted.job

    async def get(self, job_id: str) -> Job:
        try:
            return await asyncio.to_thread(self.store.get, job_id)
        except JobNotFound as exc:
            raise ApiException(404, "not_found", str(exc)) from exc

    async def wait(self, job_id: str, timeout: float | None, *, previews: bool = True) -> Job:
        """The job as soon as it is terminal, or as it is when ``timeout`` seconds have passed.
        ``previews``: keep latent previews coming for this job (A1111 /progress shows them)."""
        try:
            async with asyncio.timeout(timeout):
                events = follow_job(self.events, job_id, self.store.get, poll_interval_s=1.0, previews=previews)
                async for event in events:
                    if isinstance(event, JobStatusChange) and event.terminal:
                        return event.job
        except JobNotFound as exc:
            raise ApiException(404, "not_found", str(exc)) from exc
        except TimeoutError:
            pass
        return await self.get(job_id)

    async def submit_and_wait(self, request: GenerateRequest, wait_s: float, idempotency_key: str | None = None) -> Job:
        """Synchronous mode: the finished job, or an ApiException carrying the job (408 still running or
        timed out, 500 failed)."""
        job = await self.submit(request, idempotency_key=idempotency_key)
        # A synchronous client sees only the finished job: no previews to compute for it.
        job = await self.wait(job.id, wait_s, previews=False)
        if job.status == JobStatus.completed:
            return job
        if job.status == JobStatus.failed:
            message = job.error.message if job.error else "generation failed"
            raise ApiException(500, job.error.code if job.error else "internal", message, job=job)
        if job.status == JobStatus.cancelled:
            raise ApiException(409, "cancelled", "the job was cancelled", job=job)
        reason = "the job's deadline passed" if job.status == JobStatus.timed_out else f"still {job.status}"
        raise ApiException(408, "timeout", f"{reason} after waiting {wait_s:g}s; partial results included", job=job)

    async def list_jobs(self, *, offset: int, limit: int, status: JobStatus | None) -> JobPage:
        return await asyncio.to_thread(self.store.list_jobs, status=status, offset=offset, limit=limit)

    async def cancel(self, job_id: str) -> Job:
        try:
            job = await self.dispatcher.cancel(job_id)
        except JobNotFound as exc:
            raise ApiException(404, "not_found", str(exc)) from exc
        log.info("cancel requested, job now %s", job.status.value, extra={"job_id": job_id})
        return job

    async def delete(self, job_id: str) -> None:
        try:
            paths = await asyncio.to_thread(self.store.delete, job_id)
        except JobNotFound as exc:
            raise ApiException(404, "not_found", str(exc)) from exc
        except JobNotFinished as exc:
            raise ApiException(409, "conflict", f"{exc}; cancel it first") from exc
        root = self.settings.storage.output_dir.resolve()
        for rel in paths:
            target = (root / rel).resolve()
            if target.is_relative_to(root):
                target.unlink(missing_ok=True)
        job_dir = root / job_id
        with contextlib.suppress(OSError):
            job_dir.rmdir()  # only when empty: never remove what we did not write
        log.info("job deleted with %d file(s)", len(paths), extra={"job_id": job_id})

    async def event_stream(self, job_id: str) -> AsyncIterator[dict[str, str]]:
        """SSE messages for one job; 404 before the stream starts for an unknown id."""
        await self.get(job_id)
        return self._sse(job_id)

    async def _sse(self, job_id: str) -> AsyncIterator[dict[str, str]]:
        interval = self.settings.queue.poll_interval_s * 20
        async for event in follow_job(self.events, job_id, self.store.get, poll_interval_s=interval):
            yield {"event": event.type, "data": event.model_dump_json()}

    # --- queue, models, readiness, metrics ----------------------------------------------------------------

    async def queue_status(self) -> QueueStatus:
        return await asyncio.to_thread(self.store.queue_status)

    def models(self) -> ModelsResponse:
        return ModelsResponse(models=self.pool.models(), default=self.default_model())

    async def ready(self) -> ReadyResponse:
        store_ok = await asyncio.to_thread(self.store.ping)
        workers = self.pool.statuses()
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
