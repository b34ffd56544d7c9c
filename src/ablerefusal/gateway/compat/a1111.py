"""AUTOMATIC1111 ``/sdapi/v1`` on top of the gateway's queue: every image is a job in the store, submitted
through the service layer like any ``/api/v1`` job (same validation, priority, metrics, persistence)."""

from __future__ import annotations

import json
import random
import time
from dataclasses import replace
from datetime import datetime
from typing import Any

import anyio
from fastapi import APIRouter, Body, Depends, Query, Request, Response
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse

from ablerefusal.gateway.auth import principal_of
from ablerefusal.gateway.compat import a1111_adapters
from ablerefusal.gateway.compat.a1111_hires import latent_mode_items, upscaler_items
from ablerefusal.gateway.compat.a1111_img2img import plan_img2img
from ablerefusal.gateway.compat.a1111_models import (
    A1111Request,
    Img2ImgRequest,
    NamedItem,
    PngInfoRequest,
    PngInfoResponse,
    ProgressResponse,
    SamplerItem,
    SchedulerItem,
    SDModelItem,
    Txt2ImgRequest,
    Txt2ImgResponse,
    UpscalerItem,
)
from ablerefusal.gateway.compat.a1111_state import A1111Run, A1111State, idle_progress, progress_of, state_of
from ablerefusal.gateway.compat.a1111_translate import (
    A1111Plan,
    build_info,
    model_item,
    model_title,
    plan_txt2img,
    require_checkpoint,
    sampler_items,
    scheduler_items,
)
from ablerefusal.gateway.compat.auth import require_a1111_key
from ablerefusal.gateway.compat.errors import CompatError, CompatFieldError
from ablerefusal.gateway.compat.images import png_base64
from ablerefusal.gateway.compat.infotext import ImageDecodeError, read_png_info
from ablerefusal.gateway.compat.inputs import check_a1111, store
from ablerefusal.gateway.compat.routing import route_class, validation_field
from ablerefusal.gateway.compat.waiting import cancel_unfinished, wait_all
from ablerefusal.gateway.deps import ServiceDep
from ablerefusal.gateway.errors import ApiException
from ablerefusal.gateway.schemas import Job, JobStatus
from ablerefusal.gateway.services import GatewayService
from ablerefusal.protocol import ModelInfo

# Chunk A1111 stores its infotext in; png-info reports it apart from the other chunks.
PARAMETERS_CHUNK = "parameters"
_rng = random.SystemRandom()
# Images are parsed in worker threads (base64, inflate and parse would stall the event loop); at most this
# many at once, so a burst of png-info requests cannot take every thread the store calls need.
_image_parsing = anyio.CapacityLimiter(2)


def _field_error(field: str, message: str, error_type: str = "value_error") -> dict[str, Any]:
    return {"loc": ["body", *field.split(".")], "msg": message, "type": error_type}


def _a1111_error(status: int, error: str, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    # A1111's api_middleware shape for errors that are not request validation.
    body = {"error": error, "detail": message, "body": "", "errors": message}
    return JSONResponse(body, status_code=status, headers=headers or None)


def render_error(exc: Exception) -> Response:
    """Validation problems as FastAPI's 422 ``detail`` list (what A1111 answers), the rest in A1111's
    error shape."""
    if isinstance(exc, CompatFieldError):
        return JSONResponse({"detail": [_field_error(exc.field, exc.message)]}, status_code=422)
    if isinstance(exc, CompatError):
        return _a1111_error(exc.status_code, exc.code, exc.message, exc.headers)
    if isinstance(exc, ApiException):
        if exc.details:
            detail = [_field_error(d.field, d.message) for d in exc.details]
            return JSONResponse({"detail": detail}, status_code=422)
        return _a1111_error(exc.status_code, exc.code, exc.message, exc.headers)
    errors: list[dict[str, Any]] = list(getattr(exc, "errors", lambda: [])())
    detail = [
        {
            **jsonable_encoder(e, exclude={"url", "input"}),
            "loc": ["body", *validation_field(e["loc"]).split(".")],
        }
        for e in errors
    ]
    return JSONResponse({"detail": detail}, status_code=422)


router = APIRouter(
    prefix="/sdapi/v1",
    tags=["automatic1111"],
    route_class=route_class(render_error),
    dependencies=[Depends(require_a1111_key)],
)
# /loras, /refresh-loras, /embeddings, /sd-vae.
a1111_adapters.register(router)


def _state(request: Request) -> A1111State:
    return state_of(request.app)


def _current_model(service: GatewayService, state: A1111State) -> tuple[ModelInfo, list[ModelInfo]]:
    """The checkpoint A1111 clients see as loaded: the one chosen via /options, else the default."""
    listing = service.models()
    if not listing.models:
        raise CompatError(503, "RuntimeError", "no models are available on the workers")
    for wanted in (state.checkpoint, listing.default):
        found = next((m for m in listing.models if m.id == wanted), None)
        if found is not None:
            return found, listing.models
    return listing.models[0], listing.models


async def _run_plan(
    request: Request, service: GatewayService, state: A1111State, plan: A1111Plan, body: A1111Request
) -> tuple[list[str], dict[str, Any]]:
    """Queue the plan's jobs as one A1111 run, wait for all, and return the images (base64, when
    send_images) and A1111's info object."""
    principal = principal_of(request)
    run = A1111Run(job_ids=[], started_at=datetime.now(), owner=principal.owner)
    state.runs.append(run)
    try:
        try:
            for job_request in plan.jobs:
                run.job_ids.append((await service.submit(job_request, principal=principal)).id)
        except ApiException:
            # Refused mid-way (e.g. queue full): leave no part of this request queued.
            await cancel_unfinished(service, run.job_ids)
            raise
        finished = await wait_all(request, service, run.job_ids)
    finally:
        state.runs.remove(run)
    failed = next((j for j in finished if j.status in (JobStatus.failed, JobStatus.timed_out)), None)
    if failed is not None:
        reason = failed.error.message if failed.error else failed.status.value
        raise CompatError(500, "RuntimeError", f"job {failed.id} {failed.status.value}: {reason}")
    results = [result for job in finished for result in job.results]
    images = [await png_base64(service.outputs, r.image_url) for r in results] if body.send_images else []
    return images, build_info(body, plan, results, run.started_at)


@router.post("/txt2img", summary="Generate images (A1111 txt2img, hires fix included)")
async def txt2img(body: Txt2ImgRequest, request: Request, service: ServiceDep) -> Txt2ImgResponse:
    state = _state(request)
    current, models = _current_model(service, state)
    plan = plan_txt2img(body, service.samplers(), models, current, _rng, service.upscalers())
    plan = await a1111_adapters.with_adapters(service, state, plan, body)
    images, info = await _run_plan(request, service, state, plan, body)
    return Txt2ImgResponse(
        images=images, parameters=body.model_dump(mode="json"), info=json.dumps(info, ensure_ascii=False)
    )


async def _with_uploads(service: GatewayService, body: Img2ImgRequest, plan: A1111Plan) -> A1111Plan:
    """The plan with its inline images stored as uploads and named by id. Every job and every image is
    checked before the first image is stored, so a refused request stores nothing."""
    for job in plan.jobs:
        service.validate(job)
    inits, mask = await anyio.to_thread.run_sync(
        check_a1111, service.uploads, body.init_images, body.mask, limiter=_image_parsing
    )
    ids = {text: await store(service.uploads, checked) for text, checked in inits.items()}
    mask_id = await store(service.uploads, mask) if mask is not None else None
    jobs = [
        job.model_copy(update={"init_image": ids[job.init_image or ""], "mask": mask_id if job.mask else None})
        for job in plan.jobs
    ]
    return replace(plan, jobs=jobs)


@router.post("/img2img", summary="Image to image and inpainting (A1111 img2img)")
async def img2img(body: Img2ImgRequest, request: Request, service: ServiceDep) -> Txt2ImgResponse:
    state = _state(request)
    current, models = _current_model(service, state)
    plan = plan_img2img(body, service.samplers(), models, current, _rng)
    plan = await a1111_adapters.with_adapters(service, state, plan, body)
    plan = await _with_uploads(service, body, plan)
    images, info = await _run_plan(request, service, state, plan, body)
    parameters = body.model_dump(mode="json")
    if not body.include_init_images:
        # A1111 echoes the request without its images unless asked for them.
        parameters |= {"init_images": None, "mask": None}
    return Txt2ImgResponse(images=images, parameters=parameters, info=json.dumps(info, ensure_ascii=False))


async def _run_jobs(service: GatewayService, run: A1111Run) -> list[Job]:
    jobs = [await service.get(job_id) for job_id in run.job_ids]
    # Job reads carry only the preview's URL; A1111's /progress sends the image itself.
    return [await service.with_preview(job) if job.preview_url else job for job in jobs]


@router.get("/progress", summary="Progress of the A1111 request being processed")
async def progress(
    request: Request,
    service: ServiceDep,
    skip_current_image: bool = Query(False, description="Accepted for A1111 clients; previews are always sent."),
) -> ProgressResponse:
    run = _state(request).current(principal_of(request))
    if run is None or not run.job_ids:
        return idle_progress()
    return progress_of(run, await _run_jobs(service, run), time.monotonic())


@router.post("/interrupt", summary="Stop the A1111 request being processed (all its iterations)")
async def interrupt(request: Request, service: ServiceDep) -> None:
    run = _state(request).current(principal_of(request))
    if run is not None:
        run.interrupted = True
        await cancel_unfinished(service, list(run.job_ids))


@router.post("/skip", summary="Skip the iteration running now; the request goes on with the next")
async def skip(request: Request, service: ServiceDep) -> None:
    run = _state(request).current(principal_of(request))
    if run is not None:
        run.skipped = True
        await cancel_unfinished(service, list(run.job_ids), only_first=True)


@router.get("/sd-models", summary="Checkpoints (our models)")
async def sd_models(service: ServiceDep) -> list[SDModelItem]:
    return [model_item(m) for m in service.models().models]


# The same list /api/v1/samplers gives (what the ready workers announce), in A1111's shape.
@router.get("/samplers", summary="Samplers, by A1111 name")
async def samplers(service: ServiceDep) -> list[SamplerItem]:
    return sampler_items(service.samplers())


@router.get("/schedulers", summary="Noise schedules accepted in txt2img's scheduler")
async def schedulers(service: ServiceDep) -> list[SchedulerItem]:
    return scheduler_items(service.samplers())


@router.get("/options", summary="Options; sd_model_checkpoint is the model txt2img uses by default")
async def get_options(request: Request, service: ServiceDep) -> dict[str, Any]:
    state = _state(request)
    model, _ = _current_model(service, state)
    return {
        "sd_model_checkpoint": model_title(model),
        "sd_checkpoint_hash": model.sha256,
        **a1111_adapters.options_of(state),
        "samples_format": "png",
        "sd_checkpoints_limit": 1,
    }


@router.post("/options", summary="Set options; sd_model_checkpoint, sd_vae and CLIP_stop_at_last_layers apply")
async def set_options(
    request: Request,
    service: ServiceDep,
    options: dict[str, Any] = Body(..., description="Option name → value, as A1111 clients send them."),
) -> None:
    if "sd_model_checkpoint" in options:
        models = service.models().models
        chosen = require_checkpoint(models, options["sd_model_checkpoint"], "sd_model_checkpoint")
        _state(request).checkpoint = chosen.id
    await a1111_adapters.set_options(service, _state(request), options)


@router.get("/upscalers", summary="Pixel upscalers for hr_upscaler: None, Lanczos, Nearest and the workers' models")
async def upscalers(service: ServiceDep) -> list[UpscalerItem]:
    return upscaler_items(service.upscalers())


@router.get("/latent-upscale-modes", summary="Latent upscale modes for hr_upscaler (Latent)")
async def latent_upscale_modes() -> list[NamedItem]:
    return latent_mode_items()


@router.post("/png-info", summary="Read and parse the generation parameters stored in an image")
async def png_info(body: PngInfoRequest) -> PngInfoResponse:
    if not body.image.strip():
        return PngInfoResponse(info="")
    try:
        found = await anyio.to_thread.run_sync(read_png_info, body.image, PARAMETERS_CHUNK, limiter=_image_parsing)
    except ImageDecodeError as exc:
        raise CompatFieldError("image", str(exc)) from exc
    return PngInfoResponse(info=found.info, items=found.items, parameters=found.parameters)
