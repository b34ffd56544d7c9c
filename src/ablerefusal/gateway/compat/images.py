"""Reading a finished job's PNG back for APIs that return images inline (A1111 ``images``, OpenAI
``b64_json``), from the gateway's object store (local disk or the fleet's bucket)."""

from __future__ import annotations

import asyncio
import base64

from ablerefusal.gateway.storage import ObjectStore

OUTPUTS_PREFIX = "/outputs/"


async def png_base64(outputs: ObjectStore, image_url: str) -> str:
    """Base64 of the image a result's ``image_url`` (``/outputs/<job>/<i>.png``) names."""
    key = image_url.removeprefix(OUTPUTS_PREFIX)
    found = await asyncio.to_thread(outputs.get, key)
    if found is None:
        # The result row exists, so its file was written: only a delete racing this read gets here.
        raise FileNotFoundError(f"output {key!r} is gone")
    return base64.b64encode(found.data).decode("ascii")
