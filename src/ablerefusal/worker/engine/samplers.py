"""Sampler names: AUTOMATIC1111 display names, short API ids, and the diffusers scheduler each maps to.

``SAMPLERS`` (a list of ``protocol.SamplerInfo``) and ``resolve`` are importable without torch or diffusers,
so the gateway validates sampler names with them; only ``build_scheduler`` imports diffusers. The table
``SAMPLER_SPECS`` holds what each id maps to. Every scheduler is built from the model's own scheduler config, so
the training schedule (betas, timestep spacing, prediction type) always comes from the model.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from ablerefusal.protocol import SamplerInfo


@dataclass(frozen=True)
class Sampler:
    id: str
    name: str
    scheduler: str
    options: dict[str, Any] = field(default_factory=dict)
    aliases: tuple[str, ...] = ()
    # torchsde's Brownian-tree noise is seeded apart from the torch generators: one tree per image, seeded
    # with the image's seed, keeps such samplers deterministic and batch-invariant.
    brownian_seeds: bool = False


_KARRAS = {"use_karras_sigmas": True}
_EXPONENTIAL = {"use_exponential_sigmas": True}
# A1111's "SGM Uniform" schedule: evenly spaced timesteps ending at the last training step.
_SGM_UNIFORM = {"timestep_spacing": "trailing"}

SAMPLER_SPECS: tuple[Sampler, ...] = (
    Sampler("euler", "Euler", "EulerDiscreteScheduler"),
    Sampler("euler_karras", "Euler Karras", "EulerDiscreteScheduler", _KARRAS),
    Sampler("euler_sgm_uniform", "Euler SGM Uniform", "EulerDiscreteScheduler", _SGM_UNIFORM),
    Sampler("euler_a", "Euler a", "EulerAncestralDiscreteScheduler", aliases=("euler_ancestral",)),
    Sampler("heun", "Heun", "HeunDiscreteScheduler"),
    Sampler("heun_karras", "Heun Karras", "HeunDiscreteScheduler", _KARRAS),
    Sampler("lms", "LMS", "LMSDiscreteScheduler"),
    Sampler("lms_karras", "LMS Karras", "LMSDiscreteScheduler", _KARRAS),
    Sampler("dpm2", "DPM2", "KDPM2DiscreteScheduler"),
    Sampler("dpm2_karras", "DPM2 Karras", "KDPM2DiscreteScheduler", _KARRAS),
    Sampler("dpm2_a", "DPM2 a", "KDPM2AncestralDiscreteScheduler", aliases=("dpm2_ancestral",)),
    Sampler("dpm2_a_karras", "DPM2 a Karras", "KDPM2AncestralDiscreteScheduler", _KARRAS),
    Sampler("dpmpp_2m", "DPM++ 2M", "DPMSolverMultistepScheduler", {"algorithm_type": "dpmsolver++"}),
    Sampler(
        "dpmpp_2m_karras",
        "DPM++ 2M Karras",
        "DPMSolverMultistepScheduler",
        {"algorithm_type": "dpmsolver++", **_KARRAS},
    ),
    Sampler(
        "dpmpp_2m_exponential",
        "DPM++ 2M Exponential",
        "DPMSolverMultistepScheduler",
        {"algorithm_type": "dpmsolver++", **_EXPONENTIAL},
    ),
    Sampler(
        "dpmpp_2m_sgm_uniform",
        "DPM++ 2M SGM Uniform",
        "DPMSolverMultistepScheduler",
        {"algorithm_type": "dpmsolver++", **_SGM_UNIFORM},
    ),
    Sampler("dpmpp_2m_sde", "DPM++ 2M SDE", "DPMSolverMultistepScheduler", {"algorithm_type": "sde-dpmsolver++"}),
    Sampler(
        "dpmpp_2m_sde_karras",
        "DPM++ 2M SDE Karras",
        "DPMSolverMultistepScheduler",
        {"algorithm_type": "sde-dpmsolver++", **_KARRAS},
    ),
    Sampler(
        "dpmpp_2m_sde_exponential",
        "DPM++ 2M SDE Exponential",
        "DPMSolverMultistepScheduler",
        {"algorithm_type": "sde-dpmsolver++", **_EXPONENTIAL},
    ),
    Sampler("dpmpp_sde", "DPM++ SDE", "DPMSolverSDEScheduler", brownian_seeds=True),
    Sampler("ddim", "DDIM", "DDIMScheduler"),
    Sampler("plms", "PLMS", "PNDMScheduler", {"skip_prk_steps": True}),
    Sampler("unipc", "UniPC", "UniPCMultistepScheduler"),
    Sampler("deis", "DEIS", "DEISMultistepScheduler"),
    Sampler("lcm", "LCM", "LCMScheduler"),
)

SAMPLER_IDS: tuple[str, ...] = tuple(s.id for s in SAMPLER_SPECS)
SAMPLERS: list[SamplerInfo] = [SamplerInfo(id=s.id, name=s.name, aliases=list(s.aliases)) for s in SAMPLER_SPECS]


def _key(name: str) -> str:
    # "DPM++ 2M Karras", "dpmpp_2m_karras" and "dpm++-2m karras" all name the same sampler.
    return re.sub(r"[\s_\-]+", "_", name.strip().lower().replace("++", "pp"))


_LOOKUP: dict[str, Sampler] = {}
for _s in SAMPLER_SPECS:
    for _n in (_s.id, _s.name, *_s.aliases):
        _LOOKUP[_key(_n)] = _s


class UnknownSamplerError(ValueError):
    def __init__(self, name: str) -> None:
        super().__init__(f"unknown sampler {name!r}; valid: {', '.join(SAMPLER_IDS)}")
        self.name = name


def resolve_sampler(name: str) -> Sampler:
    """Look a sampler up by id, A1111 name or alias (case and separators ignored)."""
    sampler = _LOOKUP.get(_key(name))
    if sampler is None:
        raise UnknownSamplerError(name)
    return sampler


def resolve(name: str) -> str:
    """The short id of a sampler named by id, A1111 name or alias; raises UnknownSamplerError."""
    return resolve_sampler(name).id


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
