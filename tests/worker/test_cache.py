"""The pipeline cache with the real tiny models: a full cache evicts before it loads the next model."""

from __future__ import annotations

import gc
import weakref
from pathlib import Path
from typing import Any

from ablerefusal.worker.engine.cache import PipelineCache
from ablerefusal.worker.engine.devices import resolve_device
from ablerefusal.worker.engine.loading import load_pipeline
from ablerefusal.worker.engine.registry import ModelEntry, ModelRegistry


def test_a_full_cache_evicts_before_loading_the_next_model(tiny_models_dir: Path) -> None:
    device = resolve_device("cpu")
    registry = ModelRegistry(tiny_models_dir, [], allow_pickle=False)
    entries = registry.scan()
    alive: list[weakref.ref[Any]] = []
    seen_at_load: list[tuple[list[str], int]] = []

    def loader(entry: ModelEntry) -> Any:
        # What is resident while the next pipeline is being read: that is the switch's peak memory.
        gc.collect()
        seen_at_load.append((cache.loaded_ids(), sum(ref() is not None for ref in alive)))
        pipe = load_pipeline(entry, device, allow_pickle=False)
        alive.append(weakref.ref(pipe))
        return pipe

    cache = PipelineCache(1, device, loader)
    cache.get(entries["tiny-sd15"])
    cache.get(entries["tiny-sdxl"])
    assert seen_at_load == [([], 0), ([], 0)]  # the SD 1.5 pipeline was gone (freed) before SDXL loaded
    assert cache.loaded_ids() == ["tiny-sdxl"] and cache.loads == 2


def test_a_cache_with_room_keeps_what_it_has(tiny_models_dir: Path) -> None:
    device = resolve_device("cpu")
    entries = ModelRegistry(tiny_models_dir, [], allow_pickle=False).scan()
    cache = PipelineCache(2, device, lambda entry: load_pipeline(entry, device, allow_pickle=False))
    first, _ = cache.get(entries["tiny-sd15"])
    cache.get(entries["tiny-sdxl"])
    assert cache.loaded_ids() == ["tiny-sd15", "tiny-sdxl"]
    assert cache.get(entries["tiny-sd15"])[0] is first and cache.loads == 2
