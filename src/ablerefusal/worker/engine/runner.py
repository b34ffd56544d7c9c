"""One generation call: per-item prompts, seeds and CFG scales in a single pipeline call, with progress and cancel.

Reads top to bottom like a diffusers pipeline: 1. rows, 2. scheduler, 3. memory switches, 4. generators,
5. prompt embeddings, 6. denoise + decode, 7. images tagged with their job.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from ablerefusal.protocol import (
    GenerateCall,
    GenerateItem,
    GenerationMode,
    MemoryOptions,
    ProgressEvent,
)
from ablerefusal.samplers import Sampler
from ablerefusal.worker.engine.cache import Resident
from ablerefusal.worker.engine.devices import DeviceInfo
from ablerefusal.worker.engine.errors import CallCancelledError
from ablerefusal.worker.engine.guidance import guidance_for
from ablerefusal.worker.engine.holds import HOLD_STEP, hold_names, wait_for_release
from ablerefusal.worker.engine.noise import route_noise
from ablerefusal.worker.engine.previews import latent_preview
from ablerefusal.worker.engine.samplers import build_scheduler


@dataclass
class CallControl:
    """Shared between the HTTP side (cancel) and the generation thread."""

    call_id: str
    job_ids: list[str]
    emit: Callable[[Any], None]
    cancelled: threading.Event = field(default_factory=threading.Event)
    dropped: set[str] = field(default_factory=set)

    def live_jobs(self) -> list[str]:
        return [j for j in self.job_ids if j not in self.dropped]


@dataclass(frozen=True)
class Row:
    job_id: str
    index: int
    seed: int
    prompt: str
    negative_prompt: str
    cfg_scale: float


@dataclass(frozen=True)
class Generated:
    row: Row
    image: Image.Image


@dataclass(frozen=True)
class MemoryDefaults:
    attention_slicing: bool
    vae_tiling: bool | None
    vae_tiling_min_pixels: int
    cpu_offload: bool


def rows_of(call: GenerateCall) -> list[Row]:
    return [
        Row(item.job_id, i, seed, item.prompt, item.negative_prompt, item_cfg(call, item))
        for item in call.items
        for i, seed in enumerate(item.seeds)
    ]


def item_cfg(call: GenerateCall, item: GenerateItem) -> float:
    return call.cfg_scale if item.cfg_scale is None else item.cfg_scale


def is_guided(call: GenerateCall) -> bool:
    """Whether the call runs classifier-free guidance (validation keeps its items all guided or all not)."""
    return item_cfg(call, call.items[0]) > 1.0


def apply_memory(resident: Resident, call: GenerateCall, defaults: MemoryDefaults, device: DeviceInfo) -> None:
    """Set the per-call memory switches, touching the pipeline only when one changes."""
    opts = call.memory or MemoryOptions()
    pipe = resident.pipe
    slicing = defaults.attention_slicing if opts.attention_slicing is None else opts.attention_slicing
    tiling = opts.vae_tiling if opts.vae_tiling is not None else defaults.vae_tiling
    if tiling is None:
        tiling = call.width * call.height >= defaults.vae_tiling_min_pixels
    if resident.flags.get("attention_slicing") != slicing:
        pipe.enable_attention_slicing() if slicing else pipe.disable_attention_slicing()
    if resident.flags.get("vae_tiling") != tiling:
        pipe.vae.enable_tiling() if tiling else pipe.vae.disable_tiling()
    resident.flags.update(attention_slicing=slicing, vae_tiling=tiling)
    # Model CPU offload needs an accelerator to offload from; on CPU it would be a no-op by definition.
    offload = (defaults.cpu_offload if opts.cpu_offload is None else opts.cpu_offload) and device.is_cuda
    if offload and not resident.cpu_offload:
        pipe.enable_model_cpu_offload(device=device.device)
        resident.cpu_offload = True
    elif not offload and resident.cpu_offload:
        pipe.remove_all_hooks()
        pipe.to(device.device)
        resident.cpu_offload = False


def generate(
    resident: Resident,
    call: GenerateCall,
    sampler: Sampler,
    control: CallControl,
    device: DeviceInfo,
    defaults: MemoryDefaults,
    unet: Any | None = None,
    hold_dir: Path | None = None,
    controlnets: Any | None = None,
    adapters: Any | None = None,
) -> list[Generated]:
    """Run the call with its adapters (``engine.adapters.CallAdapters``: LoRAs, embeddings, VAE, clip skip);
    raises CallCancelledError at the first step boundary after a whole-call cancel.

    Prompt embeddings are made per row first. Rows whose prompts need more 77-token chunks than others cannot
    share a UNet batch without padding, which would change their pixels, so such a call runs one pipeline
    pass per length, each item with its own rows (progress restarts at step 1 for each pass)."""
    from ablerefusal.worker.engine.adapters import CallAdapters, RowText, adapters_applied, encode_rows, length_of

    adapters = adapters or CallAdapters()
    with adapters_applied(resident, adapters):
        rows = rows_of(call)
        with torch.inference_mode():
            per_row = encode_rows(
                resident.pipe,
                resident.entry.family,
                [RowText(r.prompt, r.negative_prompt) for r in rows],
                is_guided(call),
                device.device,
                adapters,
            )
        if control.cancelled.is_set():
            raise CallCancelledError
        by_job = {r.job_id: length_of(e) for r, e in zip(rows, per_row, strict=True)}
        lengths = sorted(set(by_job.values()))
        if len(lengths) == 1:
            return _generate_rows(
                resident,
                call,
                sampler,
                control,
                device,
                defaults,
                per_row,
                unet,
                hold_dir,
                controlnets,
                adapters.upscaler,
            )
        out: dict[tuple[str, int], Generated] = {}
        for length in lengths:
            items = [item for item in call.items if by_job[item.job_id] == length]
            part = call.model_copy(update={"items": items})
            part_rows = [e for r, e in zip(rows, per_row, strict=True) if by_job[r.job_id] == length]
            for generated in _generate_rows(
                resident,
                part,
                sampler,
                control,
                device,
                defaults,
                part_rows,
                unet,
                hold_dir,
                controlnets,
                adapters.upscaler,
            ):
                out[(generated.row.job_id, generated.row.index)] = generated
        return [out[(r.job_id, r.index)] for r in rows]


def _generate_rows(
    resident: Resident,
    call: GenerateCall,
    sampler: Sampler,
    control: CallControl,
    device: DeviceInfo,
    defaults: MemoryDefaults,
    per_row: list[dict[str, Any]],
    unet: Any | None = None,
    hold_dir: Path | None = None,
    controlnets: Any | None = None,
    upscaler: Any | None = None,
) -> list[Generated]:
    """One pipeline pass over the call's rows, whose prompt embeddings (``per_row``) all have one length."""
    pipe, family = resident.pipe, resident.entry.family
    # 1. One row per image, in item order, each with its own seed.
    rows = rows_of(call)
    # 2. A fresh scheduler of the sampler's kind, from the model's own training schedule.
    pipe.scheduler = build_scheduler(sampler, resident.scheduler_config, [r.seed for r in rows])
    # 3. Memory switches for this call.
    apply_memory(resident, call, defaults, device)
    # 4. One CPU generator per image, so image i of seed S is the single image of seed S (any batch, any device).
    generators = [torch.Generator(device="cpu").manual_seed(r.seed) for r in rows]
    if device.is_cuda:
        route_noise(pipe, pipe.scheduler)  # the same draws, copied to the GPU without a per-step stall

    def held_names() -> set[str]:
        live = set(control.live_jobs())  # a dropped job's hold no longer counts: its batch-mates run on
        return hold_names(r.prompt for r in rows if r.job_id in live)

    def on_step_end(p: Any, i: int, t: Any, tensors: dict[str, Any]) -> dict[str, Any]:
        if control.cancelled.is_set():
            raise CallCancelledError
        step = i + 1
        preview = None
        live = control.live_jobs()
        if call.previews and live and step % call.preview_every == 0:
            # The first live row of this pass (a call split by prompt length runs some items per pass).
            first = next((n for n, r in enumerate(rows) if r.job_id in live), None)
            if first is not None:
                preview = latent_preview(tensors["latents"][first], family)
        control.emit(
            ProgressEvent(call_id=control.call_id, step=step, total=p.num_timesteps, preview=preview, job_ids=live)
        )
        if hold_dir is not None and step == HOLD_STEP:
            wait_for_release(hold_dir, control.cancelled, held_names)
            if control.cancelled.is_set():
                raise CallCancelledError
        return {}

    original_unet = pipe.unet
    if unet is not None:
        pipe.unet = unet  # a warm compiled UNet sharing the eager one's weights
    try:
        with torch.inference_mode():
            # 5. Prompt embeddings of every row (made by ``generate``), as one batch.
            from ablerefusal.worker.engine.adapters import stack

            embeds = stack(per_row, is_guided(call))
            # 6. Denoise and decode (other modes: engine.modes, from the same rows, generators and embeddings).
            guidance = guidance_for([r.cfg_scale for r in rows], device.device)
            if call.mode is not GenerationMode.txt2img or call.hires is not None:
                from ablerefusal.worker.engine.modes import Stage, run_mode

                images = run_mode(
                    Stage(
                        pipe=pipe,
                        call=call,
                        job_ids=[r.job_id for r in rows],
                        embeds=embeds,
                        guidance=guidance,
                        generators=generators,
                        on_step_end=on_step_end,
                        seeds=[r.seed for r in rows],
                        new_scheduler=lambda seeds: build_scheduler(sampler, resident.scheduler_config, seeds),
                        controlnets=controlnets,
                        upscaler=upscaler,
                    )
                )
            elif controlnets is not None:  # the call's ControlNet units (engine.controlnet.ControlNetInputs)
                from ablerefusal.worker.engine.controlnet.pipeline import run_txt2img

                images = run_txt2img(
                    pipe, family, call, controlnets, [r.job_id for r in rows], embeds, guidance, generators, on_step_end
                )
            else:
                images = pipe(
                    **embeds,
                    width=call.width,
                    height=call.height,
                    num_inference_steps=call.steps,
                    guidance_scale=guidance,
                    generator=generators,
                    callback_on_step_end=on_step_end,
                    output_type="pil",
                ).images
    finally:
        pipe.unet = original_unet
    # 7. Tag each image with its job and index.
    return [Generated(row, image) for row, image in zip(rows, images, strict=True)]
