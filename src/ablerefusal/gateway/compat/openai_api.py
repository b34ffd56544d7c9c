"""OpenAI Images API (``POST /v1/images/generations``, ``GET /v1/models``) on top of the gateway's queue:
one request is one job of ``n`` images, submitted and awaited through the service layer. Edits and
variations (multipart) are in ``openai_edits``, on the same router."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse

from ablerefusal.gateway.auth import principal_of
from ablerefusal.gateway.compat.auth import require_openai_key
from ablerefusal.gateway.compat.errors import CompatError, CompatFieldError
from ablerefusal.gateway.compat.images import png_base64
from ablerefusal.gateway.compat.openai_models import (
    ImageData,
    ImagesRequest,
    ImagesResponse,
    OpenAIError,
    OpenAIErrorBody,
    OpenAIModel,
    OpenAIModelList,
)
from ablerefusal.gateway.compat.openai_translate import pick_model, to_generate_request
from ablerefusal.gateway.compat.routing import route_class, validation_field
from ablerefusal.gateway.compat.waiting import wait_all
from ablerefusal.gateway.deps import ServiceDep
from ablerefusal.gateway.errors import ApiException
from ablerefusal.gateway.schemas import Job, JobStatus
from ablerefusal.gateway.services import GatewayService


def _error(
    status: int, message: str, type_: str, param: str | None, code: str | None, headers: dict[str, str]
) -> Response:
    body = OpenAIError(error=OpenAIErrorBody(message=message, type=type_, param=param, code=code))
    return JSONResponse(body.model_dump(), status_code=status, headers=headers or None)


def _type_for(status: int) -> str:
    if status == 429:
        return "requests"
    return "server_error" if status >= 500 else "invalid_request_error"


def _validation_code(error_type: str) -> str:
    return {"missing": "missing_required_parameter", "extra_forbidden": "unknown_parameter"}.get(
        error_type, "invalid_value"
    )


def render_error(exc: Exception) -> Response:
    """Every error in OpenAI's ``{"error": {message, type, param, code}}`` shape."""
    if isinstance(exc, CompatFieldError):
        return _error(400, f"{exc.field}: {exc.message}", "invalid_request_error", exc.field, "invalid_value", {})
    if isinstance(exc, CompatError):
        return _error(exc.status_code, exc.message, _type_for(exc.status_code), None, exc.code, exc.headers)
    if isinstance(exc, ApiException):
        param = exc.details[0].field if exc.details else None
        return _error(exc.status_code, exc.message, _type_for(exc.status_code), param, exc.code, exc.headers)
    errors: list[dict[str, Any]] = list(getattr(exc, "errors", lambda: [])())
    if not errors:
        return _error(400, "invalid request", "invalid_request_error", None, "invalid_value", {})
    first = errors[0]
    if first.get("type") == "json_invalid":
        return _error(400, "request body is not valid JSON", "invalid_request_error", None, "invalid_json", {})
    message = "; ".join(
        f"{validation_field(e.get('loc', ()))}: "
        + ("unrecognized request argument" if e.get("type") == "extra_forbidden" else str(e.get("msg")))
        for e in errors
    )
    field = validation_field(first.get("loc", ()))
    return _error(400, message, "invalid_request_error", field, _validation_code(str(first.get("type"))), {})


router = APIRouter(
    prefix="/v1",
    tags=["openai"],
    route_class=route_class(render_error),
    dependencies=[Depends(require_openai_key)],
    responses={400: {"model": OpenAIError}, 401: {"model": OpenAIError}, 404: {"model": OpenAIError}},
)


def _base_url(request: Request) -> str:
    public: str | None = request.app.state.settings.server.public_url
    return (public or str(request.base_url)).rstrip("/")


@router.post(
    "/images/generations",
    summary="Generate images (OpenAI Images API)",
    response_model_exclude_none=True,
)
async def generate_images(body: ImagesRequest, request: Request, service: ServiceDep) -> ImagesResponse:
    listing = service.models()
    model = pick_model(listing.models, body.model, listing.default)
    submitted = await service.submit(to_generate_request(body, model), principal=principal_of(request))
    (job,) = await wait_all(request, service, [submitted.id])
    return await images_response(request, service, job, body.response_format, body.prompt)


async def images_response(
    request: Request, service: GatewayService, job: Job, response_format: str, prompt: str
) -> ImagesResponse:
    """OpenAI's answer for a finished job (generations, edits, variations); a job that did not complete is
    a 500 in OpenAI's shape."""
    if job.status is not JobStatus.completed:
        reason = job.error.message if job.error else job.status.value
        code = "timeout" if job.status is JobStatus.timed_out else job.status.value
        raise CompatError(500, code, f"image generation {job.status.value}: {reason}")
    data: list[ImageData] = []
    for result in job.results:
        if response_format == "b64_json":
            b64 = await png_base64(service.outputs, result.image_url)
            data.append(ImageData(b64_json=b64, revised_prompt=prompt))
        else:
            data.append(ImageData(url=_base_url(request) + result.image_url, revised_prompt=prompt))
    return ImagesResponse(created=int(job.created_at.timestamp()), data=data)


def _model(model_id: str) -> OpenAIModel:
    return OpenAIModel(id=model_id)


@router.get("/models", summary="Models (OpenAI list shape)")
async def list_models(service: ServiceDep) -> OpenAIModelList:
    return OpenAIModelList(data=[_model(m.id) for m in service.models().models])


@router.get("/models/{model_id}", summary="One model (OpenAI shape)")
async def get_model(model_id: str, service: ServiceDep) -> OpenAIModel:
    models = service.models().models
    if not any(m.id == model_id for m in models):
        raise CompatError(404, "model_not_found", f"The model '{model_id}' does not exist")
    return _model(model_id)
