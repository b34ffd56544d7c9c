"""Worker protocol v1: the wire contract between the gateway and inference workers.

Both sides import this module and nothing else of each other, so the gateway never needs torch.
Requests are JSON; ``POST /v1/generate`` answers with an NDJSON stream of ``WorkerEvent`` lines.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

PROTOCOL_VERSION = "1"

SEED_MAX = 2**32 - 1
MIN_SIZE, MAX_SIZE, SIZE_MULTIPLE = 64, 2048, 8
MAX_STEPS = 150
MIN_CFG, MAX_CFG = 1.0, 30.0
MAX_BATCH_SIZE = 4


class ErrorCode(StrEnum):
    invalid_request = "invalid_request"
    model_not_found = "model_not_found"
    out_of_memory = "out_of_memory"
    cancelled = "cancelled"
    busy = "busy"
    internal = "internal"


RETRYABLE_CODES = frozenset({ErrorCode.out_of_memory, ErrorCode.busy})


class ModelFamily(StrEnum):
    sd15 = "sd15"
    sdxl = "sdxl"


class ModelFormat(StrEnum):
    diffusers = "diffusers"
    single_file = "single-file"
    hub = "hub"


class _Wire(BaseModel):
    model_config = ConfigDict(extra="forbid")


class MemoryOptions(_Wire):
    """Memory-saving switches for one call; ``None`` keeps the worker's configured default."""

    attention_slicing: bool | None = Field(None, description="Compute attention in slices (less memory, slower).")
    vae_tiling: bool | None = Field(None, description="Decode the VAE in tiles (on automatically for large images).")
    cpu_offload: bool | None = Field(None, description="Keep idle sub-models in CPU memory (model CPU offload).")


class GenerateItem(_Wire):
    """One job's share of a generation call: its prompts and one seed per image."""

    job_id: str = Field(..., min_length=1, max_length=128, description="Gateway job id the images belong to.")
    prompt: str = Field(..., min_length=1, description="Positive prompt.")
    negative_prompt: str = Field("", description="Negative prompt.")
    seeds: list[Annotated[int, Field(ge=0, le=SEED_MAX)]] = Field(
        ..., min_length=1, max_length=MAX_BATCH_SIZE, description="One explicit seed per image, in image order."
    )


class GenerateCall(_Wire):
    """One pipeline call. Several items are coalesced compatible jobs that share every parameter here."""

    call_id: str | None = Field(
        None, max_length=128, description="Caller-chosen id for cancel; the worker makes one if absent."
    )
    model: str = Field(..., min_length=1, description="Model id from the worker's /v1/models.")
    width: int = Field(512, ge=MIN_SIZE, le=MAX_SIZE, multiple_of=SIZE_MULTIPLE, description="Image width in pixels.")
    height: int = Field(512, ge=MIN_SIZE, le=MAX_SIZE, multiple_of=SIZE_MULTIPLE, description="Image height in pixels.")
    steps: int = Field(20, ge=1, le=MAX_STEPS, description="Denoising steps.")
    cfg_scale: float = Field(7.5, ge=MIN_CFG, le=MAX_CFG, description="Classifier-free guidance scale.")
    sampler: str = Field("euler_a", description="Sampler id or A1111 name (see /v1/info samplers).")
    items: list[GenerateItem] = Field(
        ..., min_length=1, description="Jobs in this call; images are tagged with job_id."
    )
    previews: bool = Field(False, description="Attach a small latent preview to progress events.")
    preview_every: int = Field(1, ge=1, description="Send a preview every N steps when previews are on.")
    memory: MemoryOptions | None = Field(
        None, description="Per-call memory options (the gateway asks for them after OOM)."
    )


class CancelRequest(_Wire):
    """Body of ``POST /v1/generate/{call_id}/cancel``: no job id stops the whole call."""

    job_id: str | None = Field(None, description="Drop only this item of the call; its images are not sent.")


class Timings(_Wire):
    queue_s: float = Field(0.0, description="Time waiting for the device lock.")
    load_s: float = Field(0.0, description="Time loading or moving the pipeline.")
    generate_s: float = Field(0.0, description="Denoising and VAE decode.")
    encode_s: float = Field(0.0, description="PNG encoding (overlaps the next call where possible).")
    total_s: float = Field(0.0, description="Wall time of the whole call.")


class StartedEvent(_Wire):
    type: Literal["started"] = "started"
    call_id: str
    model: str
    device: str
    job_ids: list[str]


class ProgressEvent(_Wire):
    type: Literal["progress"] = "progress"
    call_id: str
    step: int = Field(..., description="Steps finished so far (1-based).")
    total: int = Field(..., description="Total steps.")
    preview: str | None = Field(None, description="Base64 JPEG of the latent preview of the first live item.")
    job_ids: list[str] = Field(default_factory=list, description="Jobs still live in the call.")


class ImageEvent(_Wire):
    type: Literal["image"] = "image"
    call_id: str
    job_id: str
    index: int = Field(..., ge=0, description="Image index within the job.")
    seed: int
    png_base64: str = Field(..., description="The PNG file, base64, with A1111 'parameters' text chunk.")
    infotext: str = Field(..., description="A1111-compatible parameters text stored in the PNG.")
    metadata: dict[str, object] = Field(default_factory=dict, description="Our JSON metadata, also in the PNG.")


class GeneratedEvent(_Wire):
    """The pipeline call is over and the device is free again; the images (still being encoded) and
    ``done`` follow. A gateway may send this worker its next call as soon as it reads this."""

    type: Literal["generated"] = "generated"
    call_id: str
    generate_s: float = Field(..., description="Denoising and VAE decode of this call.")


class ItemCancelledEvent(_Wire):
    type: Literal["item_cancelled"] = "item_cancelled"
    call_id: str
    job_id: str


class DoneEvent(_Wire):
    type: Literal["done"] = "done"
    call_id: str
    timings: Timings


class ErrorEvent(_Wire):
    type: Literal["error"] = "error"
    call_id: str | None = None
    code: ErrorCode
    message: str
    retryable: bool = False
    job_id: str | None = Field(None, description="Set when only this item failed.")


WorkerEvent = Annotated[
    StartedEvent | ProgressEvent | GeneratedEvent | ImageEvent | ItemCancelledEvent | DoneEvent | ErrorEvent,
    Field(discriminator="type"),
]
worker_event_adapter: TypeAdapter[WorkerEvent] = TypeAdapter(WorkerEvent)


def parse_event(line: str | bytes) -> WorkerEvent:
    """Parse one NDJSON line of a generation stream."""
    return worker_event_adapter.validate_json(line)


class ErrorDetail(_Wire):
    field: str | None = Field(None, description="Dotted path of the offending field.")
    message: str


class ErrorBody(_Wire):
    """JSON body of every non-2xx worker answer: ``{"error": {...}}``."""

    code: ErrorCode
    message: str
    retryable: bool = False
    details: list[ErrorDetail] = Field(default_factory=list)
    available: list[str] | None = Field(None, description="Valid values, e.g. model ids or sampler ids.")


class ErrorResponse(_Wire):
    error: ErrorBody


class ModelInfo(_Wire):
    id: str = Field(..., description="Stable, path-free model id.")
    name: str = Field(..., description="Human-readable name.")
    family: ModelFamily
    format: ModelFormat
    size_bytes: int | None = Field(None, description="Size on disk; None for hub ids not yet fetched.")
    loaded: bool = Field(False, description="Resident in the pipeline cache.")
    demo: bool = Field(False, description="Tiny random-weight model: its images are noise.")
    sha256: str | None = Field(None, description="Content hash of a single-file checkpoint, when known.")
    default_size: int = Field(512, description="Native resolution of the family (512 or 1024).")


class ModelList(_Wire):
    models: list[ModelInfo]


class SamplerInfo(_Wire):
    id: str = Field(..., description="Short API id, e.g. dpmpp_2m_karras.")
    name: str = Field(..., description="AUTOMATIC1111 display name, e.g. 'DPM++ 2M Karras'.")
    aliases: list[str] = Field(default_factory=list)


class WorkerInfo(_Wire):
    worker_id: str
    protocol_version: str = PROTOCOL_VERSION
    device: str = Field(..., description="Device actually in use, e.g. cuda:0 or cpu.")
    device_name: str = Field("", description="e.g. NVIDIA H200.")
    dtype: str
    versions: dict[str, str] = Field(default_factory=dict)
    loaded_models: list[str] = Field(default_factory=list)
    memory: dict[str, float] = Field(default_factory=dict, description="Memory figures in bytes.")
    samplers: list[SamplerInfo] = Field(default_factory=list)
    busy: bool = False
    max_batch_images: int = Field(MAX_BATCH_SIZE * 4, description="Most images the worker accepts in one call.")
    compiled_shapes: list[str] = Field(default_factory=list, description="Warm compiled shapes: model:WxH:bN.")
    fallback_reason: str | None = Field(None, description="Why the configured device was not used, if it was not.")
