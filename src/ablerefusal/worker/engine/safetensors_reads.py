"""Safetensors files are read through ``pread``, not safetensors' default mmap-backed torch storage, which leaks.

With ``backend="mmap"`` (the default) safetensors serves each PyTorch tensor by slicing a file-backed
``torch.UntypedStorage`` with a ``slice`` built by PyO3's ``PySlice::new``. That function hands ``PySlice_New``
two fresh ``int`` objects (the tensor's start and stop offsets) and never releases its own references, so every
tensor read leaves two ints (~64 bytes) behind for good: ~1,100 tensors per SD 1.5 load, ~2,600 per SDXL load,
the same for every LoRA, VAE and ControlNet file read. A worker that switches models grew without bound
(``benchmarks/switch_memory.py``: ~55 KiB per load/evict cycle of the two tiny models, all of it in these ints).
Measured with safetensors 0.8.0 (0.7 builds the slice the same way); ``tests/worker/test_switch_memory.py``
says when that stops being true.

The ``pread`` backend (safetensors >= 0.8) reads each tensor into a buffer of its own and builds no slice. The
bytes are read once either way; on a CPU worker the weights then sit in anonymous memory instead of a private
file mapping, the same size. diffusers and transformers do not let a caller choose the backend, so the worker
swaps the ``safe_open`` that their load paths call: ``safetensors.torch`` (whose ``load_file`` serves
diffusers' models, single files, LoRAs and our embeddings), ``transformers.modeling_utils`` (text encoders) and
``safetensors`` itself (function-level ``from safetensors import safe_open``).
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

_MARK = "_ablerefusal_pread"
_TORCH_FRAMEWORKS = ("pt", "torch", "pytorch")


def _pread_safe_open(original: Any) -> Any:
    def safe_open(filename: Any, framework: str, *args: Any, **kwargs: Any) -> Any:
        # Only PyTorch's mmap path builds the leaking slices; other frameworks get what they asked for.
        if framework in _TORCH_FRAMEWORKS and kwargs.get("backend", "mmap") == "mmap":
            kwargs["backend"] = "pread"
        return original(filename, framework, *args, **kwargs)

    setattr(safe_open, _MARK, original)
    return safe_open


def _modules() -> list[ModuleType]:
    import safetensors
    import safetensors.torch
    import transformers.modeling_utils

    return [safetensors, safetensors.torch, transformers.modeling_utils]


def read_safetensors_by_pread() -> None:
    """Route the worker's safetensors reads through ``pread`` (idempotent; process-wide)."""
    for module in _modules():
        current = module.safe_open
        if not hasattr(current, _MARK):
            module.safe_open = _pread_safe_open(current)  # type: ignore[attr-defined]


def library_safe_open() -> Any:
    """safetensors' own ``safe_open`` (what the test and the benchmark compare against)."""
    import safetensors

    current = safetensors.safe_open
    return getattr(current, _MARK, current)
