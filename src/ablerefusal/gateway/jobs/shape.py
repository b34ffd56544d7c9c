"""The coalescing shape of a job: the parameters beyond the job table's columns that jobs sharing one
pipeline call must have in common.

A worker call carries one mode and one set of mode parameters for all its items (protocol ``GenerateCall``),
and batches only images of one size, so two image jobs may share a call only when their mode, its parameters
and their input images' sizes agree. The shape is stored with the job at submit (``ar_jobs.shape``) and
compared by ``selection.Candidate.shape``; "" is the shape of every plain text-to-image job, so such jobs
coalesce as they always did and rows written before the column existed read the same.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from ablerefusal.gateway.schemas import GenerateRequest
from ablerefusal.prompt_syntax import extract_loras, merge_loras
from ablerefusal.protocol import GenerationMode, LoraRef

# (width, height) of a job's input images, by request field ("init_image", "mask").
InputSizes = Mapping[str, tuple[int, int]]


def request_mode(request: GenerateRequest) -> GenerationMode:
    """The worker mode a request runs in: outpaint and inpaint need an init image, which alone is img2img."""
    if request.init_image is None:
        return GenerationMode.txt2img
    if request.outpaint is not None:
        return GenerationMode.outpaint
    if request.mask is not None:
        return GenerationMode.inpaint
    return GenerationMode.img2img


def image_parts(request: GenerateRequest, input_sizes: InputSizes) -> dict[str, Any]:
    """The image-input parameters a call shares, only those the mode reads (so a value a mode ignores, such
    as denoising_strength for text-to-image, does not keep jobs apart); empty for plain text-to-image."""
    mode = request_mode(request)
    parts: dict[str, Any] = {}
    if mode is not GenerationMode.txt2img:
        parts |= {
            "mode": mode.value,
            "denoising_strength": request.denoising_strength,
            "resize_mode": request.resize_mode.value,
            "sizes": {name: list(size) for name, size in sorted(input_sizes.items())},
        }
    if mode in (GenerationMode.inpaint, GenerationMode.outpaint):
        parts |= {"mask_blur": request.mask_blur, "inpainting_fill": request.inpainting_fill.value}
    if mode is GenerationMode.inpaint:
        parts |= {
            "mask_invert": request.mask_invert,
            "inpaint_only_masked": request.inpaint_only_masked,
            "inpaint_padding": request.inpaint_padding,
        }
    if request.outpaint is not None:
        parts["outpaint"] = request.outpaint.model_dump(mode="json")
    if request.hires is not None:
        parts["hires"] = request.hires.model_dump(mode="json")
    return parts


def effective_loras(request: GenerateRequest) -> list[LoraRef]:
    """The LoRA set a job runs with, as the worker merges it: its prompt's ``<lora:name:weight>`` tags and its
    ``loras`` field (the field's weight wins per name), sorted by name. (A bad tag was refused at submit.)"""
    explicit = [LoraRef(name=spec.name, weight=spec.weight) for spec in request.loras]
    return merge_loras(extract_loras(request.prompt)[1], explicit)


def adapter_parts(request: GenerateRequest) -> dict[str, Any]:
    """The adapter parameters a call shares (issue 12): the LoRA set and weights, clip skip, VAE and the
    ControlNet units without their images (those are per item); empty for a job without adapters."""
    parts: dict[str, Any] = {}
    loras = effective_loras(request)
    if loras:
        parts["loras"] = [[ref.name, ref.weight] for ref in loras]
    if request.clip_skip not in (None, 1):  # 1 and none both mean the last layer
        parts["clip_skip"] = request.clip_skip
    if request.vae is not None:
        parts["vae"] = request.vae
    if request.controlnets:
        parts["controlnets"] = [unit.model_dump(mode="json", exclude={"image"}) for unit in request.controlnets]
    return parts


def coalesce_shape(request: GenerateRequest, input_sizes: InputSizes) -> str:
    """ "" for a plain text-to-image job, else the sha256 (hex) of a canonical JSON of every parameter that
    coalesced jobs must share beyond model, size, steps, sampler and CFG (which have their own columns)."""
    parts = image_parts(request, input_sizes) | adapter_parts(request)
    if not parts:
        return ""
    canonical = json.dumps(parts, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()
