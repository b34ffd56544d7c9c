"""A1111's hires fix and upscaler names, translated onto ``GenerateRequest.hires`` (pure, no I/O).

A1111 keeps two lists: ``/upscalers`` (pixel upscalers: None, Lanczos, Nearest and the ESRGAN-family models)
and ``/latent-upscale-modes`` (Latent and its interpolation variants); ``hr_upscaler`` takes a name from
either. Ours are ``latent`` (bilinear on the latents without antialiasing: exactly A1111's "Latent"),
``lanczos``, ``nearest`` and any upscaler model a ready worker announces. A1111's other latent variants
(antialiased, bicubic, nearest, nearest-exact) are different interpolations we do not run, so they are
refused by name rather than quietly replaced.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ablerefusal.gateway.compat.a1111_models import NamedItem, Txt2ImgRequest, UpscalerItem
from ablerefusal.gateway.compat.errors import CompatFieldError
from ablerefusal.protocol import MAX_SIZE, MAX_STEPS, MIN_SIZE, SIZE_MULTIPLE, HiresOptions

LATENT = "latent"
LANCZOS = "lanczos"
NEAREST = "nearest"
# What every worker runs (issue 11: latent and the PIL filters always).
BUILTIN_UPSCALERS = (LATENT, LANCZOS, NEAREST)
# A1111 names of ours. "None" is A1111's plain resize, which its images.resize_image does with Lanczos.
_A1111_NAMES = {"Latent": LATENT, "None": LANCZOS, "Lanczos": LANCZOS, "Nearest": NEAREST}
_PIXEL_ITEMS = ("None", "Lanczos", "Nearest")
# A1111's own scale for the filters (UpscalerLanczos / UpscalerNearest report 4).
_FILTER_SCALE = 4.0
_UNSUPPORTED_LATENT = (
    "Latent (antialiased)",
    "Latent (bicubic)",
    "Latent (bicubic antialiased)",
    "Latent (nearest)",
    "Latent (nearest-exact)",
)
MAX_HR_SCALE = 4.0


def model_upscalers(announced: Sequence[str]) -> list[str]:
    """Upscaler models (beyond the built-in three) that the ready workers announce, sorted."""
    return sorted({u for u in announced if u not in BUILTIN_UPSCALERS})


def upscaler_items(announced: Sequence[str]) -> list[UpscalerItem]:
    """``GET /sdapi/v1/upscalers``: A1111's pixel upscalers we run, then the workers' upscaler models."""
    items = [UpscalerItem(name=name, scale=_FILTER_SCALE) for name in _PIXEL_ITEMS]
    items += [UpscalerItem(name=model, model_name=model) for model in model_upscalers(announced)]
    return items


def latent_mode_items() -> list[NamedItem]:
    """``GET /sdapi/v1/latent-upscale-modes``: only A1111's plain "Latent" is what our latent upscaler does."""
    return [NamedItem(name="Latent")]


def accepted_names(announced: Sequence[str]) -> list[str]:
    return [*_A1111_NAMES, *model_upscalers(announced)]


def resolve_upscaler(name: str | None, announced: Sequence[str]) -> str:
    """Our upscaler id for an ``hr_upscaler`` value (A1111 name or our id, any case); None is A1111's default
    latent mode, "Latent". Raises CompatFieldError naming the field."""
    if name is None:
        return LATENT
    wanted = name.strip().casefold()
    for a1111, ours in _A1111_NAMES.items():
        if wanted in (a1111.casefold(), ours):
            return ours
    for model in model_upscalers(announced):
        if wanted == model.casefold():
            return model
    names = accepted_names(announced)
    if any(wanted == variant.casefold() for variant in _UNSUPPORTED_LATENT):
        rule = "only A1111's plain 'Latent' is among the latent modes here (bilinear, no antialiasing)"
    else:
        rule = "unknown upscaler"
    raise CompatFieldError("hr_upscaler", f"{rule}: {name!r}; available: {', '.join(names)}", available=names)


def _multiple_of_8(value: float) -> int:
    # The worker's rounding of a derived hires side (workers round to the nearest multiple of 8).
    return max(SIZE_MULTIPLE, round(value / SIZE_MULTIPLE) * SIZE_MULTIPLE)


def hires_size(width: int, height: int, options: HiresOptions) -> tuple[int, int]:
    """The final size a worker gives for these options (same rule as the worker's)."""
    if options.width or options.height:
        final_w = options.width or _multiple_of_8(width * (options.height or 0) / height)
        final_h = options.height or _multiple_of_8(height * (options.width or 0) / width)
        return final_w, final_h
    scale = options.scale or 2.0
    return _multiple_of_8(width * scale), _multiple_of_8(height * scale)


@dataclass(frozen=True)
class HiresPlan:
    options: HiresOptions
    size: tuple[int, int]  # the images' final size
    infotext: dict[str, object]  # A1111's extra_generation_params for the hires fix


def _check_side(field: str, value: int) -> None:
    if value and (not MIN_SIZE <= value <= MAX_SIZE or value % SIZE_MULTIPLE):
        raise CompatFieldError(field, f"must be 0 or {MIN_SIZE}-{MAX_SIZE} and a multiple of {SIZE_MULTIPLE}")


def plan_hires(req: Txt2ImgRequest, announced: Sequence[str]) -> HiresPlan | None:
    """``GenerateRequest.hires`` for an A1111 txt2img body; None without ``enable_hr`` (its hr_* fields are
    then ignored, as in A1111)."""
    if not req.enable_hr:
        return None
    upscaler = resolve_upscaler(req.hr_upscaler, announced)
    _check_side("hr_resize_x", req.hr_resize_x)
    _check_side("hr_resize_y", req.hr_resize_y)
    resize = bool(req.hr_resize_x or req.hr_resize_y)
    if not resize and not 1.0 < req.hr_scale <= MAX_HR_SCALE:
        raise CompatFieldError("hr_scale", f"must be above 1 and at most {MAX_HR_SCALE:g} (got {req.hr_scale:g})")
    if not 0 <= req.hr_second_pass_steps <= MAX_STEPS:
        raise CompatFieldError("hr_second_pass_steps", f"must be 0 (use steps) to {MAX_STEPS}")
    steps = req.hr_second_pass_steps or req.steps
    if upscaler == LATENT and int(steps * req.denoising_strength) == 0:
        # The latent upscale leaves unfinished latents: without a second pass there is no image.
        raise CompatFieldError(
            "denoising_strength",
            f"the Latent upscaler needs a second pass: (hr_second_pass_steps or steps) x denoising_strength "
            f"must be at least 1 (got {steps} x {req.denoising_strength:g})",
        )
    options = HiresOptions(
        scale=None if resize else req.hr_scale,
        width=req.hr_resize_x or None,
        height=req.hr_resize_y or None,
        upscaler=upscaler,
        steps=req.hr_second_pass_steps or None,
        denoising_strength=req.denoising_strength,
    )
    size = hires_size(req.width, req.height, options)
    if max(size) > MAX_SIZE or min(size) < MIN_SIZE:
        field = "hr_resize_x" if resize else "hr_scale"
        rule = f"{MIN_SIZE}-{MAX_SIZE} pixels a side"
        raise CompatFieldError(field, f"the result would be {size[0]}x{size[1]}; images are {rule}")
    infotext: dict[str, object] = {}
    if resize:
        infotext["Hires resize"] = f"{req.hr_resize_x}x{req.hr_resize_y}"
    else:
        infotext["Hires upscale"] = req.hr_scale
    if req.hr_second_pass_steps:
        infotext["Hires steps"] = req.hr_second_pass_steps
    if req.hr_upscaler is not None:
        infotext["Hires upscaler"] = req.hr_upscaler
    return HiresPlan(options=options, size=size, infotext=infotext)
