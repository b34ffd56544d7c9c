"""Request and response shapes of the OpenAI Images API (``/v1/images/generations``) and ``/v1/models``.

Unknown fields are refused, as OpenAI does ("Unrecognized request argument"), so a typo is not silently
ignored; OpenAI fields with no meaning here (quality, style, user, …) are accepted and ignored, enums only
with OpenAI's values.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from ablerefusal.protocol import MAX_BATCH_SIZE, MAX_CFG, MAX_STEPS, MIN_CFG, SEED_MAX


class ImagesRequest(BaseModel):
    """``POST /v1/images/generations`` body."""

    model_config = ConfigDict(extra="forbid")

    prompt: str = Field(..., min_length=1, description="What to draw. Required, non-empty.")
    model: str | None = Field(None, description="Our model id (GET /v1/models); the default model if omitted.")
    n: int = Field(1, ge=1, le=MAX_BATCH_SIZE, description="Images to make, 1-4 (one job).")
    size: str | None = Field(
        None,
        description="'WxH', each 64-2048 and a multiple of 8, or 'auto'; default the model's native square.",
    )
    response_format: Literal["url", "b64_json"] = Field(
        "url", description="url: absolute link into /outputs; b64_json: the PNG inline."
    )
    quality: Literal["auto", "standard", "hd", "low", "medium", "high"] | None = Field(
        None, description="OpenAI's values (dall-e-3: standard, hd; gpt-image-1: auto, low, medium, high): ignored."
    )
    style: Literal["vivid", "natural"] | None = Field(None, description="OpenAI's values (vivid, natural): ignored.")
    user: str | None = Field(None, description="Accepted, ignored.")
    background: str | None = Field(None, description="Accepted, ignored.")
    moderation: str | None = Field(None, description="Accepted, ignored.")
    output_compression: int | None = Field(None, description="Accepted, ignored (images are PNG).")
    output_format: Literal["png"] | None = Field(None, description="Only png is produced.")
    negative_prompt: str = Field("", description="Extension: what to avoid.")
    seed: int = Field(-1, ge=-1, le=SEED_MAX, description="Extension: -1 random; image i uses seed+i.")
    steps: int | None = Field(None, ge=1, le=MAX_STEPS, description="Extension: denoising steps, 1-150 (default 20).")
    cfg_scale: float | None = Field(None, ge=MIN_CFG, le=MAX_CFG, description="Extension: guidance scale, 1-30.")
    sampler: str | None = Field(None, description="Extension: sampler id or A1111 name (default euler_a).")

    @field_validator("seed")
    @classmethod
    def _seeds_in_range(cls, seed: int, info: ValidationInfo) -> int:
        # Image i uses seed + i; refused rather than wrapped past 2**32-1 to 0, as the A1111 API does.
        n = info.data.get("n", 1)
        if seed != -1 and seed + n - 1 > SEED_MAX:
            raise ValueError(f"seed + n - 1 must be at most {SEED_MAX}, so at most {SEED_MAX - n + 1} here")
        return seed


class ImageData(BaseModel):
    b64_json: str | None = Field(None, description="Base64 PNG, when response_format is b64_json.")
    url: str | None = Field(None, description="Absolute URL of the PNG, when response_format is url.")
    revised_prompt: str = Field(..., description="The prompt used (never rewritten here).")


class ImagesResponse(BaseModel):
    created: int = Field(..., description="Unix time the job was accepted.")
    data: list[ImageData] = Field(..., description="One entry per image.")


class OpenAIModel(BaseModel):
    id: str = Field(..., description="Model id, usable as 'model'.")
    object: Literal["model"] = Field("model", description="Always 'model'.")
    created: int = Field(0, description="Unix time; 0 as models carry no creation time here.")
    owned_by: str = Field("ablerefusal", description="Always 'ablerefusal'.")


class OpenAIModelList(BaseModel):
    object: Literal["list"] = Field("list", description="Always 'list'.")
    data: list[OpenAIModel] = Field(..., description="Models on the workers.")


class OpenAIErrorBody(BaseModel):
    message: str = Field(..., description="What went wrong, naming the field and the rule.")
    type: str = Field(..., description="invalid_request_error, requests, server_error.")
    param: str | None = Field(None, description="The offending request field, if one.")
    code: str | None = Field(None, description="e.g. invalid_value, model_not_found, invalid_api_key.")


class OpenAIError(BaseModel):
    error: OpenAIErrorBody
