"""What a mode adds to an image's parameters text and JSON metadata, in AUTOMATIC1111's words and order."""

from __future__ import annotations

from ablerefusal.protocol import GenerateCall, GenerationMode
from ablerefusal.worker.engine.modes.inputs import working_size

# A1111's display names of the upscalers we share with it.
_UPSCALER_NAMES = {"latent": "Latent", "lanczos": "Lanczos", "nearest": "Nearest"}


def infotext_pairs(call: GenerateCall) -> list[tuple[str, str]]:
    """``Key: value`` pairs written after ``Model`` (A1111 writes Size as the first pass's size)."""
    pairs: list[tuple[str, str]] = []
    if call.mode is not GenerationMode.txt2img:
        pairs.append(("Denoising strength", f"{call.denoising_strength:g}"))
    if call.mode in (GenerationMode.inpaint, GenerationMode.outpaint):
        pairs.append(("Mask blur", str(call.mask_blur)))
    if call.hires is not None:
        hires = call.hires
        pairs.append(("Denoising strength", f"{hires.denoising_strength:g}"))
        if hires.width or hires.height:
            width, height = working_size(call)
            pairs.append(("Hires resize", f"{width}x{height}"))
        else:
            pairs.append(("Hires upscale", f"{hires.scale or 2.0:g}"))
        if hires.steps:
            pairs.append(("Hires steps", str(hires.steps)))
        pairs.append(("Hires upscaler", _UPSCALER_NAMES.get(hires.upscaler, hires.upscaler)))
    return pairs


def metadata_fields(call: GenerateCall) -> dict[str, object]:
    """Our JSON metadata's fields for the mode (nothing for plain txt2img, so old readers see no change)."""
    fields: dict[str, object] = {}
    if call.mode is not GenerationMode.txt2img:
        fields |= {"mode": call.mode.value, "denoising_strength": call.denoising_strength}
        fields["resize_mode"] = call.resize_mode.value
    if call.mode in (GenerationMode.inpaint, GenerationMode.outpaint):
        fields |= {"mask_blur": call.mask_blur, "inpainting_fill": call.inpainting_fill.value}
    if call.mode is GenerationMode.inpaint:
        fields |= {"mask_invert": call.mask_invert, "inpaint_only_masked": call.inpaint_only_masked}
        if call.inpaint_only_masked:
            fields["inpaint_padding"] = call.inpaint_padding
    if call.outpaint is not None:
        fields["outpaint"] = call.outpaint.model_dump()
    if call.hires is not None:
        fields["hires"] = call.hires.model_dump(exclude_none=True)
    return fields
