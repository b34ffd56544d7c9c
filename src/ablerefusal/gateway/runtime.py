"""What the gateway runs between startup and shutdown: job store, event hub, worker pool, dispatcher.

Start order matters: the store first (and jobs a dead gateway left running go back to the queue), then
the workers, then the dispatcher that feeds them. Stop order is the reverse, so no job is claimed by a
dispatcher whose workers are already gone.
"""

from __future__ import annotations

import asyncio
import logging

from ablerefusal.gateway.dispatch import Dispatcher, DispatchWorker
from ablerefusal.gateway.events import EventHub
from ablerefusal.gateway.fleet.bus import FleetBus
from ablerefusal.gateway.fleet.identity import new_gateway_id
from ablerefusal.gateway.fleet.registry import WorkerRegistry
from ablerefusal.gateway.jobs import JobStore
from ablerefusal.gateway.metrics import GatewayMetrics
from ablerefusal.gateway.schemas import Job
from ablerefusal.gateway.services import GatewayService
from ablerefusal.gateway.settings import Settings
from ablerefusal.gateway.storage import make_object_store
from ablerefusal.gateway.uploads import make_upload_service
from ablerefusal.gateway.workers.pool import WorkerHandle, WorkerPool

log = logging.getLogger(__name__)


class Runtime:
    def __init__(self, settings: Settings, metrics: GatewayMetrics) -> None:
        self.settings = settings
        self.metrics = metrics
        self.store = JobStore(settings.storage.database_url, settings.queue)
        self.events = EventHub()
        # This process in the fleet: lease holder of shared workers, caller of workers, origin of notices.
        self.gateway_id = new_gateway_id()
        registry = WorkerRegistry(self.store.engine, lease_s=settings.workers.lease_s)
        self.pool = WorkerPool(settings, registry=registry, gateway_id=self.gateway_id)
        # Images: local disk, or the bucket every gateway of a fleet shares.
        self.outputs = make_object_store(settings.storage)
        # Input images: jobs are checked against them at submit, and calls carry their bytes.
        self.uploads = make_upload_service(settings)
        self.dispatcher = Dispatcher(
            self.store,
            settings,
            self.outputs,
            self.events,
            self.pool.dispatchable,
            on_finished=self._job_finished,
            on_worker_lost=self._worker_lost,
            worker_changes=self.pool.wait_changed,
            uploads=self.uploads,
            caller=self.gateway_id,
        )
        self.pool.in_use = self.dispatcher.in_use
        # Several gateways on one PostgreSQL store: live events and cancels cross between them.
        self.bus: FleetBus | None = None
        self._bus_task: asyncio.Task[None] | None = None
        if self.store.listen_url is not None:
            self.bus = FleetBus(
                self.store.listen_url,
                self.store.notify_payload,
                self.gateway_id,
                self.events,
                load_preview=self.store.preview,
                on_cancel=self.dispatcher.stop_if_here,
            )
            self.events.relay = self.bus.relay
            self.dispatcher.relay_cancel = self.bus.relay_cancel
        self.service = GatewayService(
            settings,
            self.store,
            self.pool,
            self.events,
            metrics,
            self.dispatcher,
            outputs=self.outputs,
            uploads=self.uploads,
        )

    def _worker_lost(self, worker: DispatchWorker, reason: str) -> None:
        # The dispatcher only ever runs calls on the pool's own handles.
        assert isinstance(worker, WorkerHandle)
        self.pool.mark_lost(worker, reason)

    def _job_finished(self, job: Job) -> None:
        self.metrics.observe_finished(job)
        log.info("job %s", job.status.value, extra={"job_id": job.id})

    async def start(self) -> None:
        if self.settings.storage.backend == "local":
            self.settings.storage.output_dir.mkdir(parents=True, exist_ok=True)
        log.info("gateway %s starting", self.gateway_id)
        if self.bus is not None:
            self._bus_task = asyncio.create_task(self.bus.run(), name="fleet-bus")
        await self.pool.start()
        # The dispatcher's start requeues the jobs a dead gateway left running, before any claim.
        await self.dispatcher.start()

    async def stop(self) -> None:
        await self.dispatcher.stop()
        if self._bus_task is not None:
            self._bus_task.cancel()
            await asyncio.gather(self._bus_task, return_exceptions=True)
        await self.pool.stop()
        await asyncio.to_thread(self.store.close)
