"""Noise routing: the same draws as diffusers' ``randn_tensor``, copied to CUDA without a stream sync."""

from __future__ import annotations

import sys

import pytest
import torch
from diffusers.utils import torch_utils

from ablerefusal.samplers import resolve_sampler, sampler_spec
from ablerefusal.testing.tiny import build_tiny_pipeline
from ablerefusal.worker.engine import noise
from ablerefusal.worker.engine.samplers import build_scheduler


def generators(*seeds: int) -> list[torch.Generator]:
    return [torch.Generator("cpu").manual_seed(s) for s in seeds]


def test_route_noise_points_pipeline_and_scheduler_modules_at_it() -> None:
    pipe = build_tiny_pipeline("sd15")
    sampler = sampler_spec(resolve_sampler("euler_a").id)
    pipe.scheduler = build_scheduler(sampler, dict(pipe.scheduler.config), [1])
    noise.route_noise(pipe, pipe.scheduler)
    for obj in (pipe, pipe.scheduler):
        assert sys.modules[type(obj).__module__].randn_tensor is noise.randn_tensor  # type: ignore[attr-defined]
    # Idempotent, and the library's own function stays what other callers get.
    assert noise.route_noise(pipe, pipe.scheduler) == []
    assert torch_utils.randn_tensor is not noise.randn_tensor


@pytest.mark.parametrize("seeds", [(5,), (5, 6, 7)])
def test_cpu_draws_are_diffusers_draws(seeds: tuple[int, ...]) -> None:
    shape = (len(seeds), 4, 8, 8)
    ours = noise.randn_tensor(shape, generator=generators(*seeds), device=torch.device("cpu"), dtype=torch.float32)
    theirs = torch_utils.randn_tensor(shape, generator=generators(*seeds), device=torch.device("cpu"))
    assert torch.equal(ours, theirs)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_draws_are_diffusers_draws_without_a_sync() -> None:
    shape = (3, 4, 64, 64)
    cuda = torch.device("cuda")
    ours = noise.randn_tensor(shape, generator=generators(1, 2, 3), device=cuda, dtype=torch.float16)
    theirs = torch_utils.randn_tensor(shape, generator=generators(1, 2, 3), device=cuda, dtype=torch.float16)
    assert ours.device.type == "cuda" and torch.equal(ours, theirs)
