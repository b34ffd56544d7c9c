"""The pool of workers the dispatcher may use: local supervised processes and remote URLs.

Each worker is probed through its ``WorkerClient`` on ``/v1/ready`` (and, once ready, ``/v1/info`` and
``/v1/models``); one that stops answering leaves the rotation until it answers again, and one speaking another
major protocol version never enters it. A probe is logged only when it changes what the gateway knows of the
worker (ready, or the reason it is not). The pool never sends generation calls itself: the dispatcher takes
the ready handles from ``ready_handles()``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from dataclasses import dataclass, field
from typing import Any

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
        )


class WorkerPool:
    def __init__(self, settings: Settings, *, local_workers: int | str | None = None) -> None:
        self.settings = settings
        self._local = settings.workers.local if local_workers is None else local_workers
        self.handles: list[WorkerHandle] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._clients: dict[str, WorkerClient] = {}
        self._changed = asyncio.Event()
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
        for url in self.remote_urls():
            self.handles.append(WorkerHandle(id=url, url=url, local=False, token=ws.token))
        for handle in self.handles:
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
