"""OpenAI ``POST /v1/images/edits`` and ``POST /v1/images/variations`` (multipart) on top of the queue: one
request is one img2img (or, with a mask, inpainting) job of ``n`` images, submitted and awaited through the
service layer like generations.

The form is read by hand rather than with FastAPI ``File``/``Form`` parameters: clients send the image as
``image`` or, newer ones, as ``image[]``, and an unknown field must be refused in OpenAI's shape.
"""

from __future__ import annotations

from typing import Any, TypeVar

import anyio
from fastapi import Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError
from starlette.datastructures import UploadFile

from ablerefusal.gateway.auth import principal_of
from ablerefusal.gateway.compat.errors import CompatError, CompatFieldError
from ablerefusal.gateway.compat.inputs import Checked, check_openai, store
from ablerefusal.gateway.compat.openai_api import images_response, router
from ablerefusal.gateway.compat.openai_edit_models import EditForm, VariationForm
from ablerefusal.gateway.compat.openai_edit_translate import edit_request, variation_prompts, variation_request
from ablerefusal.gateway.compat.openai_models import ImagesResponse
from ablerefusal.gateway.compat.openai_translate import pick_model
from ablerefusal.gateway.compat.waiting import wait_all
from ablerefusal.gateway.deps import ServiceDep
from ablerefusal.gateway.schemas import GenerateRequest, Job
from ablerefusal.gateway.services import GatewayService

F = TypeVar("F", bound=BaseModel)
Files = dict[str, list[UploadFile]]
IMAGE_FIELDS = ("image", "image[]")
MASK_FIELD = "mask"
# Generous for OpenAI's form (a dozen fields, two files), tight enough that a flood of parts is refused early.
MAX_FORM_FIELDS = 64
MAX_FORM_FILES = 4
# Images are decoded in worker threads, a few at once (see a1111._image_parsing).
_image_checks = anyio.CapacityLimiter(2)


def _multipart_body(form_model: type[BaseModel], files: dict[str, str]) -> dict[str, Any]:
    """OpenAPI requestBody of a multipart route: the form's fields plus the named files."""
    schema = form_model.model_json_schema()
    schema["properties"] = {
        **{name: {"type": "string", "format": "binary", "description": text} for name, text in files.items()},
        **schema["properties"],
    }
    schema["required"] = ["image", *schema.get("required", [])]
    return {"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": schema}}}}


async def _read_form(request: Request, allowed_files: tuple[str, ...]) -> tuple[dict[str, str], Files]:
    form = await request.form(max_files=MAX_FORM_FILES, max_fields=MAX_FORM_FIELDS)
    texts: dict[str, str] = {}
    files: Files = {}
    for key, value in form.multi_items():
        if isinstance(value, str):
            texts[key] = value
        elif key in allowed_files:
            files.setdefault(key, []).append(value)
        else:
            raise CompatFieldError(key, "unrecognized file field")
    return texts, files


def _validated(form_model: type[F], texts: dict[str, str]) -> F:
    try:
        return form_model.model_validate(texts)
    except ValidationError as exc:
        # Rendered like a JSON body's validation errors (OpenAI's shape, the field as param).
        raise RequestValidationError([{**e, "loc": ("body", *e["loc"])} for e in exc.errors()]) from exc


async def _read_image(files: Files, limit: int) -> tuple[str, bytes]:
    """The one input image (``image`` or ``image[]``) and the field it came in."""
    sent = [(name, f) for name in IMAGE_FIELDS for f in files.get(name, [])]
    if not sent:
        raise CompatError(400, "missing_required_parameter", "image: a PNG file is required (multipart field image)")
    if len(sent) > 1:
        raise CompatFieldError("image", f"one image is edited at a time here (got {len(sent)})")
    name, upload = sent[0]
    return name, await upload.read(limit + 1)


async def _read_mask(files: Files, limit: int) -> bytes | None:
    masks = files.get(MASK_FIELD, [])
    if len(masks) > 1:
        raise CompatFieldError(MASK_FIELD, f"one mask at most (got {len(masks)})")
    return await masks[0].read(limit + 1) if masks else None


async def _run(request: Request, service: GatewayService, job: GenerateRequest, stored: list[Checked]) -> Job:
    """Check the job, store its images, submit it and wait: the finished job."""
    service.validate(job)  # every rule before anything is stored
    for checked in stored:
        await store(service.uploads, checked)
    submitted = await service.submit(job, principal=principal_of(request))
    (finished,) = await wait_all(request, service, [submitted.id])
    return finished


@router.post(
    "/images/edits",
    summary="Edit an image (OpenAI Images API): img2img, or inpainting where the mask is transparent",
    response_model_exclude_none=True,
    openapi_extra=_multipart_body(
        EditForm,
        {
            "image": "The image (PNG, JPEG or WebP; `image[]` is accepted too, one image).",
            "mask": "Optional PNG whose fully transparent pixels mark the area to edit; same size as image.",
        },
    ),
)
async def edit_image(request: Request, service: ServiceDep) -> ImagesResponse:
    texts, files = await _read_form(request, (*IMAGE_FIELDS, MASK_FIELD))
    form = _validated(EditForm, texts)
    image_field, image = await _read_image(files, service.uploads.max_bytes)
    mask = await _read_mask(files, service.uploads.max_bytes)
    listing = service.models()
    model = pick_model(listing.models, form.model, listing.default)
    checked_image, checked_mask = await anyio.to_thread.run_sync(
        check_openai, service.uploads, image, mask, image_field, limiter=_image_checks
    )
    size = (checked_image.prepared.upload.width, checked_image.prepared.upload.height)
    mask_id = checked_mask.prepared.upload.id if checked_mask else None
    job = edit_request(form, model, size, checked_image.prepared.upload.id, mask_id)
    stored = [checked_image, *([checked_mask] if checked_mask else [])]
    finished = await _run(request, service, job, stored)
    return await images_response(request, service, finished, form.response_format, job.prompt)


@router.post(
    "/images/variations",
    summary="Variations of an image (OpenAI Images API): image-to-image of the whole image",
    response_model_exclude_none=True,
    openapi_extra=_multipart_body(VariationForm, {"image": "The image (PNG, JPEG or WebP)."}),
)
async def image_variations(request: Request, service: ServiceDep) -> ImagesResponse:
    texts, files = await _read_form(request, IMAGE_FIELDS)
    form = _validated(VariationForm, texts)
    image_field, image = await _read_image(files, service.uploads.max_bytes)
    listing = service.models()
    model = pick_model(listing.models, form.model, listing.default)
    checked_image, _ = await anyio.to_thread.run_sync(
        check_openai, service.uploads, image, None, image_field, limiter=_image_checks
    )
    prompts = variation_prompts(form, image)
    size = (checked_image.prepared.upload.width, checked_image.prepared.upload.height)
    job = variation_request(form, model, size, checked_image.prepared.upload.id, prompts)
    finished = await _run(request, service, job, [checked_image])
    return await images_response(request, service, finished, form.response_format, job.prompt)
