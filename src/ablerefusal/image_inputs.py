"""Input images (init images, masks, control images): checked from their bytes, shared by gateway and worker.

Torch-free, so the gateway's uploads and the worker's call decoding apply the same rules: the type comes from
the magic bytes (never a name or a client's content type), and the byte and pixel limits are checked before
any pixel is decoded: Pillow reads only the header in ``Image.open``, so a few-KB PNG that claims
50000x50000 pixels is refused without allocating its frame.
"""

from __future__ import annotations

import base64
import binascii
import io
import warnings
from dataclasses import dataclass
from typing import cast

from PIL import Image, ImageOps, UnidentifiedImageError

DEFAULT_MAX_BYTES = 16 * 1024 * 1024
DEFAULT_MAX_PIXELS = 4096 * 4096
# Pillow name and MIME type per magic prefix; WebP is RIFF....WEBP, checked apart.
_MAGIC = ((b"\x89PNG\r\n\x1a\n", "PNG", "image/png"), (b"\xff\xd8\xff", "JPEG", "image/jpeg"))


class InputImageError(ValueError):
    """An input image that is refused; the message names the rule it broke."""


@dataclass(frozen=True)
class InputImage:
    image: Image.Image  # decoded, EXIF orientation applied, RGB or RGBA, no metadata
    format: str  # PNG, JPEG or WEBP: what the bytes were


def sniff_format(data: bytes) -> tuple[str, str]:
    """(Pillow format, MIME type) of PNG, JPEG or WebP bytes; InputImageError for anything else."""
    for magic, fmt, mime in _MAGIC:
        if data.startswith(magic):
            return fmt, mime
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP", "image/webp"
    raise InputImageError("not a PNG, JPEG or WebP image (decided from the file's bytes, not its name)")


def decode_image(data: bytes, max_bytes: int = DEFAULT_MAX_BYTES, max_pixels: int = DEFAULT_MAX_PIXELS) -> InputImage:
    """Check and decode one input image; raises InputImageError naming the rule."""
    if len(data) > max_bytes:
        raise InputImageError(f"image is {len(data)} bytes; the limit is {max_bytes}")
    fmt, _ = sniff_format(data)
    try:
        with warnings.catch_warnings():
            # Our own pixel limit below is the one that applies; Pillow's warning would only be noise.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data), formats=[fmt])
        width, height = image.size  # header only: nothing decoded yet
        if width * height > max_pixels:
            raise InputImageError(f"image is {width}x{height} pixels; the limit is {max_pixels} pixels")
        image.load()
    except Image.DecompressionBombError as exc:
        # Pillow's own bomb check (over twice its default limit) fires in ``open``, before ours could.
        raise InputImageError(f"image is over the limit of {max_pixels} pixels ({exc})") from exc
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        if isinstance(exc, InputImageError):
            raise
        raise InputImageError(f"broken or truncated {fmt} image: {exc}") from exc
    oriented = ImageOps.exif_transpose(image)
    mode = "RGBA" if "A" in oriented.getbands() or "transparency" in oriented.info else "RGB"
    # A fresh image of the pixels alone: EXIF, ICC, text chunks and the like are dropped.
    clean = Image.new(mode, oriented.size)
    clean.paste(oriented.convert(mode))
    return InputImage(clean, fmt)


def decode_base64_image(
    text: str, max_bytes: int = DEFAULT_MAX_BYTES, max_pixels: int = DEFAULT_MAX_PIXELS
) -> InputImage:
    """An image sent inline: plain base64 or a ``data:image/...;base64,`` URL (A1111 and OpenAI clients)."""
    return decode_image(base64_image_bytes(text, max_bytes), max_bytes, max_pixels)


def base64_image_bytes(text: str, max_bytes: int = DEFAULT_MAX_BYTES) -> bytes:
    """The bytes of an inline image, with the size checked before decoding the base64 itself."""
    payload = text.strip()
    if payload.startswith("data:"):
        head, sep, payload = payload.partition(",")
        if not sep or not head.endswith(";base64"):
            raise InputImageError("a data: URL image must be base64 (data:image/png;base64,...)")
    if len(payload) * 3 // 4 > max_bytes + 3:
        raise InputImageError(f"image is over {max_bytes} bytes; the limit is {max_bytes}")
    try:
        return base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InputImageError(f"image is not valid base64: {exc}") from exc


def encode_png(image: Image.Image) -> bytes:
    """PNG bytes of the pixels alone (what uploads store, and what a gateway sends a worker)."""
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


def mask_from_image(image: Image.Image) -> Image.Image:
    """An ``L`` mask where white means repaint. An RGBA mask with transparency marks the transparent area
    (OpenAI's convention); any other image counts by its brightness (A1111's)."""
    if image.mode == "RGBA":
        alpha = image.getchannel("A")
        lowest, _ = cast(tuple[int, int], alpha.getextrema())  # one band: (min, max)
        if lowest < 255:
            return ImageOps.invert(alpha)
    return image.convert("L")
