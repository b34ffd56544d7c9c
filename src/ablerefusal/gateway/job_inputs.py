"""A job's input images (init image, mask) and the rules of the image modes, checked at submit.

Every API surface (REST, A1111, OpenAI) submits through ``GatewayService.submit``, which runs these in
order: ``check_modes`` (which fields go together, result sizes, upscalers), then ``resolve`` (every inline
image decoded and checked, every upload id looked up, nothing stored yet), then ``store`` (the inline images
become uploads) right before the job row is written. A request refused anywhere on the way leaves no upload
and no job behind; an accepted job holds upload ids only, never pixels.

Rules the worker would also refuse are checked here, so they are a 400 naming the field rather than a failed
job later.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ablerefusal.gateway.errors import ApiException, invalid
from ablerefusal.gateway.jobs.shape import coalesce_shape, request_mode
from ablerefusal.gateway.schemas import FieldError, GenerateRequest
from ablerefusal.gateway.uploads import PreparedUpload, UploadError, UploadService
from ablerefusal.gateway.uploads.service import UPLOAD_ID_RE
from ablerefusal.protocol import MAX_SIZE, MIN_SIZE, InpaintingFill, controlnet_conflict

IMAGE_FIELDS = ("init_image", "mask")
# Upscalers every worker has (worker/engine/modes/inputs.py); workers announce theirs in /v1/info.
BUILTIN_UPSCALERS = ("latent", "lanczos", "nearest")
_LATENT_FILLS = frozenset({InpaintingFill.latent_noise, InpaintingFill.latent_nothing})


@dataclass(frozen=True)
class JobInputs:
    """A request whose images are all known: ``request`` names them by upload id; ``pending`` are the inline
    ones, checked but not stored yet; ``sizes`` are every input's (width, height) by field."""

    request: GenerateRequest
    sizes: dict[str, tuple[int, int]]
    pending: tuple[PreparedUpload, ...] = ()

    @property
    def shape(self) -> str:
        return coalesce_shape(self.request, self.sizes)


def _multiple_of_8(value: float) -> int:
    return max(8, round(value / 8) * 8)


def hires_size(request: GenerateRequest) -> tuple[int, int]:
    """The hires fix's final size, as the worker computes it (A1111's hr_scale / hr_resize_x/y)."""
    assert request.hires is not None
    h = request.hires
    if h.width or h.height:
        width = h.width or _multiple_of_8(request.width * (h.height or 0) / request.height)
        height = h.height or _multiple_of_8(request.height * (h.width or 0) / request.width)
        return width, height
    scale = h.scale or 2.0
    return _multiple_of_8(request.width * scale), _multiple_of_8(request.height * scale)


def _check_size(field: str, width: int, height: int) -> None:
    if max(width, height) > MAX_SIZE:
        raise invalid(field, f"the result would be {width}x{height}; images are at most {MAX_SIZE} pixels a side")
    if min(width, height) < MIN_SIZE:
        raise invalid(field, f"the result would be {width}x{height}; images are at least {MIN_SIZE} pixels a side")


def check_modes(request: GenerateRequest, upscalers: Sequence[str]) -> None:
    """Which image fields go together, and what the worker would refuse; ``upscalers`` are the valid hires
    upscalers. Raises a 400 naming the field."""
    if request.init_image is None:
        if request.mask is not None:
            raise invalid("mask", "needs init_image: a mask marks the part of init_image to repaint")
        if request.outpaint is not None:
            raise invalid("outpaint", "needs init_image: outpainting grows init_image's canvas")
    elif request.hires is not None:
        raise invalid("hires", "the hires fix is for text-to-image; leave out init_image, or hires for img2img")
    if request.outpaint is not None:
        if request.mask is not None:
            # The worker's outpaint mask is the new border alone (the original stays pixel for pixel); a
            # second, client mask would have to be merged with it in ways no peer defines. Refused, not
            # silently ignored.
            raise invalid("mask", "outpaint makes its own mask (the new border); send mask or outpaint, not both")
        o = request.outpaint
        if not (o.left or o.right or o.top or o.bottom):
            raise invalid("outpaint", "at least one side must be above 0")
        _check_size("outpaint", request.width + o.left + o.right, request.height + o.top + o.bottom)
    if request.hires is not None:
        if request.hires.upscaler not in upscalers:
            raise invalid("hires.upscaler", f"unknown upscaler {request.hires.upscaler!r}", sorted(upscalers))
        if request.hires.upscaler == "latent":
            steps = request.hires.steps or request.steps
            if int(steps * request.hires.denoising_strength) == 0:
                raise invalid(
                    "hires.denoising_strength",
                    "the latent upscaler needs at least one second-pass step (steps x denoising_strength >= 1)",
                )
        _check_size("hires", *hires_size(request))
    only_masked_latent = request.inpaint_only_masked and request.inpainting_fill in _LATENT_FILLS
    if request.mask is not None and request.outpaint is None and only_masked_latent:
        raise invalid(
            "inpainting_fill",
            f"{request.inpainting_fill.value} works on the whole image, not with inpaint_only_masked",
        )
    if request.controlnets:
        # The rule the worker applies, checked here so the client gets a 400 instead of a failed job.
        conflict = controlnet_conflict(
            request_mode(request), request.hires is not None, request.inpaint_only_masked, request.inpainting_fill
        )
        if conflict is not None:
            raise invalid(*conflict)


def _refused(field: str, exc: UploadError) -> ApiException:
    if exc.status == 413:
        return ApiException(
            413,
            "payload_too_large",
            f"{field}: {exc.message}",
            details=[FieldError(field=field, message=exc.message)],
        )
    if exc.status >= 500:
        return ApiException(exc.status, "internal", f"{field}: {exc.message}")
    return invalid(field, exc.message)


async def resolve(request: GenerateRequest, uploads: UploadService) -> JobInputs:
    """Check every input image: an inline one is decoded and normalised (not stored), an upload id must
    name a stored upload. Raises a 400 naming the field (413 for the byte limit)."""
    update: dict[str, str] = {}
    sizes: dict[str, tuple[int, int]] = {}
    pending: list[PreparedUpload] = []
    sources: list[tuple[str, str | None]] = [(field, getattr(request, field)) for field in IMAGE_FIELDS]
    sources += [(f"controlnets.{i}.image", unit.image) for i, unit in enumerate(request.controlnets)]
    for field, value in sources:
        if value is None:
            continue
        try:
            if UPLOAD_ID_RE.match(value):
                found = await asyncio.to_thread(uploads.describe, value)
                if found is None:
                    raise invalid(field, f"unknown upload id {value!r} (POST /api/v1/uploads stores one)")
                sizes[field] = (found.width, found.height)
                continue
            prepared = await asyncio.to_thread(uploads.prepare_inline, value)
        except UploadError as exc:
            raise _refused(field, exc) from None
        update[field] = prepared.upload.id
        sizes[field] = (prepared.upload.width, prepared.upload.height)
        pending.append(prepared)
    # Control images are resized to the output by the worker: their sizes do not keep jobs apart.
    units = [
        unit.model_copy(update={"image": update.pop(f"controlnets.{i}.image", unit.image)})
        for i, unit in enumerate(request.controlnets)
    ]
    sizes = {field: size for field, size in sizes.items() if field in IMAGE_FIELDS}
    changed: dict[str, Any] = {**update, "controlnets": units} if units else dict(update)
    return JobInputs(request.model_copy(update=changed), sizes, tuple(pending))


async def store(inputs: JobInputs, uploads: UploadService) -> None:
    """Store the inline images as uploads (content-addressed: a retry stores nothing new)."""
    for prepared in inputs.pending:
        await asyncio.to_thread(uploads.put, prepared)
