"""Public API shapes of the gateway (``/api/v1``). Every field has a description: it becomes the OpenAPI
docs and, through openapi-typescript, the web UI's types.

Fields are only ever added to these models, never renamed (DESIGN.md §3).
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from ablerefusal.protocol import (
    MAX_BATCH_SIZE,
    MAX_CFG,
    MAX_CLIP_SKIP,
    MAX_CONTROLNET_UNITS,
    MAX_LORA_WEIGHT,
    MAX_LORAS,
    MAX_MASK_BLUR,
    MAX_SIZE,
    MAX_STEPS,
    MIN_CFG,
    MIN_LORA_WEIGHT,
    MIN_SIZE,
    SEED_MAX,
    SIZE_MULTIPLE,
    ControlMode,
    HiresOptions,
    InpaintingFill,
    ModelInfo,
    OutpaintBorders,
    ResizeMode,
)


class JobStatus(StrEnum):
    queued = "queued"
    running = "running"
    completed = "completed"
    failed = "failed"
    cancelled = "cancelled"
    timed_out = "timed_out"


TERMINAL_STATUSES = frozenset({JobStatus.completed, JobStatus.failed, JobStatus.cancelled, JobStatus.timed_out})


class LoraSpec(BaseModel):
    """One LoRA applied to a job (call-wide on the worker: coalesced jobs share the LoRA set)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(
        ..., min_length=1, max_length=128, description="LoRA id from GET /api/v1/models?kind=lora (never a path)."
    )
    weight: float = Field(
        1.0, ge=MIN_LORA_WEIGHT, le=MAX_LORA_WEIGHT, description="Strength, -4 to 4; 0 gives the pixels of no LoRA."
    )


class ControlNetSpec(BaseModel):
    """One ControlNet unit: a control image steering the composition through a ControlNet model."""

    model_config = ConfigDict(extra="forbid")

    model: str = Field(
        ..., min_length=1, max_length=128, description="ControlNet id from GET /api/v1/models?kind=controlnet."
    )
    image: str = Field(
        ...,
        min_length=1,
        description="Control image: an upload id (POST /api/v1/uploads), or inline base64 / data: URL (stored as "
        "an upload before the job is accepted; the job then holds its id).",
    )
    preprocessor: str = Field(
        "none",
        min_length=1,
        description="Preprocessor id from GET /api/v1/controlnet/preprocessors run on the image first; none uses "
        "the image as the control map.",
    )
    weight: float = Field(1.0, ge=0.0, le=2.0, description="Conditioning scale, 0–2; 0 gives the pixels of no unit.")
    guidance_start: float = Field(0.0, ge=0.0, le=1.0, description="Fraction of the steps where the unit starts.")
    guidance_end: float = Field(
        1.0, ge=0.0, le=1.0, description="Fraction of the steps where it stops; not below guidance_start."
    )
    control_mode: ControlMode = Field(
        ControlMode.balanced,
        description="balanced, prompt (my prompt is more important) or controlnet (ControlNet is more important).",
    )
    resize_mode: ResizeMode = Field(
        ResizeMode.resize, description="How the control image is fitted to the output size: resize, crop or fill."
    )
    processor_res: int = Field(512, ge=64, le=2048, description="Resolution the preprocessor works at, 64–2048.")
    threshold_a: float | None = Field(
        None, description="First preprocessor parameter (canny: low threshold); None: its default."
    )
    threshold_b: float | None = Field(
        None, description="Second preprocessor parameter (canny: high threshold); None: its default."
    )
    pixel_perfect: bool = Field(
        False, description="Let the preprocessor work at the output's resolution instead of processor_res."
    )


class GenerateRequest(BaseModel):
    """Parameters of one generation job, validated before anything is stored."""

    model_config = ConfigDict(extra="forbid")

    prompt: str = Field(..., min_length=1, description="What to draw. Required, non-empty; length limited by config.")
    negative_prompt: str = Field("", description="What to avoid.")
    width: int = Field(
        512, ge=MIN_SIZE, le=MAX_SIZE, multiple_of=SIZE_MULTIPLE, description="Width in pixels, 64–2048, multiple of 8."
    )
    height: int = Field(
        512,
        ge=MIN_SIZE,
        le=MAX_SIZE,
        multiple_of=SIZE_MULTIPLE,
        description="Height in pixels, 64–2048, multiple of 8.",
    )
    steps: int = Field(20, ge=1, le=MAX_STEPS, description="Denoising steps, 1–150.")
    cfg_scale: float = Field(7.5, ge=MIN_CFG, le=MAX_CFG, description="Classifier-free guidance scale, 1.0–30.0.")
    sampler: str = Field("euler_a", description="Sampler id (e.g. euler_a, dpmpp_2m_karras) or its A1111 name.")
    seed: int = Field(-1, ge=-1, le=SEED_MAX, description="-1 picks a random seed; image i uses seed+i.")
    batch_size: int = Field(1, ge=1, le=MAX_BATCH_SIZE, description="Images in this job, 1–4.")
    model: str | None = Field(None, description="Model id from /api/v1/models; the configured default if omitted.")
    priority: int = Field(0, ge=-100, le=100, description="Higher runs first; FIFO within a priority.")
    timeout_s: float | None = Field(
        None, gt=0, description="Job deadline in seconds from submission; may only lower the configured default."
    )
    previews: bool = Field(
        False,
        description="Make live preview images from the first step, for a client that will watch the job (the "
        "studio). Otherwise previews are made only while an event-stream subscriber asks for them.",
    )
    # -- image inputs (issue 11): img2img, inpainting, outpainting, hires fix --------------------------
    init_image: str | None = Field(
        None,
        description="Image to start from: an upload id (POST /api/v1/uploads), or the image inline as base64 or a "
        "data: URL (stored as an upload before the job is accepted; the job then holds its id). Makes the job "
        "image-to-image, or inpainting with `mask`, or outpainting with `outpaint`.",
    )
    denoising_strength: float = Field(
        0.75, ge=0.0, le=1.0, description="How much of init_image is redrawn: 0 keeps it, 1 ignores it."
    )
    resize_mode: ResizeMode = Field(
        ResizeMode.resize,
        description="How init_image is fitted to width x height: resize (stretch), crop (fill and cut), fill "
        "(fit and pad), as A1111's resize_mode 0/1/2.",
    )
    mask: str | None = Field(
        None,
        description="Inpainting mask, an upload id or inline image: white is repainted (an RGBA mask whose "
        "transparent pixels mark the area, as OpenAI sends, works too). Needs init_image; resized to it.",
    )
    mask_blur: int = Field(4, ge=0, le=MAX_MASK_BLUR, description="Blur radius of the mask edge in pixels, 0–64.")
    inpaint_only_masked: bool = Field(
        False, description="Inpaint a crop around the mask at full resolution and paste it back (A1111 'only masked')."
    )
    inpaint_padding: int = Field(32, ge=0, le=MAX_SIZE, description="Pixels kept around the mask in that crop.")
    inpainting_fill: InpaintingFill = Field(
        InpaintingFill.original,
        description="What the masked area starts from: original, latent_noise, latent_nothing or fill.",
    )
    mask_invert: bool = Field(False, description="Repaint the black part of the mask instead of the white.")
    outpaint: OutpaintBorders | None = Field(
        None, description="Grow the canvas by these pixels per side (multiples of 8) and inpaint the new border."
    )
    hires: HiresOptions | None = Field(
        None, description="Hires fix for text-to-image: draw at width x height, upscale, refine (no init_image)."
    )
    # -- adapters (issue 12): LoRA, clip skip, VAE, ControlNet -------------------------------------------
    loras: list[LoraSpec] = Field(
        default_factory=list,
        max_length=MAX_LORAS,
        description="LoRAs to apply with their weights. `<lora:name:weight>` tags in the prompt work too (a name "
        "given in both places takes this field's weight); every name must be a LoRA of the model's family.",
    )
    clip_skip: int | None = Field(
        None,
        ge=1,
        le=MAX_CLIP_SKIP,
        description="Text-encoder layers to skip from the end, 1–12 (A1111 'Clip skip'); 1 or null: the last layer.",
    )
    vae: str | None = Field(
        None,
        min_length=1,
        max_length=128,
        description="VAE id from GET /api/v1/models?kind=vae, of the model's family; null: the checkpoint's own.",
    )
    controlnets: list[ControlNetSpec] = Field(
        default_factory=list, max_length=MAX_CONTROLNET_UNITS, description="ControlNet units, applied together."
    )


class JobResult(BaseModel):
    image_url: str = Field(..., description="URL of the PNG under /outputs.")
    seed: int = Field(..., description="Seed this image was generated with.")
    index: int = Field(0, description="Image index within the job.")
    metadata: dict[str, Any] = Field(default_factory=dict, description="Generation parameters stored in the PNG.")
    infotext: str = Field("", description="AUTOMATIC1111-style parameters text of this image.")


class JobError(BaseModel):
    code: str = Field(..., description="Machine-readable error code (e.g. out_of_memory, internal, timeout).")
    message: str = Field(..., description="Human-readable explanation.")


class JobInputs(BaseModel):
    """Where a job's input images are served: the uploads its request names by id (``request.init_image`` and
    ``request.mask`` hold the ids, also for images that were sent inline)."""

    init_image: str | None = Field(None, description="URL of the init image (GET, PNG), e.g. /api/v1/uploads/<id>.")
    mask: str | None = Field(None, description="URL of the inpainting mask (GET, PNG); null without a mask.")


class Job(BaseModel):
    """A generation job as the API shows it."""

    id: str = Field(..., description="Job id (UUID).")
    status: JobStatus = Field(..., description="Lifecycle state.")
    progress: float = Field(0, ge=0, le=100, description="Percent done, 0–100.")
    step: int = Field(0, description="Denoising steps finished.")
    total_steps: int = Field(0, description="Denoising steps in total.")
    queue_position: int | None = Field(None, description="1-based position among queued jobs; null when not queued.")
    priority: int = Field(0, description="Priority the job was submitted with.")
    attempts: int = Field(0, description="Times the job has been started on a worker.")
    created_at: datetime = Field(..., description="When the job was accepted.")
    started_at: datetime | None = Field(None, description="When the job last started running.")
    finished_at: datetime | None = Field(None, description="When the job reached a terminal state.")
    deadline_at: datetime | None = Field(None, description="When the job times out.")
    worker_id: str | None = Field(None, description="Worker running or last running the job.")
    request: GenerateRequest = Field(
        ...,
        description="The validated parameters (seed resolved to the one used; input images named by upload id).",
    )
    inputs: JobInputs | None = Field(
        None, description="URLs of the job's input images (init image, mask); null for a text-to-image job."
    )
    results: list[JobResult] = Field(default_factory=list, description="Finished images, in index order.")
    error: JobError | None = Field(None, description="Why the job failed, timed out or was cancelled.")
    preview: str | None = Field(
        None,
        description="Deprecated, null in job reads: the latest preview is at preview_url, and each one comes as "
        "a `preview` event on /generate/{id}/events.",
    )
    preview_url: str | None = Field(
        None, description="URL of the latest latent preview (JPEG) while the job runs and has one; else null."
    )


class JobPage(BaseModel):
    items: list[Job] = Field(..., description="Jobs, newest first.")
    total: int = Field(..., description="Jobs matching the filter.")
    offset: int = Field(..., description="Offset of the first item.")
    limit: int = Field(..., description="Page size.")


class QueueCounts(BaseModel):
    queued: int = Field(0, description="Jobs waiting.")
    running: int = Field(0, description="Jobs on a worker.")
    completed: int = Field(0, description="Jobs completed.")
    failed: int = Field(0, description="Jobs failed.")
    cancelled: int = Field(0, description="Jobs cancelled.")
    timed_out: int = Field(0, description="Jobs timed out.")


class QueueStatus(BaseModel):
    counts: QueueCounts = Field(..., description="Jobs by status.")
    running: list[Job] = Field(default_factory=list, description="Running jobs.")
    queued: list[Job] = Field(default_factory=list, description="Queued jobs in the order they will run.")
    max_queue_length: int = Field(..., description="Submit answers 429 beyond this many queued jobs.")


class ModelKind(StrEnum):
    """Kinds of model files the workers list (GET /api/v1/models?kind=)."""

    checkpoint = "checkpoint"
    lora = "lora"
    embedding = "embedding"
    controlnet = "controlnet"
    vae = "vae"
    upscaler = "upscaler"


class ModelsResponse(BaseModel):
    models: list[ModelInfo] = Field(..., description="Models available on the workers.")
    default: str | None = Field(None, description="Model used when a request names none.")


class WorkerStatus(BaseModel):
    id: str = Field(..., description="Worker id (its URL for remote workers).")
    url: str = Field(..., description="Base URL of the worker's protocol v1 API.")
    local: bool = Field(..., description="Started and supervised by this gateway.")
    ready: bool = Field(..., description="Answering /v1/ready.")
    busy: bool = Field(False, description="Running a generation call.")
    device: str | None = Field(None, description="Device the worker reports.")
    gpu: str | None = Field(None, description="The GPU a local worker is pinned to (its CUDA_VISIBLE_DEVICES).")
    restarts: int = Field(0, description="Times a local worker was restarted after a crash.")
    last_error: str | None = Field(None, description="Last probe or spawn error.")
    held_by: str | None = Field(
        None,
        description="A worker shared by the fleet (registered in the store): the id of the gateway whose lease lets "
        "it send the worker calls (null: nobody holds it now; always null for a local worker).",
    )


class ReadyResponse(BaseModel):
    ready: bool = Field(..., description="Store reachable and at least one worker ready.")
    store: bool = Field(..., description="Job store reachable.")
    workers: list[WorkerStatus] = Field(default_factory=list, description="Every configured worker.")
    reason: str | None = Field(None, description="Why the gateway is not ready.")


class FieldError(BaseModel):
    field: str = Field(..., description="Dotted name of the offending field, e.g. width.")
    message: str = Field(..., description="The rule it broke.")


class ApiError(BaseModel):
    code: str = Field(..., description="e.g. invalid_request, not_found, queue_full, conflict, unauthorized.")
    message: str = Field(..., description="Human-readable explanation.")
    details: list[FieldError] = Field(default_factory=list, description="One entry per bad field.")
    available: list[str] | None = Field(None, description="Valid values (model or sampler ids) when relevant.")


class ErrorEnvelope(BaseModel):
    """Body of every 4xx/5xx answer of /api/v1."""

    error: ApiError
    job: Job | None = Field(None, description="The job, for 408/500 answers of synchronous mode.")
