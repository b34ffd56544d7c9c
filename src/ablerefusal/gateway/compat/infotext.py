"""AUTOMATIC1111 "parameters" text (infotext): reading it out of a PNG and parsing it the way A1111's
``parse_generation_parameters`` does, so that clients which feed ``/png-info`` answers back into txt2img see
the keys and the string values they are used to.
"""

from __future__ import annotations

import base64
import binascii
import io
import json
import re

from PIL import Image, UnidentifiedImageError

# Same grammar as A1111: "Key: value" pairs separated by commas, a value either JSON-quoted or comma-free.
_PARAM = re.compile(r'\s*(\w[\w \-/]+):\s*("(?:\\.|[^\\"])+"|[^,]*)(?:,|$)')
_IMAGE_SIZE = re.compile(r"^(\d+)x(\d+)$")
_NEGATIVE = "Negative prompt:"
# A last line with fewer pairs than this is prose (part of the prompt), not the parameters line.
_MIN_PAIRS = 3


class ImageDecodeError(ValueError):
    """The value given as an image is not a base64 image we can open."""


def parse_infotext(text: str) -> dict[str, str]:
    """Split an infotext into Prompt, Negative prompt and its ``Key: value`` pairs.

    ``Size: 512x768`` becomes ``Size-1``/``Size-2`` as in A1111. Values stay strings, as A1111 sends them.
    """
    *lines, last = text.strip().split("\n")
    if len(_PARAM.findall(last)) < _MIN_PAIRS:
        lines.append(last)
        last = ""
    prompt: list[str] = []
    negative: list[str] = []
    in_negative = False
    for raw in lines:
        line = raw.strip()
        if line.startswith(_NEGATIVE):
            in_negative = True
            line = line[len(_NEGATIVE) :].strip()
        (negative if in_negative else prompt).append(line)
    result: dict[str, str] = {"Prompt": "\n".join(prompt), "Negative prompt": "\n".join(negative)}
    for key, value in _PARAM.findall(last):
        if len(value) >= 2 and value[0] == '"' and value[-1] == '"':
            try:
                value = json.loads(value)
            except json.JSONDecodeError:
                value = value[1:-1]
        size = _IMAGE_SIZE.match(value)
        if size is not None:
            result[f"{key}-1"], result[f"{key}-2"] = size.group(1), size.group(2)
        else:
            result[key] = value
    return result


def decode_image(value: str) -> bytes:
    """Bytes of a base64 image, with or without a ``data:image/...;base64,`` prefix."""
    payload = value.split(",", 1)[1] if value.startswith("data:") and "," in value else value
    try:
        return base64.b64decode(payload.strip(), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ImageDecodeError(f"not valid base64: {exc}") from exc


def read_text_chunks(data: bytes) -> dict[str, str]:
    """Text metadata of an image (PNG tEXt/iTXt chunks and the like), string values only."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            info = dict(image.info)
    except (UnidentifiedImageError, OSError) as exc:
        raise ImageDecodeError(f"not an image Pillow can open: {exc}") from exc
    return {key: value for key, value in info.items() if isinstance(key, str) and isinstance(value, str)}
