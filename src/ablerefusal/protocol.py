"""Worker protocol v1: the wire contract between the gateway and inference workers.

Both sides import this module and nothing else of each other, so the gateway never needs torch.
Requests are JSON; ``POST /v1/generate`` answers with an NDJSON stream of ``WorkerEvent`` lines.

The protocol grows by optional fields (DESIGN.md §10): what a worker answers (responses, events) is read with
models that ignore fields they do not know, so a newer worker's additions never break an older gateway, while
what a worker receives stays strict so a typo is an error rather than a silently ignored option. Only an
incompatible change bumps the major number of ``PROTOCOL_VERSION``; a gateway refuses a worker of another
major version.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

# "MAJOR.MINOR": the minor number grows with optional fields and never matters for compatibility.
PROTOCOL_VERSION = "1.0"

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
    """What a worker receives: unknown fields are refused."""

    model_config = ConfigDict(extra="forbid")


class _Answer(BaseModel):
    """What a worker sends back: unknown fields (from a newer worker) are ignored."""

    model_config = ConfigDict(extra="ignore")


def protocol_major(version: str) -> int | None:
    """The major number of a ``MAJOR[.MINOR]`` version string; None when it is not one."""
    head = version.strip().split(".", 1)[0]
    return int(head) if head.isdigit() else None


def incompatible_protocol(version: str) -> str | None:
    """Why a peer speaking ``version`` cannot be used by this side, or None when it can (same major)."""
    if protocol_major(version) == protocol_major(PROTOCOL_VERSION):
        return None
    return (
        f"speaks worker protocol {version!r}, incompatible with this gateway's {PROTOCOL_VERSION} "
        "(major versions differ): run the same AbleRefusal version on gateway and workers"
    )


class MemoryOptions(_Wire):
    """Memory-saving switches for one call; ``None`` keeps the worker's configured default."""

    attention_slicing: bool | None = Field(None, description="Compute attention in slices (less memory, slower).")
    vae_tiling: bool | None = Field(None, description="Decode the VAE in tiles (on automatically for large images).")
    cpu_offload: bool | None = Field(None, description="Keep idle sub-models in CPU memory (model CPU offload).")


MAX_MASK_BLUR = 64
# The most pixels of one input image on the wire; the gateway's storage.max_input_pixels may not go above it.
MAX_INPUT_PIXELS = 4096 * 4096
# One input image on the wire, before base64. The gateway forwards what it stored: a PNG re-encoded from what the
# client sent, which for a photo is often several times the JPEG's size. So the cap is the largest PNG an image of
# MAX_INPUT_PIXELS can make: 4 bytes a pixel (RGBA) that deflate cannot shrink, plus PNG's framing (a filter byte
# a row, stored-block and chunk headers: well under 1 MiB at that size).
MAX_INPUT_IMAGE_BYTES = 4 * MAX_INPUT_PIXELS + 1024 * 1024


class GenerationMode(StrEnum):
    """What a call draws from: text alone, an init image, or an init image with a mask (inpaint, outpaint)."""

    txt2img = "txt2img"
    img2img = "img2img"
    inpaint = "inpaint"
    outpaint = "outpaint"


class ResizeMode(StrEnum):
    """How an init image is fitted to the call's size, as A1111's resize_mode 0/1/2."""

    resize = "resize"
    crop = "crop"
    fill = "fill"


class InpaintingFill(StrEnum):
    """What the masked area starts from, as A1111's inpainting_fill 0..3 (fill, original, noise, nothing)."""

    fill = "fill"
    original = "original"
    latent_noise = "latent_noise"
    latent_nothing = "latent_nothing"


class OutpaintBorders(_Wire):
    """Pixels added on each side of the (fitted) init image; the new border is inpainted."""

    left: int = Field(0, ge=0, le=MAX_SIZE, multiple_of=SIZE_MULTIPLE, description="Pixels added on the left.")
    right: int = Field(0, ge=0, le=MAX_SIZE, multiple_of=SIZE_MULTIPLE, description="Pixels added on the right.")
    top: int = Field(0, ge=0, le=MAX_SIZE, multiple_of=SIZE_MULTIPLE, description="Pixels added at the top.")
    bottom: int = Field(0, ge=0, le=MAX_SIZE, multiple_of=SIZE_MULTIPLE, description="Pixels added at the bottom.")


class HiresOptions(_Wire):
    """Hires fix for txt2img: draw at the call's size, upscale, then refine with an image-to-image pass."""

    scale: float | None = Field(
        None, gt=1.0, le=4.0, description="Upscale factor (A1111 hr_scale); width/height win when given."
    )
    width: int | None = Field(
        None, ge=MIN_SIZE, le=MAX_SIZE, multiple_of=SIZE_MULTIPLE, description="Final width (A1111 hr_resize_x)."
    )
    height: int | None = Field(
        None, ge=MIN_SIZE, le=MAX_SIZE, multiple_of=SIZE_MULTIPLE, description="Final height (A1111 hr_resize_y)."
    )
    upscaler: str = Field("latent", min_length=1, description="latent, lanczos or nearest (see /v1/info upscalers).")
    steps: int | None = Field(
        None, ge=1, le=MAX_STEPS, description="Steps of the second pass (A1111 hr_second_pass_steps); None: the call's."
    )
    denoising_strength: float = Field(0.7, ge=0.0, le=1.0, description="Strength of the second pass.")


MAX_CONTROLNET_UNITS = 4


class ControlMode(StrEnum):
    """sd-webui-controlnet's control modes: Balanced, "My prompt is more important" (soft weights, deeper
    layers weaker), "ControlNet is more important" (soft weights, and no control on the unconditional pass)."""

    balanced = "balanced"
    prompt = "prompt"
    controlnet = "controlnet"


def controlnet_conflict(
    mode: GenerationMode, hires: bool, inpaint_only_masked: bool, inpainting_fill: InpaintingFill
) -> tuple[str, str] | None:
    """(field, rule) when ControlNet units cannot run with these call options, else None. Shared so the gateway
    refuses at submit what a worker would refuse."""
    if hires:
        return "hires", "the hires fix does not run with controlnets"
    if mode is GenerationMode.inpaint and inpaint_only_masked:
        return "inpaint_only_masked", (
            "does not run with controlnets (diffusers' ControlNet inpaint pipelines crop around the mask for a single "
            "ControlNet only); inpaint the whole image"
        )
    if mode in (GenerationMode.inpaint, GenerationMode.outpaint) and inpainting_fill in (
        InpaintingFill.latent_noise,
        InpaintingFill.latent_nothing,
    ):
        return "inpainting_fill", (
            f"{inpainting_fill.value} does not run with controlnets (diffusers' ControlNet inpaint pipelines take no "
            "latents to start from); use fill or original"
        )
    return None


class ControlNetUnit(_Wire):
    """One ControlNet unit of a call; its control image is per item (``GenerateItem.control_images``)."""

    model: str = Field(..., min_length=1, description="ControlNet id from the worker's /v1/models?kind=controlnet.")
    preprocessor: str = Field("none", min_length=1, description="Preprocessor id (see /v1/controlnet/preprocessors).")
    weight: float = Field(1.0, ge=0.0, le=2.0, description="Conditioning scale; 0 leaves the image as without it.")
    guidance_start: float = Field(0.0, ge=0.0, le=1.0, description="Fraction of the steps where control starts.")
    guidance_end: float = Field(1.0, ge=0.0, le=1.0, description="Fraction of the steps where control ends.")
    control_mode: ControlMode = Field(ControlMode.balanced, description="balanced, prompt or controlnet.")
    resize_mode: ResizeMode = Field(ResizeMode.resize, description="How the control image is fitted to the call.")
    processor_res: int = Field(512, ge=64, le=2048, description="Resolution the preprocessor works at.")
    threshold_a: float | None = Field(None, description="Preprocessor parameter 1 (canny: low threshold).")
    threshold_b: float | None = Field(None, description="Preprocessor parameter 2 (canny: high threshold).")
    pixel_perfect: bool = Field(False, description="Preprocess at the call's size (A1111 Pixel Perfect).")


MAX_LORAS = 8
MIN_LORA_WEIGHT, MAX_LORA_WEIGHT = -4.0, 4.0
MAX_CLIP_SKIP = 12


class LoraRef(_Wire):
    """One LoRA of a call: an id from the worker's ``/v1/models?kind=lora`` and its strength."""

    name: str = Field(..., min_length=1, max_length=128, description="LoRA id (file name without suffix).")
    weight: float = Field(
        1.0, ge=MIN_LORA_WEIGHT, le=MAX_LORA_WEIGHT, description="Strength; 0 gives the pixels of no LoRA."
    )


class GenerateItem(_Wire):
    """One job's share of a generation call: its prompts and one seed per image."""

    job_id: str = Field(..., min_length=1, max_length=128, description="Gateway job id the images belong to.")
    prompt: str = Field(..., min_length=1, description="Positive prompt.")
    negative_prompt: str = Field("", description="Negative prompt.")
    seeds: list[Annotated[int, Field(ge=0, le=SEED_MAX)]] = Field(
        ..., min_length=1, max_length=MAX_BATCH_SIZE, description="One explicit seed per image, in image order."
    )
    cfg_scale: float | None = Field(
        None,
        ge=MIN_CFG,
        le=MAX_CFG,
        description=(
            "This item's guidance scale when it differs from the call's (only to workers whose /v1/info says "
            "per_item_cfg). Within one call every item is guided (> 1) or none is."
        ),
    )
    init_image: str | None = Field(
        None,
        description="Init image (PNG, JPEG or WebP bytes, base64) for img2img, inpaint and outpaint calls.",
    )
    mask: str | None = Field(
        None,
        description=(
            "Inpainting mask (PNG, JPEG or WebP bytes, base64): white is repainted; an RGBA mask with transparency "
            "marks the transparent area instead. Resized to the init image when sizes differ."
        ),
    )
    control_images: list[str] = Field(
        default_factory=list,
        max_length=MAX_CONTROLNET_UNITS,
        description="One control image (PNG, JPEG or WebP, base64) per unit of the call's controlnets, in order.",
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
    cfg_scale: float = Field(
        7.5, ge=MIN_CFG, le=MAX_CFG, description="Classifier-free guidance scale (an item's own cfg_scale wins)."
    )
    sampler: str = Field("euler_a", description="Sampler id or A1111 name (see /v1/info samplers).")
    items: list[GenerateItem] = Field(
        ..., min_length=1, description="Jobs in this call; images are tagged with job_id."
    )
    previews: bool = Field(False, description="Attach a small latent preview to progress events.")
    preview_every: int = Field(1, ge=1, description="Send a preview every N steps when previews are on.")
    memory: MemoryOptions | None = Field(
        None, description="Per-call memory options (the gateway asks for them after OOM)."
    )
    mode: GenerationMode = Field(
        GenerationMode.txt2img, description="txt2img, img2img, inpaint (needs masks) or outpaint (needs borders)."
    )
    denoising_strength: float = Field(
        0.75, ge=0.0, le=1.0, description="How much of an init image is redrawn (0 keeps it, 1 ignores it)."
    )
    resize_mode: ResizeMode = Field(ResizeMode.resize, description="How init images are fitted to width x height.")
    mask_blur: int = Field(4, ge=0, le=MAX_MASK_BLUR, description="Gaussian blur radius of the mask in pixels.")
    inpaint_only_masked: bool = Field(
        False, description="Inpaint a crop around the mask at full resolution and paste it back (A1111 full res)."
    )
    inpaint_padding: int = Field(32, ge=0, le=MAX_SIZE, description="Pixels around the mask kept in that crop.")
    inpainting_fill: InpaintingFill = Field(
        InpaintingFill.original, description="What the masked area starts from before denoising."
    )
    mask_invert: bool = Field(False, description="Repaint the black part of the mask instead of the white.")
    outpaint: OutpaintBorders | None = Field(None, description="Borders to grow the canvas by (mode outpaint).")
    hires: HiresOptions | None = Field(None, description="Hires fix (mode txt2img only).")
    controlnets: list[ControlNetUnit] = Field(
        default_factory=list,
        max_length=MAX_CONTROLNET_UNITS,
        description="ControlNet units shared by every item (each item brings its own control images).",
    )
    loras: list[LoraRef] = Field(
        default_factory=list,
        max_length=MAX_LORAS,
        description=(
            "LoRAs for every item of the call; merged with each prompt's <lora:name:weight> tags (this field's "
            "weight wins per name)."
        ),
    )
    clip_skip: int | None = Field(
        None, ge=1, le=MAX_CLIP_SKIP, description="A1111 clip skip: 1 (or None) uses the last text encoder layer."
    )
    vae: str | None = Field(
        None, min_length=1, max_length=128, description="VAE id from /v1/models?kind=vae; None: the checkpoint's own."
    )


class CancelRequest(_Wire):
    """Body of ``POST /v1/generate/{call_id}/cancel``: no job id stops the whole call."""

    job_id: str | None = Field(None, description="Drop only this item of the call; its images are not sent.")


class Timings(_Answer):
    queue_s: float = Field(0.0, description="Time waiting for the device lock.")
    load_s: float = Field(0.0, description="Time loading or moving the pipeline.")
    generate_s: float = Field(0.0, description="Denoising and VAE decode.")
    encode_s: float = Field(0.0, description="PNG encoding (overlaps the next call where possible).")
    total_s: float = Field(0.0, description="Wall time of the whole call.")


class StartedEvent(_Answer):
    type: Literal["started"] = "started"
    call_id: str
    model: str
    device: str
    job_ids: list[str]


class ProgressEvent(_Answer):
    type: Literal["progress"] = "progress"
    call_id: str
    step: int = Field(..., description="Steps finished so far (1-based).")
    total: int = Field(..., description="Total steps.")
    preview: str | None = Field(None, description="Base64 JPEG of the latent preview of the first live item.")
    job_ids: list[str] = Field(default_factory=list, description="Jobs still live in the call.")


class ImageEvent(_Answer):
    type: Literal["image"] = "image"
    call_id: str
    job_id: str
    index: int = Field(..., ge=0, description="Image index within the job.")
    seed: int
    png_base64: str = Field(..., description="The PNG file, base64, with A1111 'parameters' text chunk.")
    infotext: str = Field(..., description="A1111-compatible parameters text stored in the PNG.")
    metadata: dict[str, object] = Field(default_factory=dict, description="Our JSON metadata, also in the PNG.")


class GeneratedEvent(_Answer):
    """The pipeline call is over and the device is free again; the images (still being encoded) and
    ``done`` follow. A gateway may send this worker its next call as soon as it reads this."""

    type: Literal["generated"] = "generated"
    call_id: str
    generate_s: float = Field(..., description="Denoising and VAE decode of this call.")


class ItemCancelledEvent(_Answer):
    type: Literal["item_cancelled"] = "item_cancelled"
    call_id: str
    job_id: str


class DoneEvent(_Answer):
    type: Literal["done"] = "done"
    call_id: str
    timings: Timings


class ErrorEvent(_Answer):
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


# A line whose type is not one of these comes from a newer worker; readers skip it.
EVENT_TYPES = frozenset({"started", "progress", "generated", "image", "item_cancelled", "done", "error"})


def parse_event(line: str | bytes) -> WorkerEvent:
    """Parse one NDJSON line of a generation stream."""
    return worker_event_adapter.validate_json(line)


class ErrorDetail(_Answer):
    field: str | None = Field(None, description="Dotted path of the offending field.")
    message: str


class ErrorBody(_Answer):
    """JSON body of every non-2xx worker answer: ``{"error": {...}}``."""

    code: ErrorCode
    message: str
    retryable: bool = False
    details: list[ErrorDetail] = Field(default_factory=list)
    available: list[str] | None = Field(None, description="Valid values, e.g. model ids or sampler ids.")


class ErrorResponse(_Answer):
    error: ErrorBody


class EmbeddingFacts(_Answer):
    """What a textual-inversion file says of itself, as AUTOMATIC1111 reports it (``/sdapi/v1/embeddings``)."""

    vectors: int = Field(..., description="Number of vectors (tokens) the embedding stands for.")
    shape: int = Field(
        ..., description="Width of each vector; an SDXL file's is the sum of its clip_l and clip_g widths (A1111)."
    )
    step: int | None = Field(None, description="Training steps, when the file records them.")
    sd_checkpoint: str | None = Field(None, description="Hash of the checkpoint it was trained on, when recorded.")
    sd_checkpoint_name: str | None = Field(None, description="Name of that checkpoint, when recorded.")


class ModelInfo(_Answer):
    id: str = Field(..., description="Stable, path-free model id.")
    kind: str = Field(
        "checkpoint", description="checkpoint, lora, embedding, controlnet, vae or upscaler (see MODEL_KINDS)."
    )
    name: str = Field(..., description="Human-readable name.")
    family: ModelFamily
    format: ModelFormat
    size_bytes: int | None = Field(None, description="Size on disk; None for hub ids not yet fetched.")
    loaded: bool = Field(False, description="Resident in the pipeline cache.")
    demo: bool = Field(False, description="Tiny random-weight model: its images are noise.")
    sha256: str | None = Field(None, description="Content hash of a single-file checkpoint, when known.")
    legacy_hash: str | None = Field(
        None, description="AUTOMATIC1111's old 8-hex model hash (sd-webui-controlnet lists 'name [hash]')."
    )
    default_size: int = Field(512, description="Native resolution of the family (512 or 1024).")
    inpainting: bool = Field(
        False, description="A dedicated inpainting model (9-channel UNet): runs modes inpaint and outpaint only."
    )
    embedding: EmbeddingFacts | None = Field(None, description="Kind embedding only: its vectors, width and training.")


MODEL_KINDS = ("checkpoint", "lora", "embedding", "controlnet", "vae", "upscaler")


class ModelList(_Answer):
    models: list[ModelInfo]


class SamplerInfo(_Answer):
    id: str = Field(..., description="Short API id, e.g. dpmpp_2m_karras.")
    name: str = Field(..., description="AUTOMATIC1111 display name, e.g. 'DPM++ 2M Karras'.")
    aliases: list[str] = Field(default_factory=list)


class WorkerInfo(_Answer):
    worker_id: str
    protocol_version: str = Field(
        PROTOCOL_VERSION, description="Worker protocol version, MAJOR.MINOR; gateways refuse another major."
    )
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
    per_item_cfg: bool = Field(
        False, description="Accepts items with their own cfg_scale in one call (guidance applied per image)."
    )
    quantize: str = Field("none", description="Weight quantization of the UNet and text encoders (none, int8wo, …).")
    modes: list[str] = Field(default_factory=list, description="Generation modes this worker runs (txt2img, …).")
    upscalers: list[str] = Field(default_factory=list, description="Upscalers the hires fix can use here.")


class PreprocessorSlider(_Answer):
    """A preprocessor parameter as sd-webui-controlnet's sliders describe it."""

    name: str
    min: float
    max: float
    value: float
    step: float = 1.0


class PreprocessorInfo(_Answer):
    id: str = Field(..., description="Preprocessor id, as ControlNetUnit.preprocessor takes it.")
    name: str = Field(..., description="Human-readable name.")
    available: bool = Field(..., description="Runs on this worker now.")
    reason: str | None = Field(None, description="Why it is not available (missing package or weights).")
    threshold_a: PreprocessorSlider | None = Field(None, description="What threshold_a means here, with its range.")
    threshold_b: PreprocessorSlider | None = Field(None, description="What threshold_b means here, with its range.")


class PreprocessorList(_Answer):
    preprocessors: list[PreprocessorInfo]


class DetectRequest(_Wire):
    """Body of ``POST /v1/controlnet/detect``: run one preprocessor on one image."""

    preprocessor: str = Field("none", min_length=1, description="Preprocessor id.")
    image: str = Field(..., min_length=1, description="The image (PNG, JPEG or WebP bytes, base64).")
    processor_res: int = Field(512, ge=64, le=2048, description="Resolution the preprocessor works at.")
    threshold_a: float | None = Field(None, description="Preprocessor parameter 1 (canny: low threshold).")
    threshold_b: float | None = Field(None, description="Preprocessor parameter 2 (canny: high threshold).")


class DetectResponse(_Answer):
    image: str = Field(..., description="The preprocessed image, PNG bytes, base64.")
    width: int = Field(..., description="Its width.")
    height: int = Field(..., description="Its height.")
