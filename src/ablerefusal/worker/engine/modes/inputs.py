"""A call's input images, checked and prepared as AUTOMATIC1111 prepares them (PIL only, no torch).

Validation runs before the call takes the device, so a bad image is a 400 naming its field
(``items.0.init_image``); the generation thread prepares the same inputs again from the call, which keeps the
call the only thing a worker needs.

Order, as A1111: the mask is resized to its init image, inverted if asked, fitted to the working size with the
init image's resize mode, then blurred. The blurred mask decides both what is repainted and how the result is
pasted over the input, so a pixel where it is 0 is the input's pixel exactly.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from PIL import Image, ImageFilter, ImageOps

from ablerefusal.image_inputs import InputImageError, decode_base64_image, mask_from_image
from ablerefusal.protocol import (
    MAX_INPUT_IMAGE_BYTES,
    MAX_INPUT_PIXELS,
    MAX_SIZE,
    MIN_SIZE,
    GenerateCall,
    GenerationMode,
    InpaintingFill,
    ResizeMode,
)
from ablerefusal.worker.engine.errors import InvalidRequestError

PIL_UPSCALERS = {"lanczos": Image.Resampling.LANCZOS, "nearest": Image.Resampling.NEAREST}
LATENT_UPSCALER = "latent"
UPSCALERS = (LATENT_UPSCALER, *PIL_UPSCALERS)  # built in; model upscalers (ESRGAN files) come from the registry
# Fills that replace the masked area's latents (noise or zeros) rather than its pixels.
LATENT_FILLS = frozenset({InpaintingFill.latent_noise, InpaintingFill.latent_nothing})


@dataclass(frozen=True)
class ItemInputs:
    init: Image.Image  # RGB at the working size; the masked area already filled when inpainting_fill is fill
    original: Image.Image  # RGB at the working size, as sent (fitted): what the result is pasted over
    mask: Image.Image | None  # L at the working size, blurred; white is repainted


def working_size(call: GenerateCall) -> tuple[int, int]:
    """Width and height of the images a call returns."""
    if call.mode is GenerationMode.outpaint and call.outpaint is not None:
        o = call.outpaint
        return call.width + o.left + o.right, call.height + o.top + o.bottom
    if call.hires is not None:
        return hires_size(call)
    return call.width, call.height


def hires_size(call: GenerateCall) -> tuple[int, int]:
    assert call.hires is not None
    h = call.hires
    if h.width or h.height:
        # One side given: the other keeps the aspect ratio, as A1111's hr_resize_x/y.
        width = h.width or _multiple_of_8(call.width * (h.height or 0) / call.height)
        height = h.height or _multiple_of_8(call.height * (h.width or 0) / call.width)
        return width, height
    scale = h.scale or 2.0
    return _multiple_of_8(call.width * scale), _multiple_of_8(call.height * scale)


def _multiple_of_8(value: float) -> int:
    return max(8, round(value / 8) * 8)


def check_call(call: GenerateCall, model_upscalers: Collection[str] = ()) -> None:
    """What the schema cannot say: which fields a mode needs, result sizes, upscalers, and the images themselves.
    ``model_upscalers``: the ids of the upscaler files this worker has."""
    mode = call.mode
    if call.hires is not None:
        if mode is not GenerationMode.txt2img:
            raise InvalidRequestError("hires: the hires fix applies to mode txt2img only", field="hires")
        if call.hires.upscaler not in UPSCALERS and call.hires.upscaler not in model_upscalers:
            raise InvalidRequestError(
                f"hires.upscaler: unknown upscaler {call.hires.upscaler!r}",
                field="hires.upscaler",
                available=[*UPSCALERS, *sorted(model_upscalers)],
            )
        if call.hires.upscaler == LATENT_UPSCALER and second_pass_steps(call) == 0:
            raise InvalidRequestError(
                "hires.denoising_strength: the latent upscaler needs at least one second-pass step "
                "(steps x denoising_strength >= 1)",
                field="hires.denoising_strength",
            )
    if mode is GenerationMode.outpaint:
        o = call.outpaint
        if o is None or not (o.left or o.right or o.top or o.bottom):
            raise InvalidRequestError("outpaint: mode outpaint needs at least one border above 0", field="outpaint")
    elif call.outpaint is not None:
        raise InvalidRequestError("outpaint: borders are for mode outpaint only", field="outpaint")
    width, height = working_size(call)
    if min(width, height) < MIN_SIZE:
        raise InvalidRequestError(
            f"hires: the result would be {width}x{height}; images are at least {MIN_SIZE} pixels a side",
            field="hires",
        )
    if max(width, height) > MAX_SIZE:
        raise InvalidRequestError(
            f"the result would be {width}x{height}; images are at most {MAX_SIZE} pixels a side",
            field="hires" if call.hires is not None else "outpaint",
        )
    if call.inpaint_only_masked and call.inpainting_fill in LATENT_FILLS and mode is GenerationMode.inpaint:
        raise InvalidRequestError(
            f"inpainting_fill: {call.inpainting_fill.value} works on the whole image, not with inpaint_only_masked",
            field="inpainting_fill",
        )
    for n, item in enumerate(call.items):
        needs_init = mode is not GenerationMode.txt2img
        if needs_init != (item.init_image is not None):
            rule = f"mode {mode.value} needs one" if needs_init else "only modes with an input image take one"
            raise InvalidRequestError(f"items.{n}.init_image: {rule}", field=f"items.{n}.init_image")
        needs_mask = mode is GenerationMode.inpaint
        if needs_mask != (item.mask is not None):
            rule = "mode inpaint needs one" if needs_mask else "only mode inpaint takes a mask"
            raise InvalidRequestError(f"items.{n}.mask: {rule}", field=f"items.{n}.mask")
    prepare_inputs(call)


def second_pass_steps(call: GenerateCall) -> int:
    """Denoising steps the hires pass runs (diffusers and A1111 both run int(steps x strength))."""
    assert call.hires is not None
    return int((call.hires.steps or call.steps) * call.hires.denoising_strength)


def _decode(text: str, field: str) -> Image.Image:
    try:
        return decode_base64_image(text, MAX_INPUT_IMAGE_BYTES, MAX_INPUT_PIXELS).image
    except InputImageError as exc:
        raise InvalidRequestError(f"{field}: {exc}", field=field) from exc


def prepare_inputs(call: GenerateCall) -> list[ItemInputs]:
    """One ``ItemInputs`` per item (in item order); empty for txt2img."""
    if call.mode is GenerationMode.txt2img:
        return []
    prepared = []
    for n, item in enumerate(call.items):
        assert item.init_image is not None  # check_call
        init = _decode(item.init_image, f"items.{n}.init_image").convert("RGB")
        mask = None
        if item.mask is not None:
            mask = mask_from_image(_decode(item.mask, f"items.{n}.mask"))
            if mask.size != init.size:
                mask = mask.resize(init.size, Image.Resampling.LANCZOS)
            if call.mask_invert:
                mask = ImageOps.invert(mask)
        prepared.append(_prepare_item(call, init, mask))
    return prepared


def _prepare_item(call: GenerateCall, init: Image.Image, mask: Image.Image | None) -> ItemInputs:
    fitted = fit_image(init, call.width, call.height, call.resize_mode)
    if call.mode is GenerationMode.outpaint:
        original, mask = _outpaint_canvas(call, fitted)
    else:
        original = fitted
        if mask is not None:
            mask = fit_image(mask, call.width, call.height, call.resize_mode)
            if call.mask_blur:
                mask = mask.filter(ImageFilter.GaussianBlur(call.mask_blur))
    fill = mask is not None and call.inpainting_fill is InpaintingFill.fill
    start = fill_masked(original, mask) if fill and mask is not None else original
    return ItemInputs(init=start, original=original, mask=mask)


def _outpaint_canvas(call: GenerateCall, fitted: Image.Image) -> tuple[Image.Image, Image.Image]:
    """The grown canvas (border stretched from the image's edges) and its mask: the border only, blurred
    outwards, so the original stays in place pixel for pixel."""
    assert call.outpaint is not None
    o = call.outpaint
    width, height = working_size(call)
    canvas = fitted.resize((width, height), Image.Resampling.BILINEAR)
    canvas.paste(fitted, (o.left, o.top))
    mask = Image.new("L", (width, height), 255)
    inner = (o.left, o.top, o.left + fitted.width, o.top + fitted.height)
    mask.paste(0, inner)
    if call.mask_blur:
        mask = mask.filter(ImageFilter.GaussianBlur(call.mask_blur))
        mask.paste(0, inner)
    return canvas, mask


def fit_image(image: Image.Image, width: int, height: int, mode: ResizeMode) -> Image.Image:
    """A1111's resize_image: stretch (resize), cover and centre-crop (crop), or fit inside and fill the
    rest by stretching the image's edge rows or columns (fill)."""
    if image.size == (width, height):
        return image.copy()
    lanczos = Image.Resampling.LANCZOS
    if mode is ResizeMode.resize:
        return image.resize((width, height), lanczos)
    ratio, src_ratio = width / height, image.width / image.height
    cover = (ratio > src_ratio) if mode is ResizeMode.crop else (ratio < src_ratio)
    w = width if cover else image.width * height // image.height
    h = image.height * width // image.width if cover else height
    resized = image.resize((w, h), lanczos)
    out = Image.new(image.mode, (width, height))
    out.paste(resized, ((width - w) // 2, (height - h) // 2))
    if mode is ResizeMode.fill:
        if h < height:
            top = (height - h) // 2
            out.paste(resized.resize((width, top), box=(0, 0, width, 0)), (0, 0))
            bottom = height - h - top
            if bottom:
                out.paste(resized.resize((width, bottom), box=(0, h, width, h)), (0, top + h))
        elif w < width:
            left = (width - w) // 2
            out.paste(resized.resize((left, height), box=(0, 0, 0, height)), (0, 0))
            right = width - w - left
            if right:
                out.paste(resized.resize((right, height), box=(w, 0, w, height)), (left + w, 0))
    return out


def fill_masked(image: Image.Image, mask: Image.Image) -> Image.Image:
    """A1111's inpainting_fill "fill": the masked area takes the blurred colours around it."""
    filled = Image.new("RGBA", image.size)
    masked = Image.new("RGBa", image.size)
    masked.paste(image.convert("RGBA").convert("RGBa"), mask=ImageOps.invert(mask))
    for radius, repeats in ((256, 1), (64, 1), (16, 2), (4, 4), (2, 2), (0, 1)):
        blurred = masked.filter(ImageFilter.GaussianBlur(radius)).convert("RGBA")
        for _ in range(repeats):
            filled.alpha_composite(blurred)
    return filled.convert("RGB")


def paste_over(generated: Image.Image, inputs: ItemInputs) -> Image.Image:
    """The result where the mask is 0 is the input exactly; where it is partly set, a blend (A1111's overlay)."""
    if inputs.mask is None:
        return generated
    if generated.size != inputs.original.size:
        generated = generated.resize(inputs.original.size, Image.Resampling.LANCZOS)
    return Image.composite(generated.convert("RGB"), inputs.original, inputs.mask)
