"""Form fields of OpenAI's ``POST /v1/images/edits`` and ``/v1/images/variations`` (multipart), besides the
image files themselves.

As for generations, unknown fields are refused and OpenAI fields with no meaning here are accepted and
ignored (enums only with OpenAI's values). Values arrive as form strings; pydantic reads "2" as 2.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from ablerefusal.protocol import MAX_BATCH_SIZE, MAX_CFG, MAX_MASK_BLUR, MAX_STEPS, MIN_CFG, SEED_MAX

# Strengths (GenerateRequest.denoising_strength) when the client sends none. A masked edit redraws the masked
# area from noise, as OpenAI's edits replace it; an edit without a mask reworks the whole image at A1111's
# img2img default; a variation keeps the composition and changes the details.
EDIT_MASKED_STRENGTH = 1.0
EDIT_STRENGTH = 0.75
VARIATION_STRENGTH = 0.6


class _ImageInputForm(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str | None = Field(None, description="Our model id (GET /v1/models); the default model if omitted.")
    n: int = Field(1, ge=1, le=MAX_BATCH_SIZE, description="Images to make, 1-4 (one job).")
    size: str | None = Field(
        None,
        description="'WxH', each 64-2048 and a multiple of 8, or 'auto'; default: the input image's size "
        "(rounded down to multiples of 8, scaled into 64-2048).",
    )
    response_format: Literal["url", "b64_json"] = Field(
        "url", description="url: absolute link into /outputs; b64_json: the PNG inline."
    )
    user: str | None = Field(None, description="Accepted, ignored.")
    negative_prompt: str | None = Field(None, description="Extension: what to avoid.")
    seed: int = Field(-1, ge=-1, le=SEED_MAX, description="Extension: -1 random; image i uses seed+i.")
    steps: int | None = Field(None, ge=1, le=MAX_STEPS, description="Extension: denoising steps, 1-150 (default 20).")
    cfg_scale: float | None = Field(None, ge=MIN_CFG, le=MAX_CFG, description="Extension: guidance scale, 1-30.")
    sampler: str | None = Field(None, description="Extension: sampler id or A1111 name (default euler_a).")
    denoising_strength: float | None = Field(
        None, ge=0.0, le=1.0, description="Extension: how much of the image is redrawn, 0-1 (defaults above)."
    )

    @field_validator("seed")
    @classmethod
    def _seeds_in_range(cls, seed: int, info: ValidationInfo) -> int:
        # Image i uses seed + i; refused rather than wrapped past 2**32-1 to 0, as for generations.
        n = info.data.get("n", 1)
        if seed != -1 and seed + n - 1 > SEED_MAX:
            raise ValueError(f"seed + n - 1 must be at most {SEED_MAX}, so at most {SEED_MAX - n + 1} here")
        return seed


class EditForm(_ImageInputForm):
    """``POST /v1/images/edits`` fields besides ``image`` (or ``image[]``) and ``mask``."""

    prompt: str = Field(..., min_length=1, description="What the edited image shows. Required, non-empty.")
    quality: Literal["auto", "standard", "hd", "low", "medium", "high"] | None = Field(
        None, description="OpenAI's values: ignored."
    )
    background: Literal["transparent", "opaque", "auto"] | None = Field(None, description="Accepted, ignored.")
    input_fidelity: Literal["high", "low"] | None = Field(None, description="Accepted, ignored.")
    output_format: Literal["png"] | None = Field(None, description="Only png is produced.")
    output_compression: int | None = Field(None, description="Accepted, ignored (images are PNG).")
    safety_identifier: str | None = Field(None, description="Accepted, ignored.")
    stream: bool | None = Field(None, description="Streaming is not offered: only false.")
    mask_blur: int | None = Field(
        None, ge=0, le=MAX_MASK_BLUR, description="Extension: blur of the mask edge in pixels (default 4)."
    )

    @field_validator("stream")
    @classmethod
    def _no_streaming(cls, stream: bool | None) -> bool | None:
        if stream:
            raise ValueError("streaming is not offered here; leave stream out or false")
        return stream


class VariationForm(_ImageInputForm):
    """``POST /v1/images/variations`` fields besides ``image``."""

    prompt: str | None = Field(
        None,
        min_length=1,
        description="Extension: what the variations show; default the prompt stored in the image's own "
        "A1111 parameters (images made here carry it).",
    )
