"""Noise drawn by per-image CPU generators reaches a CUDA device without stalling the GPU queue.

We give diffusers one CPU generator per image, so that a seed makes the same image on every device and in
every batch. diffusers' ``randn_tensor`` then draws on the CPU and moves the noise with a blocking
``.to(device)``, and a blocking host→device copy synchronises the CUDA stream. Ancestral and SDE samplers
draw fresh noise at every step, so the GPU would drain its queue once per step and sit idle while the CPU
prepares the next one (scheduler arithmetic, guidance, a CUDA-graph launch): with a compiled UNet that
idle time is a visible share of a step.

``randn_tensor`` below makes the very same draws, then copies them through pinned memory with
``non_blocking=True``: identical numbers, no stall. PyTorch's pinned-memory cache keeps the host block
alive until the copy has run. ``route_noise`` points the pipeline's and scheduler's modules at it.
"""

from __future__ import annotations

import sys
from typing import Any

import torch
from diffusers.utils import torch_utils

_DIFFUSERS_RANDN = torch_utils.randn_tensor


def _cpu_generators(generator: Any) -> bool:
    gens = generator if isinstance(generator, list) else [generator]
    return bool(gens) and all(isinstance(g, torch.Generator) and g.device.type == "cpu" for g in gens)


def randn_tensor(
    shape: Any,
    generator: Any = None,
    device: Any = None,
    dtype: Any = None,
    layout: Any = None,
) -> torch.Tensor:
    """diffusers' ``randn_tensor``, with CPU-generated noise copied to CUDA asynchronously."""
    target = torch.device(device) if isinstance(device, str) else device
    if target is None or target.type != "cuda" or not _cpu_generators(generator):
        return _DIFFUSERS_RANDN(shape, generator=generator, device=device, dtype=dtype, layout=layout)
    noise = _DIFFUSERS_RANDN(shape, generator=generator, device=torch.device("cpu"), dtype=dtype, layout=layout)
    return noise.pin_memory().to(target, non_blocking=True)


def route_noise(*objects: Any) -> list[str]:
    """Make the modules defining these objects' classes and bases (a pipeline, a scheduler) draw noise
    with ``randn_tensor`` above; returns the modules changed now. Idempotent, and only diffusers' own
    function is replaced."""
    changed = []
    for obj in objects:
        for cls in type(obj).__mro__:
            module = sys.modules.get(cls.__module__)
            if module is not None and getattr(module, "randn_tensor", None) is _DIFFUSERS_RANDN:
                module.randn_tensor = randn_tensor  # type: ignore[attr-defined]
                changed.append(module.__name__)
    return changed
