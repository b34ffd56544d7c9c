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
    MAX_MASK_BLUR,
    MAX_SIZE,
    MAX_STEPS,
    MIN_CFG,
    MIN_SIZE,
    SEED_MAX,
    SIZE_MULTIPLE,
)

# A1111 has no limit on n_iter; ours keeps one request from flooding the shared queue.
MAX_N_ITER = 16


class A1111Request(BaseModel):
    """What txt2img and img2img bodies share (A1111's ``StableDiffusionProcessing``). Defaults are A1111's."""

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


class Txt2ImgRequest(A1111Request):
    """``POST /sdapi/v1/txt2img`` body (A1111's ``StableDiffusionProcessingTxt2Img``)."""

    enable_hr: bool = Field(False, description="Hires fix: draw at width x height, upscale, refine. hr_* need it.")
    denoising_strength: float = Field(
        0.75, ge=0.0, le=1.0, description="Strength of the hires second pass (only with enable_hr)."
    )
    # The hr_* fields are checked only with enable_hr: A1111 clients send them all, with any values, when it is off.
    hr_scale: float = Field(2.0, description="Hires upscale factor (>1 to 4) when hr_resize_x and hr_resize_y are 0.")
    hr_upscaler: str | None = Field(
        None,
        description="A1111 upscaler name (GET /upscalers, /latent-upscale-modes: 'Latent', 'Lanczos', 'Nearest', "
        "'None', or a worker's upscaler model) or our id; default Latent.",
    )
    hr_second_pass_steps: int = Field(0, description="Steps of the second pass (0-150); 0 uses steps, as A1111.")
    hr_resize_x: int = Field(0, description="Final width (multiple of 8); 0 derives it from the height or hr_scale.")
    hr_resize_y: int = Field(0, description="Final height (multiple of 8); 0 derives it from the width or hr_scale.")


class Img2ImgRequest(A1111Request):
    """``POST /sdapi/v1/img2img`` body (A1111's ``StableDiffusionProcessingImg2Img``)."""

    init_images: list[str] = Field(
        ...,
        min_length=1,
        description="Base64 images (data: URLs too). One is used for every image of a batch; several give one "
        "image each per iteration (at most batch_size of them), as A1111.",
    )
    resize_mode: int = Field(
        0,
        ge=0,
        le=3,
        description="0 just resize, 1 crop and resize, 2 resize and fill, 3 just resize (latent upscale): done as 0.",
    )
    denoising_strength: float = Field(0.75, ge=0.0, le=1.0, description="How much is redrawn: 0 keeps the input.")
    mask: str | None = Field(
        None,
        description="Base64 inpainting mask: white is repainted; an RGBA mask with transparency counts by its "
        "alpha (opaque repainted), as A1111. Resized to the init image.",
    )
    mask_blur: int | None = Field(
        None, ge=0, le=MAX_MASK_BLUR, description="Mask blur in pixels (sets both mask_blur_x and mask_blur_y)."
    )
    mask_blur_x: int = Field(4, ge=0, le=MAX_MASK_BLUR, description="Horizontal mask blur; must equal mask_blur_y.")
    mask_blur_y: int = Field(4, ge=0, le=MAX_MASK_BLUR, description="Vertical mask blur; must equal mask_blur_x.")
    inpainting_fill: int = Field(
        0, ge=0, le=3, description="Masked area starts from: 0 fill, 1 original, 2 latent noise, 3 latent nothing."
    )
    inpaint_full_res: bool = Field(
        True, description="'Only masked': inpaint a crop around the mask at full resolution and paste it back."
    )
    inpaint_full_res_padding: int = Field(0, ge=0, le=MAX_SIZE, description="Pixels kept around the mask in that crop.")
    inpainting_mask_invert: int = Field(0, ge=0, le=1, description="1 repaints the black part of the mask instead.")
    include_init_images: bool = Field(
        False, description="Echo init_images and mask back in parameters (A1111 sets them to null otherwise)."
    )


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
    """Shape of the entries of /sd-vae (empty here) and /latent-upscale-modes."""

    name: str = Field(..., description="Display name.")


class UpscalerItem(BaseModel):
    """An entry of /upscalers, in A1111's shape."""

    name: str = Field(..., description="Name to send as hr_upscaler.")
    model_name: str | None = Field(None, description="Upscaler model id; null for the PIL filters.")
    model_path: str | None = Field(None, description="Always null: paths are not disclosed.")
    model_url: str | None = Field(None, description="Always null.")
    scale: float | None = Field(None, description="The model's native factor when known (A1111 says 4 for filters).")


class PngInfoRequest(BaseModel):
    image: str = Field(..., description="Base64 image, with or without a data:image/...;base64, prefix.")


class PngInfoResponse(BaseModel):
    info: str = Field(..., description="The 'parameters' text, '' when the image has none.")
    items: dict[str, str] = Field(default_factory=dict, description="Other text chunks of the image.")
    parameters: dict[str, str] = Field(default_factory=dict, description="info parsed as A1111 does.")
