"""Samplers → diffusers schedulers. The table and the name resolver are torch-free and shared with the gateway
(``ablerefusal.samplers``); this module only builds the scheduler, always from the model's own scheduler config,
so the training schedule (betas, timestep spacing, prediction type) comes from the model.
"""

from __future__ import annotations

from typing import Any

from ablerefusal.samplers import Sampler


def build_scheduler(sampler: Sampler, base_config: dict[str, Any], seeds: list[int] | None = None) -> Any:
    """A fresh scheduler of the sampler's class from the model's own scheduler config.

    ``seeds`` (one per image) seed the per-image noise of samplers that do not draw it from the generators.
    """
    import diffusers

    cls = getattr(diffusers, sampler.scheduler)
    # Configs carry the class that wrote them; from_config ignores keys the new class does not know.
    config = {k: v for k, v in base_config.items() if not k.startswith("_")}
    options = dict(sampler.options)
    if sampler.brownian_seeds and seeds is not None:
        options["noise_sampler_seed"] = list(seeds)
    return cls.from_config({**config, **options})
