"""Pure translation of OpenAI image edits and variations into one img2img (or inpainting) job of ``n`` images."""

from __future__ import annotations

from dataclasses import dataclass

from ablerefusal.gateway.compat.errors import CompatFieldError
from ablerefusal.gateway.compat.infotext import ImageDecodeError, parse_infotext, read_text_chunks
from ablerefusal.gateway.compat.openai_edit_models import (
    EDIT_MASKED_STRENGTH,
    EDIT_STRENGTH,
    VARIATION_STRENGTH,
    EditForm,
    VariationForm,
)
from ablerefusal.gateway.compat.openai_translate import parse_size
from ablerefusal.gateway.schemas import GenerateRequest
from ablerefusal.protocol import MAX_SIZE, MIN_SIZE, SIZE_MULTIPLE, ModelInfo, ResizeMode

PARAMETERS_CHUNK = "parameters"


def auto_size(width: int, height: int) -> tuple[int, int]:
    """A job size for an input image: its own, scaled down to fit 2048 when larger, each side rounded down
    to a multiple of 8 and at least 64 (the image is then stretched by that rounding, at most 7 pixels)."""
    scale = min(1.0, MAX_SIZE / max(width, height))
    return tuple(  # type: ignore[return-value]
        max(MIN_SIZE, int(side * scale) // SIZE_MULTIPLE * SIZE_MULTIPLE) for side in (width, height)
    )


def job_size(size: str | None, image_size: tuple[int, int]) -> tuple[int, int]:
    """(width, height) of the result: the ``size`` asked for, or (None / 'auto') the input image's."""
    if size is None or size == "auto":
        return auto_size(*image_size)
    return parse_size(size, 0)


@dataclass(frozen=True)
class Prompts:
    prompt: str
    negative_prompt: str


def stored_prompts(image: bytes) -> Prompts | None:
    """The prompts in an image's own A1111 ``parameters`` text (images made here carry it), if any."""
    try:
        text = read_text_chunks(image).get(PARAMETERS_CHUNK, "")
    except ImageDecodeError:
        return None
    if not text.strip():
        return None
    parsed = parse_infotext(text)
    prompt = parsed.get("Prompt", "").strip()
    return Prompts(prompt, parsed.get("Negative prompt", "")) if prompt else None


def variation_prompts(form: VariationForm, image: bytes) -> Prompts:
    """A variation's prompts: the ``prompt`` extension, else the image's stored ones. Raises naming prompt."""
    if form.prompt is not None:
        return Prompts(form.prompt, form.negative_prompt or "")
    stored = stored_prompts(image)
    if stored is None:
        raise CompatFieldError(
            "prompt",
            "a variation needs a prompt here (Stable Diffusion draws from text): send prompt as an extra field "
            "(extra_body={'prompt': ...}), or an image that carries its A1111 parameters text",
        )
    negative = form.negative_prompt if form.negative_prompt is not None else stored.negative_prompt
    return Prompts(stored.prompt, negative)


def _request(
    form: EditForm | VariationForm,
    model: ModelInfo,
    prompts: Prompts,
    size: tuple[int, int],
    init_image: str,
    strength: float,
    mask: str | None = None,
    mask_blur: int | None = None,
) -> GenerateRequest:
    fields: dict[str, object] = {
        "prompt": prompts.prompt,
        "negative_prompt": prompts.negative_prompt,
        "width": size[0],
        "height": size[1],
        "seed": form.seed,
        "batch_size": form.n,
        "model": model.id,
        "init_image": init_image,
        "denoising_strength": strength,
        "resize_mode": ResizeMode.resize,
    }
    if mask is not None:
        fields["mask"] = mask
        if mask_blur is not None:
            fields["mask_blur"] = mask_blur
    # Unset extensions keep our own defaults (steps 20, cfg 7.5, euler_a), as for generations.
    for key, value in (("steps", form.steps), ("cfg_scale", form.cfg_scale), ("sampler", form.sampler)):
        if value is not None:
            fields[key] = value
    return GenerateRequest.model_validate(fields)


def edit_request(
    form: EditForm,
    model: ModelInfo,
    image_size: tuple[int, int],
    init_image: str,
    mask: str | None,
) -> GenerateRequest:
    """The job of an edit; ``init_image``/``mask`` are upload ids (the mask white where the edit goes)."""
    default = EDIT_MASKED_STRENGTH if mask is not None else EDIT_STRENGTH
    strength = form.denoising_strength if form.denoising_strength is not None else default
    prompts = Prompts(form.prompt, form.negative_prompt or "")
    size = job_size(form.size, image_size)
    return _request(form, model, prompts, size, init_image, strength, mask, form.mask_blur)


def variation_request(
    form: VariationForm, model: ModelInfo, image_size: tuple[int, int], init_image: str, prompts: Prompts
) -> GenerateRequest:
    """The job of a variation: image-to-image of the whole image."""
    strength = form.denoising_strength if form.denoising_strength is not None else VARIATION_STRENGTH
    return _request(form, model, prompts, job_size(form.size, image_size), init_image, strength)
