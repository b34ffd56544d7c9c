"""Reading a finished job's PNG back for APIs that return images inline (A1111 ``images``, OpenAI
``b64_json``), through the same path check as ``/outputs``."""

from __future__ import annotations

import asyncio
import base64
from pathlib import Path

from ablerefusal.gateway.outputs import resolve_output

OUTPUTS_PREFIX = "/outputs/"


async def png_base64(output_dir: Path, image_url: str) -> str:
    """Base64 of the file a result's ``image_url`` (``/outputs/<job>/<i>.png``) names."""
    rel = image_url.removeprefix(OUTPUTS_PREFIX)
    path = resolve_output(output_dir, rel, rel.encode())
    return base64.b64encode(await asyncio.to_thread(path.read_bytes)).decode("ascii")
