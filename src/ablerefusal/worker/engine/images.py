"""PNG files with an AUTOMATIC1111 ``parameters`` text chunk and our JSON metadata chunk."""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from typing import Any

from PIL import Image
from PIL.PngImagePlugin import PngInfo

METADATA_CHUNK = "ablerefusal"


@dataclass(frozen=True)
class ImageParams:
    prompt: str
    negative_prompt: str
    steps: int
    sampler_name: str
    cfg_scale: float
    seed: int
    width: int
    height: int
    model_name: str
    model_hash: str | None
    version: str
    extra: tuple[tuple[str, str], ...] = ()  # a mode's pairs (Denoising strength, Hires upscale, …)


def _fmt_cfg(value: float) -> str:
    return f"{value:g}"


def infotext(p: ImageParams) -> str:
    """A1111's format: prompt line, optional ``Negative prompt:`` line, then ``Key: value`` pairs."""
    lines = [p.prompt]
    if p.negative_prompt:
        lines.append(f"Negative prompt: {p.negative_prompt}")
    pairs = [
        ("Steps", str(p.steps)),
        ("Sampler", p.sampler_name),
        ("CFG scale", _fmt_cfg(p.cfg_scale)),
        ("Seed", str(p.seed)),
        ("Size", f"{p.width}x{p.height}"),
    ]
    if p.model_hash:
        pairs.append(("Model hash", p.model_hash[:10]))
    pairs += [("Model", p.model_name), *p.extra, ("Version", p.version)]
    lines.append(", ".join(f"{k}: {v}" for k, v in pairs))
    return "\n".join(lines)


def encode_png(image: Image.Image, text: str, metadata: dict[str, Any], compress_level: int) -> bytes:
    info = PngInfo()
    info.add_text("parameters", text)
    info.add_text(METADATA_CHUNK, json.dumps(metadata, sort_keys=True))
    buf = io.BytesIO()
    image.save(buf, format="PNG", pnginfo=info, compress_level=compress_level)
    return buf.getvalue()
