"""The pool of workers the dispatcher may use: local supervised processes and remote URLs.

Each worker is probed on ``/v1/ready`` (and, once ready, ``/v1/info`` and ``/v1/models``); one that stops
answering leaves the rotation until it answers again. The pool never sends generation calls itself: the
dispatcher takes the ready handles from ``ready_handles()``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field

import httpx

from ablerefusal.gateway.schemas import WorkerStatus
from ablerefusal.gateway.settings import Settings
from ablerefusal.gateway.workers.supervisor import SupervisedProcess, WorkerCommand
from ablerefusal.protocol import ModelInfo, ModelList, WorkerInfo

log = logging.getLogger(__name__)

# While a worker is not ready yet, probe it often: readiness after start is what a user waits for.
_FAST_PROBE_S = 0.2


@dataclass
class WorkerHandle:
    """What the gateway knows about one worker; the dispatcher reads it, only the pool writes it."""

    id: str
    url: str
    local: bool
    ready: bool = False
    busy: bool = False
    device: str | None = None
    models: list[ModelInfo] = field(default_factory=list)
    info: WorkerInfo | None = None
    last_error: str | None = None
    process: SupervisedProcess | None = None

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
            restarts=self.restarts,
            last_error=self.last_error or (self.process.last_error if self.process else None),
        )


class WorkerPool:
    def __init__(self, settings: Settings, *, local_workers: int | None = None) -> None:
        self.settings = settings
        self._local = settings.workers.local if local_workers is None else local_workers
        self.handles: list[WorkerHandle] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._client = httpx.AsyncClient(timeout=httpx.Timeout(5.0))
        self._changed = asyncio.Event()

    def remote_urls(self) -> list[str]:
        urls = list(self.settings.workers.urls)
        seed_url = self.settings.inference.python_service_url
        if seed_url and seed_url not in urls:
            urls.append(seed_url)
        return [u.rstrip("/") for u in urls]

    async def start(self) -> None:
        ws = self.settings.workers
        command = WorkerCommand(
            device=self.settings.inference.device,
            models_dir=self.settings.storage.models_dir,
            allow_pickle=self.settings.models.allow_pickle,
            extra_args=ws.extra_args,
        )
        for n in range(self._local):
            proc = SupervisedProcess(
                f"local-{n}",
                command,
                backoff_s=ws.restart_backoff_s,
                backoff_max_s=ws.restart_backoff_max_s,
                stop_timeout_s=ws.stop_timeout_s,
            )
            await proc.start()
            self.handles.append(WorkerHandle(id=proc.worker_id, url=proc.url, local=True, process=proc))
        for url in self.remote_urls():
            self.handles.append(WorkerHandle(id=url, url=url, local=False))
        for handle in self.handles:
            self._tasks.append(asyncio.create_task(self._probe_loop(handle), name=f"probe-{handle.id}"))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await asyncio.gather(*(h.process.stop() for h in self.handles if h.process is not None))
        await self._client.aclose()

    def ready_handles(self) -> list[WorkerHandle]:
        return [h for h in self.handles if h.ready]

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

    async def _probe_loop(self, handle: WorkerHandle) -> None:
        interval = self.settings.workers.probe_interval_s
        while True:
            if handle.process is not None:
                handle.url = handle.process.url  # a restarted worker may have a new port
            was_ready = handle.ready
            await self._probe(handle)
            if handle.ready != was_ready:
                level = logging.INFO if handle.ready else logging.WARNING
                log.log(
                    level,
                    "worker %s",
                    "ready" if handle.ready else "not ready",
                    extra={"worker_id": handle.id},
                )
                if handle.ready and handle.process is not None:
                    handle.process.mark_healthy()
                self._changed.set()
            await asyncio.sleep(interval if handle.ready else _FAST_PROBE_S)

    async def _probe(self, handle: WorkerHandle) -> None:
        try:
            ready = await self._client.get(f"{handle.url}/v1/ready")
            if ready.status_code != 200:
                handle.ready = False
                handle.last_error = f"/v1/ready answered {ready.status_code}"
                return
            info = WorkerInfo.model_validate_json((await self._client.get(f"{handle.url}/v1/info")).content)
            models = ModelList.model_validate_json((await self._client.get(f"{handle.url}/v1/models")).content)
        except (httpx.HTTPError, ValueError) as exc:
            handle.ready = False
            handle.last_error = f"probe failed: {type(exc).__name__}: {exc}"
            return
        handle.info = info
        handle.device = info.device
        handle.busy = info.busy
        handle.models = models.models
        handle.last_error = None
        handle.ready = True
