"""Parsing A1111 infotext and reading it out of PNG text chunks."""

from __future__ import annotations

import base64
import io

import pytest
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from ablerefusal.gateway.compat.infotext import (
    ImageDecodeError,
    decode_image,
    parse_infotext,
    read_text_chunks,
)

INFOTEXT = (
    "a red fox, (snow:1.2)\nin a forest\n"
    "Negative prompt: blurry, low quality\n"
    "Steps: 20, Sampler: DPM++ 2M, Schedule type: Karras, CFG scale: 7.5, Seed: 1234, Size: 512x768, "
    'Model: tiny-sd15, Lora hashes: "a: 1, b: 2", Version: ablerefusal'
)


def test_parse_splits_prompt_negative_and_pairs() -> None:
    parsed = parse_infotext(INFOTEXT)
    assert parsed["Prompt"] == "a red fox, (snow:1.2)\nin a forest"
    assert parsed["Negative prompt"] == "blurry, low quality"
    assert parsed["Steps"] == "20" and parsed["Sampler"] == "DPM++ 2M" and parsed["Schedule type"] == "Karras"
    assert parsed["CFG scale"] == "7.5" and parsed["Seed"] == "1234"
    assert (parsed["Size-1"], parsed["Size-2"]) == ("512", "768")
    assert parsed["Lora hashes"] == "a: 1, b: 2"
    assert "Size" not in parsed


def test_prompt_only_text_has_no_parameters() -> None:
    assert parse_infotext("just a prompt, with commas") == {
        "Prompt": "just a prompt, with commas",
        "Negative prompt": "",
    }


def _png(text: dict[str, str]) -> bytes:
    meta = PngInfo()
    for key, value in text.items():
        meta.add_text(key, value)
    buf = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buf, format="PNG", pnginfo=meta)
    return buf.getvalue()


def test_text_chunks_round_trip_with_and_without_data_prefix() -> None:
    data = _png({"parameters": INFOTEXT, "ablerefusal": '{"seed": 1}'})
    b64 = base64.b64encode(data).decode()
    for value in (b64, "data:image/png;base64," + b64):
        chunks = read_text_chunks(decode_image(value))
        assert chunks == {"parameters": INFOTEXT, "ablerefusal": '{"seed": 1}'}


@pytest.mark.parametrize("value", ["not base64 at all!", base64.b64encode(b"plain text, not an image").decode()])
def test_bad_images_raise_a_clear_error(value: str) -> None:
    with pytest.raises(ImageDecodeError):
        read_text_chunks(decode_image(value))
