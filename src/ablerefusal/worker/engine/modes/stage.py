"""Run a prepared call in its mode: img2img, inpaint / outpaint, or txt2img followed by the hires fix.

Each row keeps its own CPU generator across every pass, so an image depends only on its own seed and inputs:
the same job alone or coalesced gives the same pixels. A pass with no denoising step (strength x steps < 1)
returns its input as prepared, as A1111 keeps an image it is told not to change.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from PIL import Image

from ablerefusal.protocol import GenerateCall, GenerationMode, InpaintingFill
from ablerefusal.worker.engine.modes.derived import Kind, derive
from ablerefusal.worker.engine.modes.inputs import (
    LATENT_FILLS,
    LATENT_UPSCALER,
    PIL_UPSCALERS,
    ItemInputs,
    hires_size,
    paste_over,
    prepare_inputs,
    second_pass_steps,
)


@dataclass
class Stage:
    """What the runner has ready when a call leaves plain txt2img."""

    pipe: Any  # the cached text-to-image pipeline
    call: GenerateCall
    job_ids: list[str]  # per row, in row order
    embeds: dict[str, Any]
    guidance: Any
    generators: list[torch.Generator]
    on_step_end: Callable[..., dict[str, Any]]
    seeds: list[int]  # per row
    # A fresh scheduler of the call's sampler for a pass over rows with these seeds (SDE samplers seed their
    # Brownian noise per image, so a pass over some rows needs those rows' seeds).
    new_scheduler: Callable[[list[int]], Any]
    # The call's ControlNet units (engine.controlnet.pipeline.ControlNetInputs): img2img, inpaint, outpaint.
    controlnets: Any | None = None
    # The hires fix's model upscaler (engine.upscalers.run.LoadedUpscaler) when hires.upscaler names a file.
    upscaler: Any | None = None


def run_mode(stage: Stage) -> list[Image.Image]:
    """One image per row, in row order."""
    call = stage.call
    if call.mode is GenerationMode.txt2img:
        return _hires(stage)
    by_job = dict(zip((item.job_id for item in call.items), prepare_inputs(call), strict=True))
    inputs = [by_job[job] for job in stage.job_ids]
    if call.mode is GenerationMode.img2img:
        return _img2img(stage, [i.init for i in inputs], call.denoising_strength, call.steps)
    return _inpaint(stage, inputs)


def _common(stage: Stage, steps: int) -> dict[str, Any]:
    return {
        **stage.embeds,
        "num_inference_steps": steps,
        "guidance_scale": stage.guidance,
        "callback_on_step_end": stage.on_step_end,
    }


def _img2img(stage: Stage, images: list[Any], strength: float, steps: int) -> list[Image.Image]:
    if int(steps * strength) == 0:
        return list(images)
    if stage.controlnets is not None:
        from ablerefusal.worker.engine.controlnet.pipeline import img2img_with_controlnet

        pipe, control = img2img_with_controlnet(stage, stage.new_scheduler(stage.seeds))
    else:
        pipe, control = derive(stage.pipe, Kind.img2img, stage.new_scheduler(stage.seeds)), {}
    return list(
        pipe(
            **_common(stage, steps),
            **control,
            image=images if isinstance(images[0], Image.Image) else torch.cat(images),
            strength=strength,
            generator=stage.generators,
            output_type="pil",
        ).images
    )


def _inpaint(stage: Stage, inputs: list[ItemInputs]) -> list[Image.Image]:
    call = stage.call
    if int(call.steps * call.denoising_strength) == 0:
        return [i.original.copy() for i in inputs]
    width, height = inputs[0].original.size
    only_masked = call.inpaint_only_masked and call.mode is GenerationMode.inpaint
    # diffusers crops "only masked" around one PIL mask, so such a call runs one image at a time (each row
    # still with its own generator: the same pixels as that image alone).
    groups = [range(r, r + 1) for r in range(len(inputs))] if only_masked else [range(len(inputs))]
    out: list[Image.Image] = []
    for rows in groups:
        scheduler = stage.new_scheduler(stage.seeds[rows.start : rows.stop])
        control: dict[str, Any] = {}
        if stage.controlnets is not None:
            from ablerefusal.worker.engine.controlnet.pipeline import inpaint_with_controlnet

            pipe, control = inpaint_with_controlnet(stage, rows, scheduler, (width, height))
        else:
            pipe = derive(stage.pipe, Kind.inpaint, scheduler)
        images, masks = [inputs[r].init for r in rows], [inputs[r].mask for r in rows]
        start: dict[str, Any] = {"image": images[0] if only_masked else images}
        if call.inpainting_fill in LATENT_FILLS:
            start = _latent_start(pipe, images, masks, [stage.generators[r] for r in rows], call.inpainting_fill)
        generated = pipe(
            **_rows_subset(stage, rows),
            **start,
            **control,
            num_inference_steps=call.steps,
            callback_on_step_end=_rows_callback(stage, rows),
            mask_image=masks[0] if only_masked else masks,
            width=call.width if only_masked else width,
            height=call.height if only_masked else height,
            strength=call.denoising_strength,
            padding_mask_crop=call.inpaint_padding if only_masked else None,
            generator=[stage.generators[r] for r in rows],
            output_type="pil",
        ).images
        out += [paste_over(image, inputs[r]) for image, r in zip(generated, rows, strict=True)]
    return out


def _latent_start(
    pipe: Any, images: list[Image.Image], masks: list[Any], generators: list[torch.Generator], fill: InpaintingFill
) -> dict[str, Any]:
    """A1111's latent fills: the init latents with the masked area (the mask at latent size, rounded) replaced
    by each row's own noise or by zeros. The pipeline takes latents as its image; the masked image's latents,
    which it can no longer make from them, are given too (9-channel UNets read them)."""
    device, dtype = pipe._execution_device, pipe.vae.dtype
    height, width = images[0].height, images[0].width
    pixels = pipe.image_processor.preprocess(images, height=height, width=width).to(device, dtype)
    mask = pipe.mask_processor.preprocess(masks, height=height, width=width).to(device, dtype)
    latents = pipe._encode_vae_image(pixels, generator=generators)
    masked_latents = pipe._encode_vae_image(pixels * (mask < 0.5), generator=generators)
    small = torch.nn.functional.interpolate(mask, size=latents.shape[-2:]).round()
    if fill is InpaintingFill.latent_noise:
        shape = latents.shape[1:]
        filler = torch.stack([torch.randn(shape, generator=g, dtype=torch.float32) for g in generators])
    else:
        filler = torch.zeros_like(latents, dtype=torch.float32)
    start = latents * (1 - small) + filler.to(device, latents.dtype) * small
    return {"image": start, "masked_image_latents": masked_latents}


def _rows_callback(stage: Stage, rows: range) -> Callable[..., dict[str, Any]]:
    """The runner's step callback for a pass over some rows: it indexes latents by call row (previews), so
    they are placed at their rows of a call-sized batch."""
    total = len(stage.job_ids)
    if len(rows) == total:
        return stage.on_step_end

    def on_step_end(p: Any, i: int, t: Any, tensors: dict[str, Any]) -> dict[str, Any]:
        latents = tensors["latents"]
        full = latents.new_zeros((total, *latents.shape[1:]))
        full[rows.start : rows.stop] = latents
        return stage.on_step_end(p, i, t, {**tensors, "latents": full})

    return on_step_end


def _rows_subset(stage: Stage, rows: range) -> dict[str, Any]:
    """The prompt embeddings (and guidance) of some rows; a guided call's negatives come along."""
    sub = {k: (v[rows.start : rows.stop] if v is not None else None) for k, v in stage.embeds.items()}
    sub["guidance_scale"] = _guidance_rows(stage.guidance, rows)
    return sub


def _guidance_rows(guidance: Any, rows: range) -> Any:
    from ablerefusal.worker.engine.guidance import RowGuidance, guidance_for

    if isinstance(guidance, RowGuidance):
        return guidance_for(guidance.scales[rows.start : rows.stop], guidance._column.device)
    return guidance


def _hires(stage: Stage) -> list[Image.Image]:
    """A1111's hires fix: draw at the call's size, upscale, then an image-to-image pass at the final size."""
    call = stage.call
    assert call.hires is not None
    hires = call.hires
    latent = hires.upscaler == LATENT_UPSCALER
    first = stage.pipe(
        **_common(stage, call.steps),
        width=call.width,
        height=call.height,
        generator=stage.generators,
        output_type="latent" if latent else "pil",
    ).images
    width, height = hires_size(call)
    steps = hires.steps or call.steps
    if latent:
        # A1111's "Latent" upscaler: bilinear on the latents, no antialiasing.
        factor = stage.pipe.vae_scale_factor
        upscaled = torch.nn.functional.interpolate(
            first, size=(height // factor, width // factor), mode="bilinear", antialias=False
        )
        return _img2img(stage, list(upscaled.split(1)), hires.denoising_strength, steps)
    if stage.upscaler is not None:
        # A1111: the model's own scale (repeated while smaller than the target), then Lanczos to the exact size.
        images = [stage.upscaler.upscale(image, (width, height)) for image in first]
    else:
        images = [image.resize((width, height), PIL_UPSCALERS[hires.upscaler]) for image in first]
    if second_pass_steps(call) == 0:
        return images
    return _img2img(stage, images, hires.denoising_strength, steps)
