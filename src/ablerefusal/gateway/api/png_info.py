"""``/api/v1/png-info``: the generation parameters stored in an image, read by the same parser as A1111's
``/sdapi/v1/png-info`` (compat/infotext.py), plus ComfyUI's ``prompt`` graph (compat/comfy_workflow.py)."""

from __future__ import annotations

from typing import Any, Literal

import anyio
from fastapi import APIRouter
from pydantic import BaseModel, Field

from ablerefusal.gateway.compat.comfy_workflow import parameters_from_workflow
from ablerefusal.gateway.compat.infotext import ImageDecodeError, PngInfo, read_png_info
from ablerefusal.gateway.errors import ApiException
from ablerefusal.gateway.schemas import ErrorEnvelope, FieldError

router = APIRouter(tags=["png-info"])

# The chunk A1111 writes its infotext into, and the one ComfyUI writes its API-format graph into.
PARAMETERS_CHUNK = "parameters"
COMFY_PROMPT_CHUNK = "prompt"
# Base64 of a 20 MB image; the request body limit refuses bigger bodies before this.
MAX_IMAGE_CHARS = 28_000_000
# Parsing runs in worker threads; at most this many at once so store calls always find a thread.
_parsing = anyio.CapacityLimiter(2)


class PngInfoBody(BaseModel):
    image: str = Field(
        ...,
        min_length=1,
        max_length=MAX_IMAGE_CHARS,
        description="The image as base64, with or without a data:image/...;base64, prefix.",
    )


class PngInfoAnswer(BaseModel):
    source: Literal["a1111", "comfyui", "none"] = Field(
        ..., description="Where the parameters came from: an A1111-style infotext, a ComfyUI graph, or none found."
    )
    info: str = Field(..., description="The 'parameters' text, '' when the image has none.")
    items: dict[str, str] = Field(default_factory=dict, description="The image's other text chunks.")
    parameters: dict[str, str] = Field(
        default_factory=dict,
        description="Parameters under A1111's infotext keys (Prompt, Negative prompt, Steps, Sampler, "
        "CFG scale, Seed, Size-1, Size-2, Model...); values are strings.",
    )


def _read(image: str) -> PngInfoAnswer:
    found: PngInfo = read_png_info(image, PARAMETERS_CHUNK)
    if found.parameters:
        return PngInfoAnswer(source="a1111", info=found.info, items=found.items, parameters=found.parameters)
    workflow = parameters_from_workflow(found.items.get(COMFY_PROMPT_CHUNK, ""))
    source: Literal["comfyui", "none"] = "comfyui" if workflow else "none"
    return PngInfoAnswer(source=source, info=found.info, items=found.items, parameters=workflow)


def _errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    return {code: {"model": ErrorEnvelope} for code in codes}


@router.post("/png-info", summary="Read the generation parameters stored in an image", responses=_errors(400, 401, 413))
async def png_info(body: PngInfoBody) -> PngInfoAnswer:
    try:
        return await anyio.to_thread.run_sync(_read, body.image, limiter=_parsing)
    except ImageDecodeError as exc:
        raise ApiException(
            400, "invalid_request", f"image: {exc}", details=[FieldError(field="image", message=str(exc))]
        ) from exc
