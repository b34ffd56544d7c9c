"""A1111 img2img → jobs (pure, no I/O): field by field as A1111's ``StableDiffusionProcessingImg2Img``.

Images stay as the client sent them here (``GenerateRequest.init_image``/``mask`` take inline images); the
router stores them as uploads and swaps in their ids before anything is queued.

Several ``init_images``, as in A1111: one image serves every image of a batch; with k > 1 of them the batch
becomes k images, image j of each iteration drawn from ``init_images[j]``, and more than ``batch_size`` images
is refused. Each such image is its own job here (a job has one init image), with A1111's seeds.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from ablerefusal.gateway.compat.a1111_models import Img2ImgRequest
from ablerefusal.gateway.compat.a1111_translate import A1111Plan, resolve_common
from ablerefusal.gateway.compat.errors import CompatFieldError
from ablerefusal.gateway.schemas import GenerateRequest
from ablerefusal.protocol import InpaintingFill, ModelInfo, ResizeMode, SamplerInfo

# A1111's resize_mode numbers. 3, "just resize (latent upscale)", scales the encoded latents instead of the
# pixels; both stretch the image to width x height, so it runs as 0 here (pixel resize, then encode).
RESIZE_MODES = {0: ResizeMode.resize, 1: ResizeMode.crop, 2: ResizeMode.fill, 3: ResizeMode.resize}
# A1111's inpainting_fill numbers (modules/processing.py: 0 fill, 1 original, 2 latent noise, 3 latent nothing).
INPAINTING_FILLS = {
    0: InpaintingFill.fill,
    1: InpaintingFill.original,
    2: InpaintingFill.latent_noise,
    3: InpaintingFill.latent_nothing,
}
_URL_PREFIXES = ("http://", "https://")


def mask_blur_of(req: Img2ImgRequest) -> int:
    """A1111's mask blur: ``mask_blur`` sets both axes; separate x and y radii are not run here."""
    if req.mask_blur is not None:
        return req.mask_blur
    if req.mask_blur_x != req.mask_blur_y:
        raise CompatFieldError(
            "mask_blur_y",
            f"must equal mask_blur_x here (one blur radius for both axes; got {req.mask_blur_x} and "
            f"{req.mask_blur_y}); or send mask_blur",
        )
    return req.mask_blur_x


def _check_images(req: Img2ImgRequest) -> None:
    for n, image in enumerate(req.init_images):
        if image.strip().startswith(_URL_PREFIXES):
            raise CompatFieldError(f"init_images.{n}", "URLs are not fetched here; send the image as base64")
        if not image.strip():
            raise CompatFieldError(f"init_images.{n}", "must be a base64 image, not empty")
    if req.mask is not None and req.mask.strip().startswith(_URL_PREFIXES):
        raise CompatFieldError("mask", "URLs are not fetched here; send the mask as base64")
    if len(req.init_images) > 1 and len(req.init_images) > req.batch_size:
        raise CompatFieldError(
            "init_images",
            f"{len(req.init_images)} images for batch_size {req.batch_size}: send one image, or at most "
            "batch_size images (one per image of the batch), as A1111",
        )


def plan_img2img(
    req: Img2ImgRequest,
    table: Sequence[SamplerInfo],
    models: Sequence[ModelInfo],
    current: ModelInfo,
    rng: random.Random,
) -> A1111Plan:
    """Resolve model, sampler and seeds, and build the jobs. Raises CompatFieldError on a bad field."""
    _check_images(req)
    has_mask = bool(req.mask and req.mask.strip())
    blur = mask_blur_of(req)
    fill = INPAINTING_FILLS[req.inpainting_fill]
    only_masked = req.inpaint_full_res and has_mask
    if only_masked and fill in (InpaintingFill.latent_noise, InpaintingFill.latent_nothing):
        raise CompatFieldError(
            "inpainting_fill",
            f"{req.inpainting_fill} ({fill.value}) works on the whole image here: send inpaint_full_res false "
            "with it, or inpainting_fill 0 or 1",
        )
    per_iteration = len(req.init_images) if len(req.init_images) > 1 else req.batch_size
    count = req.n_iter * per_iteration
    common = resolve_common(req, table, models, current, rng, count)
    shared: dict[str, object] = {
        "prompt": req.prompt,
        "negative_prompt": req.negative_prompt,
        "width": req.width,
        "height": req.height,
        "steps": req.steps,
        "cfg_scale": req.cfg_scale,
        "sampler": common.sampler.id,
        "model": common.model.id,
        "denoising_strength": req.denoising_strength,
        "resize_mode": RESIZE_MODES[req.resize_mode],
    }
    if has_mask:
        shared |= {
            "mask": req.mask,
            "mask_blur": blur,
            "inpainting_fill": fill,
            "inpaint_only_masked": only_masked,
            "inpaint_padding": req.inpaint_full_res_padding,
            "mask_invert": bool(req.inpainting_mask_invert),
        }
    jobs: list[GenerateRequest] = []
    for i in range(req.n_iter):
        first = common.seed + i * per_iteration
        if len(req.init_images) == 1:
            batches = [(req.init_images[0], first, req.batch_size)]
        else:
            batches = [(image, first + j, 1) for j, image in enumerate(req.init_images)]
        for image, seed, size in batches:
            fields = {**shared, "init_image": image, "seed": seed, "batch_size": size}
            jobs.append(GenerateRequest.model_validate(fields))
    return A1111Plan(
        jobs=jobs,
        model=common.model,
        sampler=common.sampler,
        seeds=[common.seed + k for k in range(count)],
        subseeds=[common.subseed + k for k in range(count)],
        extra_params={"Mask blur": blur} if has_mask else {},
        denoising_strength=req.denoising_strength,
    )
