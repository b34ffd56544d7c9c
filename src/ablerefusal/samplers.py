"""Samplers, shared by gateway and worker: the table and the one resolver of sampler names.

Torch-free, so the gateway validates names with it and the worker builds schedulers from it. Each
``Sampler`` names its diffusers scheduler class and options as plain strings; only the worker's
``engine/samplers.py`` turns them into a scheduler. A name resolves by short id (``dpmpp_2m_karras``),
AUTOMATIC1111 display name (``DPM++ 2M Karras``) or alias, case and separators ignored; an A1111 client may
also send a base name plus a ``scheduler`` (``DPM++ 2M`` + ``karras``, A1111 1.9+). A combination the table
lacks is an error naming the valid choices, never a silent substitute.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ablerefusal.protocol import SamplerInfo

DEFAULT_SAMPLER = "euler_a"


@dataclass(frozen=True)
class Sampler:
    id: str
    name: str
    scheduler: str  # diffusers scheduler class name
    options: dict[str, Any] = field(default_factory=dict)
    aliases: tuple[str, ...] = ()
    # torchsde's Brownian-tree noise is seeded apart from the torch generators: one tree per image, seeded
    # with the image's seed, keeps such samplers deterministic and batch-invariant.
    brownian_seeds: bool = False

    def info(self) -> SamplerInfo:
        return SamplerInfo(id=self.id, name=self.name, aliases=list(self.aliases))


_KARRAS = {"use_karras_sigmas": True}
_EXPONENTIAL = {"use_exponential_sigmas": True}
# A1111's "SGM Uniform" schedule: evenly spaced timesteps ending at the last training step.
_SGM_UNIFORM = {"timestep_spacing": "trailing"}
_DPMPP = {"algorithm_type": "dpmsolver++"}
_DPMPP_SDE = {"algorithm_type": "sde-dpmsolver++"}

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
    Sampler("dpmpp_2m", "DPM++ 2M", "DPMSolverMultistepScheduler", _DPMPP),
    Sampler("dpmpp_2m_karras", "DPM++ 2M Karras", "DPMSolverMultistepScheduler", {**_DPMPP, **_KARRAS}),
    Sampler("dpmpp_2m_exponential", "DPM++ 2M Exponential", "DPMSolverMultistepScheduler", {**_DPMPP, **_EXPONENTIAL}),
    Sampler("dpmpp_2m_sgm_uniform", "DPM++ 2M SGM Uniform", "DPMSolverMultistepScheduler", {**_DPMPP, **_SGM_UNIFORM}),
    Sampler("dpmpp_2m_sde", "DPM++ 2M SDE", "DPMSolverMultistepScheduler", _DPMPP_SDE),
    Sampler("dpmpp_2m_sde_karras", "DPM++ 2M SDE Karras", "DPMSolverMultistepScheduler", {**_DPMPP_SDE, **_KARRAS}),
    Sampler(
        "dpmpp_2m_sde_exponential",
        "DPM++ 2M SDE Exponential",
        "DPMSolverMultistepScheduler",
        {**_DPMPP_SDE, **_EXPONENTIAL},
    ),
    Sampler("dpmpp_sde", "DPM++ SDE", "DPMSolverSDEScheduler", brownian_seeds=True),
    Sampler("ddim", "DDIM", "DDIMScheduler"),
    Sampler("plms", "PLMS", "PNDMScheduler", {"skip_prk_steps": True}),
    Sampler("unipc", "UniPC", "UniPCMultistepScheduler"),
    Sampler("deis", "DEIS", "DEISMultistepScheduler"),
    Sampler("lcm", "LCM", "LCMScheduler"),
)

SAMPLER_IDS: tuple[str, ...] = tuple(s.id for s in SAMPLER_SPECS)
SAMPLERS: list[SamplerInfo] = [s.info() for s in SAMPLER_SPECS]
_BY_ID: dict[str, Sampler] = {s.id: s for s in SAMPLER_SPECS}


def sampler_spec(sampler_id: str) -> Sampler:
    """The table row of a resolved id; KeyError for an id this table lacks (a newer peer's sampler)."""
    return _BY_ID[sampler_id]


@dataclass(frozen=True)
class Scheduler:
    """One of A1111's noise schedules (modules/sd_schedulers.py)."""

    name: str
    label: str
    # A1111's own knob, reported by /schedulers; karras and polyexponential use a rho.
    default_rho: float = -1.0


A1111_SCHEDULERS: tuple[Scheduler, ...] = (
    Scheduler("automatic", "Automatic"),
    Scheduler("uniform", "Uniform"),
    Scheduler("karras", "Karras", 7.0),
    Scheduler("exponential", "Exponential"),
    Scheduler("polyexponential", "Polyexponential", 1.0),
    Scheduler("sgm_uniform", "SGM Uniform"),
    Scheduler("kl_optimal", "KL Optimal"),
    Scheduler("align_your_steps", "Align Your Steps"),
    Scheduler("simple", "Simple"),
    Scheduler("normal", "Normal"),
    Scheduler("ddim", "DDIM"),
    Scheduler("beta", "Beta"),
)

# "automatic" is the sampler's own schedule; A1111's "uniform" spaces sigmas as the model was trained,
# which is what a diffusers scheduler does without extra options. Both therefore mean the plain sampler.
_PLAIN = frozenset({"automatic", "uniform"})


class SamplerError(ValueError):
    """The sampler (or sampler + scheduler) cannot be honoured; ``field`` names the request field at fault."""

    def __init__(self, field: str, message: str, available: list[str]) -> None:
        super().__init__(message)
        self.field = field
        self.message = message
        self.available = available


def _key(name: str) -> str:
    # "DPM++ 2M Karras", "dpmpp_2m_karras" and "dpm++-2m karras" all name the same sampler.
    return re.sub(r"[\s_\-]+", "_", name.strip().casefold().replace("++", "pp"))


def _index(table: Sequence[SamplerInfo]) -> dict[str, SamplerInfo]:
    index: dict[str, SamplerInfo] = {}
    for info in table:
        for name in (info.id, info.name, *info.aliases):
            index.setdefault(_key(name), info)
    return index


def find_scheduler(value: str) -> Scheduler | None:
    key = _key(value)
    return next((s for s in A1111_SCHEDULERS if key in (_key(s.name), _key(s.label))), None)


def _suffix_pattern(sched: Scheduler) -> re.Pattern[str]:
    words = "|".join(re.escape(w).replace(r"\ ", r"[\s_\-]+") for w in {sched.label, sched.name.replace("_", " ")})
    return re.compile(rf"^(?P<base>.+?)[\s_\-]+(?:{words})$", re.IGNORECASE)


_SUFFIXES = tuple((s, _suffix_pattern(s)) for s in A1111_SCHEDULERS if s.name not in _PLAIN)


def _split_scheduler(name: str) -> tuple[str, Scheduler | None]:
    """'DPM++ 2M Karras' → ('DPM++ 2M', karras); a name without a schedule suffix comes back whole."""
    for sched, pattern in _SUFFIXES:
        match = pattern.match(name.strip())
        if match is not None:
            return match.group("base"), sched
    return name, None


def schedule_of(info: SamplerInfo) -> Scheduler | None:
    """The schedule a combined table entry (e.g. 'DPM++ 2M Karras') implies, if any."""
    return _split_scheduler(info.name)[1]


def supported_schedulers(table: Sequence[SamplerInfo] = SAMPLERS) -> list[Scheduler]:
    """Schedulers at least one table entry honours: the plain ones always, others when a variant exists."""
    present = {sched for info in table if (sched := schedule_of(info)) is not None}
    return [s for s in A1111_SCHEDULERS if s.name in _PLAIN or s in present]


def _variant(index: dict[str, SamplerInfo], base: str, sched: Scheduler) -> SamplerInfo | None:
    base_info = index.get(_key(base))
    candidates = [f"{base} {sched.label}", f"{base} {sched.name}"]
    if base_info is not None:
        candidates += [f"{base_info.name} {sched.label}", f"{base_info.id}_{sched.name}"]
    return next((index[_key(c)] for c in candidates if _key(c) in index), None)


def resolve_sampler(
    name: str,
    scheduler: str | None = None,
    table: Sequence[SamplerInfo] = SAMPLERS,
    *,
    field: str = "sampler",
) -> SamplerInfo:
    """The ``table`` entry that ``name`` (+ an optional A1111 ``scheduler``) means; raises SamplerError whose
    ``field`` is ``field`` for a bad name and ``scheduler`` for a bad or impossible schedule."""
    index = _index(table)
    ids = [info.id for info in table]
    sched = find_scheduler(scheduler) if scheduler else None
    if scheduler and sched is None:
        raise SamplerError(
            "scheduler",
            f"unknown scheduler {scheduler!r}; A1111 schedulers are " + ", ".join(s.name for s in A1111_SCHEDULERS),
            [s.name for s in supported_schedulers(table)],
        )
    unknown = SamplerError(field, f"unknown sampler {name!r}; valid: {', '.join(ids)}", ids)
    if sched is None or sched.name in _PLAIN:
        found = index.get(_key(name))
        if found is None:
            raise unknown
        return found
    base, suffix = _split_scheduler(name)
    if suffix is not None and suffix != sched:
        raise SamplerError(
            "scheduler",
            f"sampler {name!r} already names the {suffix.label} schedule, which conflicts with scheduler {scheduler!r}",
            ids,
        )
    if _key(base) not in index and _key(name) not in index:
        raise unknown
    found = _variant(index, base, sched)
    if found is None:
        with_schedule = [info.name for info in table if schedule_of(info) == sched]
        raise SamplerError(
            "scheduler",
            f"the {sched.label} schedule is not available for sampler {base!r}; samplers with it: "
            + (", ".join(with_schedule) or "none"),
            with_schedule,
        )
    return found
