"""Model switches leave no Python objects behind.

safetensors' default (mmap) reads leaked two ``int`` objects per tensor read, so a worker that evicts and loads
models grew by a few KiB per load for as long as it ran (engine/safetensors_reads.py). Counted with tracemalloc:
blocks allocated during the later loads and still held after them; nothing here depends on timing or RSS.
"""

from __future__ import annotations

import gc
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import pytest

from ablerefusal.worker.engine.devices import resolve_device
from ablerefusal.worker.engine.loading import load_pipeline
from ablerefusal.worker.engine.registry import ModelRegistry
from ablerefusal.worker.engine.safetensors_reads import library_safe_open


def blocks_kept(action: Callable[[], object], warm: int, repeats: int) -> int:
    """Blocks allocated by the last ``repeats`` of ``warm + repeats`` runs of ``action`` and still held after
    them. The warm runs fill whatever the libraries keep for good (caches, the last load's leftovers) first."""
    was_tracing = tracemalloc.is_tracing()
    if not was_tracing:
        tracemalloc.start(1)
    try:
        for _ in range(warm):
            action()
        gc.collect()
        before = tracemalloc.take_snapshot()
        for _ in range(repeats):
            action()
        gc.collect()
        after = tracemalloc.take_snapshot()
    finally:
        if not was_tracing:
            tracemalloc.stop()
    return sum(stat.count_diff for stat in after.compare_to(before, "filename"))


@pytest.mark.parametrize("model_id", ["tiny-sdxl", "tiny-sd15-single"])
def test_loading_a_model_again_and_again_keeps_no_python_objects(tiny_models_dir: Path, model_id: str) -> None:
    device = resolve_device("cpu")
    entry = ModelRegistry(tiny_models_dir, [], allow_pickle=False).scan()[model_id]
    tensors: list[int] = []

    def load_and_drop() -> None:
        pipe = load_pipeline(entry, device, allow_pickle=False)
        parts = [pipe.unet, pipe.vae, pipe.text_encoder, getattr(pipe, "text_encoder_2", None)]
        tensors.append(sum(len(part.state_dict()) for part in parts if part is not None))

    repeats = 3
    kept = blocks_kept(load_and_drop, warm=2, repeats=repeats)
    # With the leak: two ints per tensor per load (~2 x 465 x 3 for tiny SDXL); without: a handful at most.
    assert kept < tensors[0], f"{kept} blocks kept over {repeats} loads of {tensors[0]} tensors each"


def test_safetensors_own_mmap_reads_still_leak(tiny_sd15: Path) -> None:
    """Why engine/safetensors_reads.py exists. When this fails, safetensors reads without leaking: that module
    (the pread switch) can go."""
    path = str(tiny_sd15 / "unet" / "diffusion_pytorch_model.safetensors")
    safe_open = library_safe_open()
    with safe_open(path, framework="pt", backend="mmap") as f:
        names = list(f.keys())

    def read_all(backend: str) -> None:
        with safe_open(path, framework="pt", backend=backend) as f:
            for name in names:
                f.get_tensor(name)

    repeats = 3
    assert blocks_kept(lambda: read_all("mmap"), warm=1, repeats=repeats) >= 2 * len(names) * repeats
    assert blocks_kept(lambda: read_all("pread"), warm=1, repeats=repeats) < len(names)
