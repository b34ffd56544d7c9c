"""LRU cache of loaded pipelines, keyed by model id.

Switching back to a cached model never reloads from disk. With ``offload_idle`` the pipelines not in use
wait in CPU memory (a device copy costs far less than a disk load). Only the generation thread uses the
cache; the lock just keeps /v1/info's view consistent.
"""

from __future__ import annotations

import ctypes
import gc
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from ablerefusal.worker.engine.devices import DeviceInfo
from ablerefusal.worker.engine.registry import ModelEntry


def _malloc_trim() -> Callable[[int], int] | None:
    try:
        trim: Callable[[int], int] = ctypes.CDLL("libc.so.6").malloc_trim
    except (OSError, AttributeError):  # not glibc (macOS, musl): nothing to hand back this way
        return None
    return trim


_TRIM = _malloc_trim()


def release_freed_heap() -> None:
    """Give the heap freed by an evicted pipeline back to the OS. glibc keeps freed blocks in its arenas: without
    this a worker that switches models kept growing, about 6 MiB per 100 reloads (benchmarks/soak.py)."""
    if _TRIM is not None:
        _TRIM(0)


@dataclass
class Resident:
    pipe: Any
    entry: ModelEntry
    on_device: bool = True
    cpu_offload: bool = False  # accelerate model-offload hooks installed
    flags: dict[str, bool] = field(default_factory=dict)  # memory switches currently applied
    scheduler_config: dict[str, Any] = field(default_factory=dict)  # the model's own, before any sampler swap
    lora_state: Any = None  # engine.adapters.loras.LoraState: the LoRAs loaded into this pipeline

    def __post_init__(self) -> None:
        if not self.scheduler_config:
            self.scheduler_config = dict(self.pipe.scheduler.config)


class PipelineCache:
    def __init__(
        self,
        capacity: int,
        device: DeviceInfo,
        loader: Callable[[ModelEntry], Any],
        offload_idle: bool = False,
    ) -> None:
        self.capacity = capacity
        self.device = device
        self.loader = loader
        self.offload_idle = offload_idle and device.device.type != "cpu"
        self._items: OrderedDict[str, Resident] = OrderedDict()
        self._lock = threading.Lock()
        self.loads = 0  # disk loads so far (tests use it to prove a switch back does not reload)

    def get(self, entry: ModelEntry) -> tuple[Resident, float]:
        """The resident pipeline for ``entry`` (loading it if needed) and the seconds spent loading/moving."""
        start = time.perf_counter()
        with self._lock:
            resident = self._items.get(entry.id)
            if resident is not None:
                self._items.move_to_end(entry.id)
        if resident is None:
            # Evict before loading: loading first would hold capacity + 1 pipelines at the peak of a switch.
            self._evict_down_to(self.capacity - 1)
            resident = Resident(pipe=self.loader(entry), entry=entry)
            with self._lock:
                self.loads += 1
                self._items[entry.id] = resident
        if self.offload_idle:
            for other_id, other in list(self._items.items()):
                if other_id != entry.id and other.on_device and not other.cpu_offload:
                    other.pipe.to("cpu")
                    other.on_device = False
        if not resident.on_device:
            resident.pipe.to(self.device.device)
            resident.on_device = True
        return resident, time.perf_counter() - start

    def _evict_down_to(self, size: int) -> None:
        with self._lock:
            evicted = []
            while len(self._items) > size:
                evicted.append(self._items.popitem(last=False)[1])
        if not evicted:
            return
        del evicted  # the last references to those pipelines
        gc.collect()
        release_freed_heap()
        if self.device.is_cuda:
            torch.cuda.empty_cache()

    def loaded_ids(self) -> list[str]:
        with self._lock:
            return list(self._items)

    def peek(self, model_id: str) -> Resident | None:
        with self._lock:
            return self._items.get(model_id)
