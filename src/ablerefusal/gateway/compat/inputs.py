"""Input images of the compatibility APIs: checked, turned into the mask convention jobs use, stored as uploads.

Every image of a request is decoded and checked (type from the bytes, byte and pixel limits before
decoding) before the first one is stored, so a request refused for any of its images stores none of them;
the job then names the uploads by id, as a native job does.

Masks mean what each API's clients mean by them, and are stored as plain grey masks (white = repaint) so the
job's meaning does not depend on the convention:

- A1111 (``processing.create_binary_mask``): an RGBA mask with transparency counts by its alpha, opaque
  (alpha > 128) repainted; any other image by its brightness.
- OpenAI: the mask's fully transparent pixels are the area to edit (an RGB mask is refused, as OpenAI
  does); without a mask, a transparent image's own alpha is the mask (DALL-E 2's rule).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import cast

from PIL import Image, ImageOps

from ablerefusal.gateway.compat.errors import CompatFieldError
from ablerefusal.gateway.uploads import PreparedUpload, UploadError, UploadService
from ablerefusal.image_inputs import InputImageError, base64_image_bytes, decode_image, encode_png

A1111_ALPHA_THRESHOLD = 128


@dataclass(frozen=True)
class Checked:
    """One input, checked and normalised (not stored yet), and the request field it came from."""

    field: str
    prepared: PreparedUpload


def _refused(field: str, exc: UploadError | InputImageError) -> CompatFieldError:
    return CompatFieldError(field, exc.message if isinstance(exc, UploadError) else str(exc))


def _decode(uploads: UploadService, field: str, data: bytes) -> Image.Image:
    if len(data) > uploads.max_bytes:
        # Callers read at most one byte past the limit, so the size itself is not known here.
        raise CompatFieldError(field, f"image is larger than the limit of {uploads.max_bytes} bytes")
    try:
        return decode_image(data, uploads.max_bytes, uploads.max_pixels).image
    except InputImageError as exc:
        raise _refused(field, exc) from exc


def _prepare(uploads: UploadService, field: str, data: bytes) -> Checked:
    try:
        return Checked(field, uploads.prepare(data))
    except UploadError as exc:
        raise _refused(field, exc) from exc


def _inline_bytes(uploads: UploadService, field: str, text: str) -> bytes:
    try:
        return base64_image_bytes(text, uploads.max_bytes)
    except InputImageError as exc:
        raise _refused(field, exc) from exc


def _min_alpha(image: Image.Image) -> int:
    if image.mode != "RGBA":
        return 255
    lowest, _ = cast(tuple[int, int], image.getchannel("A").getextrema())
    return lowest


def a1111_mask(image: Image.Image) -> Image.Image:
    """A1111's binary mask of an RGBA mask with transparency; other masks are used by brightness as sent."""
    if _min_alpha(image) < 255:
        return image.getchannel("A").point(lambda a: 255 if a > A1111_ALPHA_THRESHOLD else 0)
    return image


def openai_mask(image: Image.Image, field: str) -> Image.Image:
    """White where the mask is transparent (the area OpenAI edits), soft edges kept as partial alpha."""
    if image.mode != "RGBA":
        rule = "must be a PNG with an alpha channel: its transparent pixels mark the area to edit"
        raise CompatFieldError(field, rule)
    if _min_alpha(image) == 255:
        raise CompatFieldError(field, "has no transparent pixels, so there is nothing to edit")
    return ImageOps.invert(image.getchannel("A"))


def check_a1111(
    uploads: UploadService, init_images: list[str], mask: str | None
) -> tuple[dict[str, Checked], Checked | None]:
    """Check every distinct init image (by the text sent) and the mask, as grey (blocking). Raises
    CompatFieldError naming the field."""
    inits: dict[str, Checked] = {}
    for n, text in enumerate(init_images):
        if text not in inits:
            field = f"init_images.{n}"
            inits[text] = _prepare(uploads, field, _inline_bytes(uploads, field, text))
    if mask is None or not mask.strip():
        return inits, None
    raw = _inline_bytes(uploads, "mask", mask)
    return inits, _prepare(uploads, "mask", encode_png(a1111_mask(_decode(uploads, "mask", raw))))


def check_openai(
    uploads: UploadService, image: bytes, mask: bytes | None, image_field: str = "image"
) -> tuple[Checked, Checked | None]:
    """Check an edit's image and mask (blocking); the mask as grey. Raises CompatFieldError naming the field."""
    decoded = _decode(uploads, image_field, image)
    checked_image = _prepare(uploads, image_field, image)
    if mask is None:
        if _min_alpha(decoded) == 255:
            return checked_image, None
        # DALL-E 2's rule: without a mask, the image's own transparent pixels are the area to edit.
        return checked_image, _prepare(uploads, image_field, encode_png(ImageOps.invert(decoded.getchannel("A"))))
    mask_image = _decode(uploads, "mask", mask)
    if mask_image.size != decoded.size:
        w, h = decoded.size
        mw, mh = mask_image.size
        raise CompatFieldError("mask", f"must be the size of the image ({w}x{h}); got {mw}x{mh}")
    return checked_image, _prepare(uploads, "mask", encode_png(openai_mask(mask_image, "mask")))


async def store(uploads: UploadService, checked: Checked) -> str:
    """Store one checked image (content-addressed: the same pixels again store nothing); its upload id."""
    upload = await asyncio.to_thread(uploads.put, checked.prepared)
    return upload.id
