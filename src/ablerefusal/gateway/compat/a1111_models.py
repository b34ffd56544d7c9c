"""Request and response shapes of the AUTOMATIC1111 ``/sdapi/v1`` API, as A1111 clients send and read them.

Only the fields we honour carry types and ranges; every other A1111 field is accepted (``extra="allow"``),
ignored, and echoed back in ``parameters`` as A1111 does. docs/compat.md lists which are which.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from ablerefusal.protocol import (
    MAX_BATCH_SIZE,
    MAX_CFG,
    MAX_SIZE,
    MAX_STEPS,
    MIN_CFG,
    MIN_SIZE,
    SEED_MAX,
    SIZE_MULTIPLE,
)

# A1111 has no limit on n_iter; ours keeps one request from flooding the shared queue.
MAX_N_ITER = 16


class Txt2ImgRequest(BaseModel):
    """``POST /sdapi/v1/txt2img`` body. Defaults are A1111's."""

    model_config = ConfigDict(extra="allow")

    prompt: str = Field(..., min_length=1, description="What to draw. Required and non-empty here (A1111 allows '').")
    negative_prompt: str = Field("", description="What to avoid.")
    styles: list[str] = Field(default_factory=list, description="A1111 prompt styles: accepted, ignored.")
    seed: int = Field(-1, ge=-1, le=SEED_MAX, description="-1 picks a random seed; image i uses seed+i.")
    subseed: int = Field(-1, ge=-1, le=SEED_MAX, description="Variation seed: reported in info, not used.")
    subseed_strength: float = Field(0.0, ge=0, le=1, description="Variation strength: accepted, ignored.")
    sampler_name: str | None = Field(
        None, description="A1111 sampler name ('Euler a', 'DPM++ 2M Karras') or our id; default Euler."
    )
    sampler_index: str | None = Field(None, description="Older spelling of sampler_name, used when it is absent.")
    scheduler: str | None = Field(
        None, description="A1111 1.9+ schedule (automatic, uniform, karras, exponential, sgm_uniform, …)."
    )
    batch_size: int = Field(1, ge=1, le=MAX_BATCH_SIZE, description="Images per iteration, 1-4.")
    n_iter: int = Field(1, ge=1, le=MAX_N_ITER, description=f"Iterations (one queued job each), 1-{MAX_N_ITER}.")
    steps: int = Field(50, ge=1, le=MAX_STEPS, description="Denoising steps, 1-150.")
    cfg_scale: float = Field(7.0, ge=MIN_CFG, le=MAX_CFG, description="Classifier-free guidance scale, 1-30.")
    width: int = Field(
        512,
        ge=MIN_SIZE,
        le=MAX_SIZE,
        multiple_of=SIZE_MULTIPLE,
        description="Width in pixels, 64-2048, multiple of 8.",
    )
    height: int = Field(
        512,
        ge=MIN_SIZE,
        le=MAX_SIZE,
        multiple_of=SIZE_MULTIPLE,
        description="Height in pixels, 64-2048, multiple of 8.",
    )
    override_settings: dict[str, Any] | None = Field(
        None, description="Per-request options; sd_model_checkpoint picks the model, others are ignored."
    )
    override_settings_restore_afterwards: bool = Field(
        True, description="Accepted; overrides here never change the saved options anyway."
    )
    send_images: bool = Field(True, description="Put the images in the response.")
    save_images: bool = Field(False, description="Accepted; images are always kept under /outputs with the job.")


class Txt2ImgResponse(BaseModel):
    images: list[str] = Field(..., description="Base64 PNGs (no data: prefix), each with its parameters chunk.")
    parameters: dict[str, Any] = Field(..., description="The request as received.")
    info: str = Field(..., description="JSON string: seeds, prompts, sizes, sampler, model, infotexts.")


class ProgressState(BaseModel):
    skipped: bool = Field(False, description="The current image was skipped.")
    interrupted: bool = Field(False, description="The current request was interrupted.")
    job: str = Field("", description="What runs, e.g. 'Batch 1 out of 2'.")
    job_count: int = Field(0, description="Iterations (jobs) in the current request.")
    job_timestamp: str = Field("0", description="When the current request started, YYYYmmddHHMMSS.")
    job_no: int = Field(0, description="0-based index of the iteration running.")
    sampling_step: int = Field(0, description="Steps finished in the running iteration.")
    sampling_steps: int = Field(0, description="Steps of the running iteration.")


class ProgressResponse(BaseModel):
    progress: float = Field(..., ge=0, le=1, description="Fraction done of the current request, 0-1.")
    eta_relative: float = Field(..., description="Estimated seconds left.")
    state: ProgressState = Field(..., description="Details of the current request.")
    current_image: str | None = Field(None, description="Base64 preview of the image being made, or null.")
    textinfo: str | None = Field(None, description="Status text.")


class SDModelItem(BaseModel):
    title: str = Field(..., description="'<model_name> [<hash>]', or the name when the hash is unknown.")
    model_name: str = Field(..., description="Our model id.")
    hash: str | None = Field(None, description="First 10 hex digits of sha256, when known.")
    sha256: str | None = Field(None, description="Content hash of a single-file checkpoint, when known.")
    filename: str = Field(..., description="Model id (paths are not disclosed).")
    config: str | None = Field(None, description="Always null: configs are detected, not chosen.")


class SamplerItem(BaseModel):
    name: str = Field(..., description="A1111 display name.")
    aliases: list[str] = Field(default_factory=list, description="Our id and other accepted names.")
    options: dict[str, str] = Field(default_factory=dict, description="scheduler implied by a combined name.")


class SchedulerItem(BaseModel):
    name: str = Field(..., description="Scheduler id as sent in txt2img's scheduler.")
    label: str = Field(..., description="Display name.")
    aliases: list[str] | None = Field(None, description="Other accepted names.")
    default_rho: float = Field(-1.0, description="A1111's rho default; informational.")
    need_inner_model: bool = Field(False, description="Informational; always false here.")


class NamedItem(BaseModel):
    """Shape of the entries of /sd-vae, /upscalers and /latent-upscale-modes (all empty here)."""

    name: str = Field(..., description="Display name.")


class PngInfoRequest(BaseModel):
    image: str = Field(..., description="Base64 image, with or without a data:image/...;base64, prefix.")


class PngInfoResponse(BaseModel):
    info: str = Field(..., description="The 'parameters' text, '' when the image has none.")
    items: dict[str, str] = Field(default_factory=dict, description="Other text chunks of the image.")
    parameters: dict[str, str] = Field(default_factory=dict, description="info parsed as A1111 does.")
