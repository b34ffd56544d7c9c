"""Pure translation between A1111 txt2img (and what img2img shares with it) and our jobs: no I/O, so every
rule is unit-testable.

One A1111 request of ``n_iter`` x ``batch_size`` becomes ``n_iter`` jobs of ``batch_size`` images. Seeds are
fixed here (a random one for -1) so that image k of the request has seed ``seed + k`` exactly as in A1111,
whichever worker runs which job.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ablerefusal.gateway.compat.a1111_hires import BUILTIN_UPSCALERS, plan_hires
from ablerefusal.gateway.compat.a1111_models import (
    A1111Request,
    SamplerItem,
    SchedulerItem,
    SDModelItem,
    Txt2ImgRequest,
)
from ablerefusal.gateway.compat.errors import CompatFieldError
from ablerefusal.gateway.schemas import GenerateRequest, JobResult
from ablerefusal.protocol import SEED_MAX, ModelInfo, SamplerInfo
from ablerefusal.samplers import SamplerError, resolve_sampler, schedule_of, supported_schedulers

# A1111's default when a request names no sampler (modules/api/api.py: sampler_index="Euler").
DEFAULT_SAMPLER = "Euler"
CHECKPOINT_FIELD = "override_settings.sd_model_checkpoint"
SHORT_HASH_LEN = 10


def short_hash(model: ModelInfo) -> str | None:
    return model.sha256[:SHORT_HASH_LEN] if model.sha256 else None


def model_title(model: ModelInfo) -> str:
    digest = short_hash(model)
    return f"{model.id} [{digest}]" if digest else model.id


def model_item(model: ModelInfo) -> SDModelItem:
    return SDModelItem(
        title=model_title(model),
        model_name=model.id,
        hash=short_hash(model),
        sha256=model.sha256,
        filename=model.id,
        config=None,
    )


def find_checkpoint(models: Sequence[ModelInfo], value: str) -> ModelInfo | None:
    """The model an A1111 checkpoint string names: title, name, id, short hash or full sha256."""
    wanted = value.strip()
    for model in models:
        keys = {model.id, model.name, model_title(model)}
        if model.sha256:
            keys |= {model.sha256, model.sha256[:SHORT_HASH_LEN]}
        if wanted in keys:
            return model
    return None


def require_checkpoint(models: Sequence[ModelInfo], value: Any, field: str) -> ModelInfo:
    if not isinstance(value, str):
        raise CompatFieldError(field, "must be a string naming a checkpoint from /sdapi/v1/sd-models")
    found = find_checkpoint(models, value)
    if found is None:
        titles = [model_title(m) for m in models]
        raise CompatFieldError(
            field, f"unknown checkpoint {value!r}; available: {', '.join(titles) or 'none'}", available=titles
        )
    return found


def sampler_items(table: Sequence[SamplerInfo]) -> list[SamplerItem]:
    items = []
    for info in table:
        sched = schedule_of(info)
        aliases = [info.id, *(a for a in info.aliases if a != info.id)]
        items.append(SamplerItem(name=info.name, aliases=aliases, options={"scheduler": sched.name} if sched else {}))
    return items


def scheduler_items(table: Sequence[SamplerInfo]) -> list[SchedulerItem]:
    return [
        SchedulerItem(name=s.name, label=s.label, aliases=None, default_rho=s.default_rho)
        for s in supported_schedulers(table)
    ]


@dataclass(frozen=True)
class A1111Plan:
    """What one A1111 request turns into: the jobs to queue and what the answer must report."""

    jobs: list[GenerateRequest]
    model: ModelInfo
    sampler: SamplerInfo
    seeds: list[int]
    subseeds: list[int]
    # A1111's extra_generation_params beyond the schedule (hires, mask blur) and its denoising_strength.
    extra_params: dict[str, Any] = field(default_factory=dict)
    denoising_strength: float | None = None


Txt2ImgPlan = A1111Plan


def _first_seed(seed: int, count: int, field: str, rng: random.Random) -> int:
    last_allowed = SEED_MAX - count + 1
    if seed == -1:
        return rng.randint(0, last_allowed)
    if seed > last_allowed:
        raise CompatFieldError(
            field,
            f"{field} + n_iter*batch_size - 1 must be at most {SEED_MAX}, so at most {last_allowed} here",
        )
    return seed


@dataclass(frozen=True)
class Common:
    """The parts of a plan every A1111 generation request resolves the same way."""

    model: ModelInfo
    sampler: SamplerInfo
    seed: int  # of the request's first image; image k has seed + k
    subseed: int


def resolve_common(
    req: A1111Request,
    table: Sequence[SamplerInfo],
    models: Sequence[ModelInfo],
    current: ModelInfo,
    rng: random.Random,
    count: int,
) -> Common:
    """Model, sampler and the first seeds of a request of ``count`` images. Raises CompatFieldError."""
    model = current
    checkpoint = (req.override_settings or {}).get("sd_model_checkpoint")
    if checkpoint is not None:
        model = require_checkpoint(models, checkpoint, CHECKPOINT_FIELD)
    sampler_field = "sampler_name" if req.sampler_name else "sampler_index"
    try:
        name = req.sampler_name or req.sampler_index or DEFAULT_SAMPLER
        sampler = resolve_sampler(name, req.scheduler, table, field=sampler_field)
    except SamplerError as exc:
        # A1111 clients pick samplers by display name, so that is what an unknown name is answered with.
        names = [info.name for info in table] if exc.field == sampler_field else exc.available
        raise CompatFieldError(exc.field, exc.message, available=names) from exc
    seed = _first_seed(req.seed, count, "seed", rng)
    subseed = _first_seed(req.subseed, count, "subseed", rng)
    return Common(model=model, sampler=sampler, seed=seed, subseed=subseed)


def plan_txt2img(
    req: Txt2ImgRequest,
    table: Sequence[SamplerInfo],
    models: Sequence[ModelInfo],
    current: ModelInfo,
    rng: random.Random,
    upscalers: Sequence[str] = BUILTIN_UPSCALERS,
) -> A1111Plan:
    """Resolve model, sampler, seeds and the hires fix, and build the jobs. Raises CompatFieldError on a bad
    field. ``upscalers``: what the ready workers announce (hr_upscaler may name those)."""
    count = req.n_iter * req.batch_size
    common = resolve_common(req, table, models, current, rng, count)
    hires = plan_hires(req, upscalers)
    jobs = [
        GenerateRequest(
            prompt=req.prompt,
            negative_prompt=req.negative_prompt,
            width=req.width,
            height=req.height,
            steps=req.steps,
            cfg_scale=req.cfg_scale,
            sampler=common.sampler.id,
            seed=common.seed + i * req.batch_size,
            batch_size=req.batch_size,
            model=common.model.id,
            hires=hires.options if hires else None,
        )
        for i in range(req.n_iter)
    ]
    return A1111Plan(
        jobs=jobs,
        model=common.model,
        sampler=common.sampler,
        seeds=[common.seed + k for k in range(count)],
        subseeds=[common.subseed + k for k in range(count)],
        extra_params=hires.infotext if hires else {},
        denoising_strength=req.denoising_strength if hires else None,
    )


def build_info(req: A1111Request, plan: A1111Plan, results: Sequence[JobResult], started: datetime) -> dict[str, Any]:
    """A1111's ``info`` object. Seeds and prompts line up with the images returned: when an interrupt or
    skip left some out, the ``all_*`` lists hold only the images that exist."""
    if len(results) == len(plan.seeds):
        seeds, subseeds = plan.seeds, plan.subseeds
    else:
        seeds = [r.seed for r in results]
        subseeds = [plan.subseeds[plan.seeds.index(s)] for s in seeds]
    first_seed = seeds[0] if seeds else plan.seeds[0]
    first_subseed = subseeds[0] if subseeds else plan.subseeds[0]
    sched = schedule_of(plan.sampler)
    return {
        "prompt": req.prompt,
        "all_prompts": [req.prompt] * len(seeds),
        "negative_prompt": req.negative_prompt,
        "all_negative_prompts": [req.negative_prompt] * len(seeds),
        "seed": first_seed,
        "all_seeds": seeds,
        "subseed": first_subseed,
        "all_subseeds": subseeds,
        "subseed_strength": req.subseed_strength,
        "width": req.width,
        "height": req.height,
        "sampler_name": plan.sampler.name,
        "cfg_scale": req.cfg_scale,
        "steps": req.steps,
        # Several init images make the batch one image per image, as in A1111.
        "batch_size": len(plan.seeds) // req.n_iter,
        "restore_faces": False,
        "face_restoration_model": None,
        "sd_model_name": plan.model.id,
        "sd_model_hash": short_hash(plan.model),
        "sd_vae_name": plan.jobs[0].vae if plan.jobs else None,
        "sd_vae_hash": None,
        "seed_resize_from_w": -1,
        "seed_resize_from_h": -1,
        "denoising_strength": plan.denoising_strength,
        "extra_generation_params": ({"Schedule type": sched.label} if sched else {}) | plan.extra_params,
        "index_of_first_image": 0,
        "infotexts": [r.infotext for r in results],
        "styles": req.styles,
        "job_timestamp": started.strftime("%Y%m%d%H%M%S"),
        "clip_skip": (plan.jobs[0].clip_skip if plan.jobs else None) or 1,
        "is_using_inpainting_conditioning": plan.model.inpainting and any(j.mask for j in plan.jobs),
        "version": "ablerefusal",
    }
