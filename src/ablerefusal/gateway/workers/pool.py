"""The pool of workers the dispatcher may use: local supervised processes and remote URLs.

Each worker is probed through its ``WorkerClient`` on ``/v1/ready`` (and, once ready, ``/v1/info`` and
``/v1/models``); one that stops answering leaves the rotation until it answers again, and one speaking another
major protocol version never enters it. A probe is logged only when it changes what the gateway knows of the
worker (ready, or the reason it is not). The pool never sends generation calls itself: the dispatcher takes
the handles it may call from ``dispatchable()``.

Remote workers are shared by every gateway on the job store when the pool has a ``WorkerRegistry``: the
configured URLs are registered there at start, and a lease loop (every third of ``workers.lease_s``) follows
the registered list (workers added or removed through the API on any gateway) and holds leases on this
gateway's fair share of them (``fleet/registry.py``). Every registered worker is probed, so ``/ready`` and
``/models`` show the whole fleet, but only those whose lease this gateway holds are dispatchable. A worker
over the share is released only once no call or claim of this gateway uses it (``in_use``). Local workers
are never registered: their token is this gateway's secret.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ablerefusal.gateway.fleet.registry import LeaseState, RegisteredWorker, WorkerRegistry, normalize_url
from ablerefusal.gateway.schemas import WorkerStatus
from ablerefusal.gateway.settings import Settings
from ablerefusal.gateway.workers.client import WorkerClient, WorkerError
from ablerefusal.gateway.workers.gpus import plan_local_workers
from ablerefusal.gateway.workers.supervisor import SupervisedProcess, WorkerCommand
from ablerefusal.protocol import ModelInfo, WorkerInfo, incompatible_protocol

log = logging.getLogger(__name__)

# While a worker is not ready yet, probe it often: readiness after start is what a user waits for.
_FAST_PROBE_S = 0.2
# A probe that takes longer than this marks the worker not ready (the worker answers probes off its loop).
_PROBE_TIMEOUT_S = 5.0


@dataclass
class WorkerHandle:
    """What the gateway knows about one worker; the dispatcher reads it, only the pool writes it."""

    id: str
    url: str
    local: bool
    token: str | None = field(default=None, repr=False)
    ready: bool = False
    incompatible: bool = False  # speaks another major protocol version: never enters the rotation
    busy: bool = False
    device: str | None = None
    gpu: str | None = None
    models: list[ModelInfo] = field(default_factory=list)
    info: WorkerInfo | None = None
    last_error: str | None = None
    process: SupervisedProcess | None = None
    # Shared (registered) workers: the registry id, the gateway holding the lease, and until when (monotonic)
    # this gateway may start calls on it; ``releasing``: being handed back, no new calls.
    registry_id: str | None = None
    holder: str | None = None
    lease_valid_until: float = 0.0
    releasing: bool = False

    @property
    def shared(self) -> bool:
        return self.registry_id is not None

    def dispatchable(self, now: float) -> bool:
        """Ready, and ours to call: local, static, or shared with a live lease held here."""
        if not self.ready:
            return False
        return not self.shared or (now < self.lease_valid_until and not self.releasing)

    @property
    def restarts(self) -> int:
        return self.process.restarts if self.process else 0

    def status(self) -> WorkerStatus:
        return WorkerStatus(
            id=self.id,
            url=self.url,
            local=self.local,
            ready=self.ready,
            busy=self.busy,
            device=self.device,
            gpu=self.gpu,
            restarts=self.restarts,
            last_error=self.last_error or (self.process.last_error if self.process else None),
            held_by=self.holder,
        )


class WorkerPool:
    def __init__(
        self,
        settings: Settings,
        *,
        local_workers: int | str | None = None,
        registry: WorkerRegistry | None = None,
        gateway_id: str | None = None,
    ) -> None:
        """``registry``: share remote workers with the other gateways on the store, leased as
        ``gateway_id``; without it remote workers are this gateway's alone (a single gateway)."""
        self.settings = settings
        self.registry = registry
        self.gateway_id = gateway_id or secrets.token_hex(8)
        self._started_at = time.time()
        # Whether this gateway's dispatcher has a call or a claim on a worker id (set by the runtime):
        # a worker is handed back only when it has neither.
        self.in_use: Callable[[str], bool] = lambda _worker_id: False
        self.lease: LeaseState | None = None
        self._local = settings.workers.local if local_workers is None else local_workers
        self.handles: list[WorkerHandle] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._clients: dict[str, WorkerClient] = {}
        self._changed = asyncio.Event()
        self._lease_lock = asyncio.Lock()
        # Set when a shared worker becomes ready: a lease round then may take it without waiting a tick.
        self._lease_kick = asyncio.Event()
        # Local workers take calls only from this gateway: a token nobody else is told.
        self._local_token = secrets.token_urlsafe(32)

    def remote_urls(self) -> list[str]:
        urls = list(self.settings.workers.urls)
        seed_url = self.settings.inference.python_service_url
        if seed_url and seed_url not in urls:
            urls.append(seed_url)
        return [u.rstrip("/") for u in urls]

    async def start(self) -> None:
        ws = self.settings.workers
        plans = plan_local_workers(self._local, ws.gpus, self.settings.inference.device)
        for n, plan in enumerate(plans):
            command = WorkerCommand(
                config=local_worker_config(self.settings, self._local_token, device=plan.device),
                extra_args=ws.extra_args,
                env={"CUDA_VISIBLE_DEVICES": plan.gpu} if plan.gpu is not None else {},
            )
            proc = SupervisedProcess(
                f"local-{n}",
                command,
                backoff_s=ws.restart_backoff_s,
                backoff_max_s=ws.restart_backoff_max_s,
                stop_timeout_s=ws.stop_timeout_s,
            )
            await proc.start()
            handle = WorkerHandle(
                id=proc.worker_id, url=proc.url, local=True, token=self._local_token, gpu=plan.gpu, process=proc
            )
            self.handles.append(handle)
        if self.registry is None:
            for url in self.remote_urls():
                self.handles.append(WorkerHandle(id=url, url=url, local=False, token=ws.token))
        for handle in self.handles:
            self._watch(handle)
        if self.registry is not None:
            registry = self.registry
            urls = self.remote_urls()
            for url in urls:
                try:
                    await asyncio.to_thread(registry.register, url, source="config")
                except ValueError as exc:
                    raise ValueError(f"workers.urls: {url!r} {exc}") from None
            if registry.engine.dialect.name == "sqlite":
                # One gateway per SQLite file: its configuration is the fleet's, so dropped URLs go. On a
                # shared store gateways may differ during a rollout; there DELETE /api/v1/workers/{id} removes.
                await asyncio.to_thread(registry.prune_config, [normalize_url(u) for u in urls])
            self._tasks.append(asyncio.create_task(self._lease_loop(registry), name="worker-leases"))

    def _watch(self, handle: WorkerHandle) -> None:
        self._tasks.append(asyncio.create_task(self._probe_loop(handle), name=f"probe-{handle.id}"))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await asyncio.gather(*(h.process.stop() for h in self.handles if h.process is not None))
        await asyncio.gather(*(client.aclose() for client in self._clients.values()))
        self._clients.clear()
        if self.registry is not None:
            # The dispatcher stopped first: nothing of ours runs on them, so others may take them now.
            try:
                await asyncio.to_thread(self.registry.leave, self.gateway_id)
            except Exception:
                log.exception("handing back worker leases failed; they lapse after workers.lease_s")

    def ready_handles(self) -> list[WorkerHandle]:
        """Every ready worker (models, samplers and /ready show the whole fleet's)."""
        return [h for h in self.handles if h.ready]

    def dispatchable(self) -> list[WorkerHandle]:
        """The ready workers this gateway may send calls to now (the dispatcher's list)."""
        now = time.monotonic()
        return [h for h in self.handles if h.dispatchable(now)]

    # -- shared workers ------------------------------------------------------------------------------

    async def register(self, url: str, *, added_by: str | None) -> tuple[RegisteredWorker, bool]:
        """Record a worker for the whole fleet (``ValueError`` for a bad URL); this gateway follows it at once."""
        registry = self._require_registry()
        found, created = await asyncio.to_thread(registry.register, url, source="api", added_by=added_by)
        await self.lease_now()
        return found, created

    async def unregister(self, worker_id: str) -> RegisteredWorker | None:
        registry = self._require_registry()
        gone = await asyncio.to_thread(registry.remove, worker_id)
        if gone is not None:
            await self.lease_now()
        return gone

    async def registered(self) -> list[RegisteredWorker]:
        return await asyncio.to_thread(self._require_registry().workers)

    def _require_registry(self) -> WorkerRegistry:
        if self.registry is None:
            raise RuntimeError("this gateway has no worker registry")
        return self.registry

    async def lease_now(self) -> None:
        """One lease round now (after a registration), rather than at the loop's next tick."""
        if self.registry is not None:
            await self._lease_round(self.registry)

    async def _lease_loop(self, registry: WorkerRegistry) -> None:
        every = self.settings.workers.lease_s / 3
        while True:
            try:
                await self._lease_round(registry)
            except Exception:
                # The store may be down: the leases held stay usable until they could lapse, then not.
                log.exception("worker lease round failed")
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(every):
                    await self._lease_kick.wait()
            self._lease_kick.clear()

    async def _lease_round(self, registry: WorkerRegistry) -> None:
        async with self._lease_lock:
            # Surplus workers picked last round were kept out of dispatch since; hand back the unused ones.
            release = {h.registry_id for h in self.handles if h.releasing and h.registry_id and not self.in_use(h.id)}
            eligible = {h.registry_id for h in self.handles if h.registry_id and h.ready}
            began = time.monotonic()
            state = await asyncio.to_thread(
                registry.lease_round, self.gateway_id, started_at=self._started_at, release=release, eligible=eligible
            )
            self.lease = state
            # Stop calling a third of a lease before it could lapse: room for a slow round and clock drift.
            valid_until = began + registry.lease_s * 2 / 3
            before = {h.id for h in self.dispatchable()}
            self._follow_registry(state)
            holders = {w.id: w.holder for w in state.workers}
            for handle in self.handles:
                if handle.registry_id is None:
                    continue
                ours = handle.registry_id in state.held
                handle.holder = self.gateway_id if ours else holders.get(handle.registry_id)
                handle.lease_valid_until = valid_until if ours else 0.0
                if not ours:
                    handle.releasing = False
            self._pick_surplus(state)
            if {h.id for h in self.dispatchable()} - before:
                self._changed.set()

    def _follow_registry(self, state: LeaseState) -> None:
        """Add handles for newly registered workers, drop those of removed ones."""
        known = {h.registry_id: h for h in self.handles if h.registry_id is not None}
        listed = {w.id for w in state.workers}
        for worker in state.workers:
            if worker.id not in known:
                handle = WorkerHandle(
                    id=worker.url, url=worker.url, local=False, token=self.settings.workers.token, registry_id=worker.id
                )
                self.handles.append(handle)
                self._watch(handle)
                log.info("shared worker registered: %s", worker.url, extra={"worker_id": worker.url})
        for registry_id, handle in known.items():
            if registry_id not in listed:
                self.handles.remove(handle)
                for task in self._tasks:
                    if task.get_name() == f"probe-{handle.id}":
                        task.cancel()
                log.info("shared worker removed: %s", handle.url, extra={"worker_id": handle.id})

    def _pick_surplus(self, state: LeaseState) -> None:
        """Over the fair share (another gateway joined): stop calling one worker now, preferring one this
        gateway is not using; the next round hands it back once unused."""
        mine = [h for h in self.handles if h.registry_id in state.held]
        if len(mine) <= state.share:
            for handle in mine:
                handle.releasing = False  # a gateway left meanwhile: keep them
            return
        surplus = len(mine) - state.share - sum(h.releasing for h in mine)
        for handle in sorted(mine, key=lambda h: (self.in_use(h.id), not h.ready)):
            if surplus <= 0:
                break
            if not handle.releasing:
                handle.releasing = True
                surplus -= 1
                log.info("handing back worker lease (fair share %d)", state.share, extra={"worker_id": handle.id})

    def statuses(self) -> list[WorkerStatus]:
        return [h.status() for h in self.handles]

    def models(self) -> list[ModelInfo]:
        """Models of the ready workers, one entry per id (loaded if any worker has it loaded)."""
        merged: dict[str, ModelInfo] = {}
        for handle in self.ready_handles():
            for model in handle.models:
                known = merged.get(model.id)
                if known is None:
                    merged[model.id] = model
                elif model.loaded and not known.loaded:
                    merged[model.id] = known.model_copy(update={"loaded": True})
        return sorted(merged.values(), key=lambda m: m.id)

    def models_known(self) -> bool:
        """Whether any worker has reported its models, i.e. whether an unknown id can be told apart from
        a worker that has not started yet."""
        return any(h.ready for h in self.handles)

    async def wait_changed(self, timeout: float) -> None:
        """Sleep until some worker's readiness changes, or ``timeout``."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._changed.wait(), timeout)
        self._changed.clear()

    def mark_lost(self, handle: WorkerHandle, reason: str) -> None:
        """The dispatcher saw the worker fail mid-call: take it out of rotation until a probe says ready."""
        if handle.ready:
            log.warning("worker lost: %s", reason, extra={"worker_id": handle.id})
        handle.ready = False
        handle.last_error = reason
        self._changed.set()

    async def _client(self, handle: WorkerHandle) -> WorkerClient:
        """The handle's client, replaced (and the old one closed) when a restarted worker got a new port."""
        client = self._clients.get(handle.id)
        if client is None or client.base_url != handle.url.rstrip("/"):
            if client is not None:
                await client.aclose()
            client = self._clients[handle.id] = WorkerClient(handle.url, token=handle.token, timeout=_PROBE_TIMEOUT_S)
        return client

    async def _probe_loop(self, handle: WorkerHandle) -> None:
        interval = self.settings.workers.probe_interval_s
        while True:
            if handle.process is not None:
                handle.url = handle.process.url  # a restarted worker may have a new port
            before = (handle.ready, handle.last_error)
            await self._probe(handle)
            if (handle.ready, handle.last_error) != before:
                self._log_state(handle, was_ready=before[0])
                if handle.ready and handle.process is not None:
                    handle.process.mark_healthy()
                if handle.ready != before[0]:
                    self._changed.set()
                    if handle.ready and handle.shared and handle.holder != self.gateway_id:
                        self._lease_kick.set()
            await asyncio.sleep(interval if handle.ready else _FAST_PROBE_S)

    @staticmethod
    def _log_state(handle: WorkerHandle, *, was_ready: bool) -> None:
        extra: dict[str, Any] = {"worker_id": handle.id}
        if handle.ready:
            log.info("worker ready on %s", handle.device, extra=extra)
        elif handle.incompatible:
            log.error("worker refused: %s", handle.last_error, extra=extra)
        else:
            # A worker that is still starting is expected to be unready; one that was serving is news.
            level = logging.WARNING if was_ready else logging.INFO
            log.log(level, "worker not ready: %s", handle.last_error, extra=extra)

    async def _probe(self, handle: WorkerHandle) -> None:
        client = await self._client(handle)
        try:
            reason = await client.not_ready_reason()
            if reason is None:
                info = handle.info = await client.info()
                reason = incompatible_protocol(info.protocol_version)
                handle.incompatible = reason is not None
            if reason is not None:
                handle.ready = False
                handle.last_error = reason
                return
            models = await client.models()
        except WorkerError as exc:
            handle.ready = False
            handle.last_error = f"probe failed: {_without_address(str(exc), handle.url)}"
            return
        except ValueError as exc:  # an answer that is not the protocol's shape
            handle.ready = False
            handle.last_error = f"probe failed: unreadable answer: {exc.__class__.__name__}"
            return
        handle.device = info.device
        handle.busy = info.busy
        handle.models = models.models
        handle.last_error = None
        handle.ready = True


def _without_address(message: str, url: str) -> str:
    # The URL is in the worker's status already; without it, messages of one failure compare equal across
    # a restart onto a new port (one log line, not one per port).
    return message.replace(url, "worker")


def local_worker_config(settings: Settings, token: str, *, device: str | None = None) -> dict[str, Any]:
    """What a local worker gets of the gateway's configuration: the sections it shares with the worker, in the
    gateway's own shape (the worker reads that shape, see ``worker/settings.py``), so every model setting
    reaches it without a flag per key, plus the token this gateway calls it with."""
    return {
        "inference": {"device": device or settings.inference.device},
        "storage": {"models_dir": str(settings.storage.models_dir)},
        "models": settings.models.model_dump(mode="json"),
        "workers": {"token": token},
    }
