"""What the ready workers list of each model kind: checkpoints, LoRAs, embeddings, ControlNets, VAEs,
upscalers (worker ``GET /v1/models?kind=``).

Checkpoints come from the pool's probes (every probe reads them). The other kinds are asked for only when
something needs them (a job naming a LoRA, a listing), and kept for ``ttl_s``: a plain job costs no worker
request, and a burst of adapter jobs costs one per worker. A name missing from a kept listing is looked up
again before a job is refused (gateway/adapters.py), so a file copied into ``models/loras`` is usable at once.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass

import httpx

from ablerefusal.gateway.schemas import ModelKind
from ablerefusal.gateway.workers.client import WorkerClient, WorkerError
from ablerefusal.gateway.workers.pool import WorkerHandle, WorkerPool
from ablerefusal.protocol import ModelInfo, PreprocessorInfo

log = logging.getLogger(__name__)

DEFAULT_TTL_S = 5.0
_LIST_TIMEOUT = httpx.Timeout(10.0, connect=5.0)


@dataclass
class _Listing:
    at: float
    workers: frozenset[str]  # the ready workers it was read from: another set means another listing
    models: list[ModelInfo]


def merge(listings: list[list[ModelInfo]]) -> list[ModelInfo]:
    """One entry per id across workers (loaded if any worker has it loaded), sorted by id."""
    merged: dict[str, ModelInfo] = {}
    for models in listings:
        for model in models:
            known = merged.get(model.id)
            if known is None:
                merged[model.id] = model
            elif model.loaded and not known.loaded:
                merged[model.id] = known.model_copy(update={"loaded": True})
    return sorted(merged.values(), key=lambda m: m.id)


def kind_of(model: ModelInfo) -> str:
    # Workers older than the adapters issue know only checkpoints (and ignore ?kind=).
    return str(getattr(model, "kind", ModelKind.checkpoint.value))


class ModelCatalog:
    """Model listings of the ready workers by kind, for validation and the listing endpoints."""

    def __init__(self, pool: WorkerPool, *, ttl_s: float = DEFAULT_TTL_S) -> None:
        self.pool = pool
        self.ttl_s = ttl_s
        self._kept: dict[ModelKind, _Listing] = {}
        self._locks: dict[ModelKind, asyncio.Lock] = {}
        self._preprocessors: tuple[float, frozenset[str], list[PreprocessorInfo]] | None = None

    def known(self) -> bool:
        """Whether any worker is ready, i.e. whether a missing name can be told from a worker not started."""
        return self.pool.models_known()

    async def listing(self, kind: ModelKind, *, refresh: bool = False) -> list[ModelInfo]:
        """Every model of ``kind`` on the ready workers; ``refresh`` reads the workers again."""
        if kind is ModelKind.checkpoint:
            return self.pool.models()
        handles = self.pool.ready_handles()
        workers = frozenset(h.id for h in handles)
        lock = self._locks.setdefault(kind, asyncio.Lock())
        async with lock:
            kept = self._kept.get(kind)
            fresh = kept is not None and kept.workers == workers and time.monotonic() - kept.at < self.ttl_s
            if kept is not None and fresh and not refresh:
                return kept.models
            models = await self._read(kind, handles)
            self._kept[kind] = _Listing(time.monotonic(), workers, models)
            return models

    async def preprocessors(self) -> list[PreprocessorInfo]:
        """ControlNet preprocessors of the ready workers, one entry per id (available if any worker runs it)."""
        handles = self.pool.ready_handles()
        workers = frozenset(h.id for h in handles)
        kept = self._preprocessors
        if kept is not None and kept[1] == workers and time.monotonic() - kept[0] < self.ttl_s:
            return kept[2]
        merged: dict[str, PreprocessorInfo] = {}
        async with httpx.AsyncClient(timeout=_LIST_TIMEOUT) as http:
            for handle in handles:
                client = WorkerClient(handle.url, token=handle.token, http=http)
                try:
                    listed = await client.controlnet_preprocessors()
                except (WorkerError, ValueError) as exc:
                    log.warning("listing preprocessors failed: %s", exc, extra={"worker_id": handle.id})
                    continue
                for info in listed.preprocessors:
                    if info.id not in merged or (info.available and not merged[info.id].available):
                        merged[info.id] = info
        found = sorted(merged.values(), key=lambda p: p.id)
        self._preprocessors = (time.monotonic(), workers, found)
        return found

    async def _read(self, kind: ModelKind, handles: list[WorkerHandle]) -> list[ModelInfo]:
        async with httpx.AsyncClient(timeout=_LIST_TIMEOUT) as http:
            answers = await asyncio.gather(*(self._read_one(http, h, kind) for h in handles))
        return merge(answers)

    @staticmethod
    async def _read_one(http: httpx.AsyncClient, handle: WorkerHandle, kind: ModelKind) -> list[ModelInfo]:
        client = WorkerClient(handle.url, token=handle.token, http=http)
        try:
            listed = await client.models(kind.value)
        except WorkerError as exc:
            if exc.status_code == 400:
                # A worker that has no files of this kind (upscaler models, on this version) says so with a 400.
                log.debug("worker lists no %s models: %s", kind.value, exc, extra={"worker_id": handle.id})
                return []
            log.warning("listing %s models failed: %s", kind.value, exc, extra={"worker_id": handle.id})
            return []
        except ValueError as exc:
            # That worker's files are left out; the probe decides whether it stays in rotation.
            log.warning("listing %s models failed: %s", kind.value, exc, extra={"worker_id": handle.id})
            return []
        return [m for m in listed.models if kind_of(m) == kind.value]
