"""ControlNet helpers of the studio and clients: the preprocessors the workers offer, and running one on an
image to see its control map before generating.

Both are answered by a ready worker (the gateway never imports the image libraries that run preprocessors):
the first ready worker that answers; a worker that cannot be reached is skipped for the next. The detect image
is an upload id (``POST /api/v1/uploads``) or inline base64 / a data: URL; with ``store: true`` the control map is
kept as an upload too, so it can be shown by URL and sent as a unit's image with preprocessor ``none``.
"""

from __future__ import annotations

import asyncio
import base64
from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, Field

from ablerefusal.gateway.api.uploads import UploadsDep
from ablerefusal.gateway.deps import ServiceDep
from ablerefusal.gateway.errors import ApiException, invalid
from ablerefusal.gateway.schemas import ErrorEnvelope, FieldError
from ablerefusal.gateway.services import GatewayService
from ablerefusal.gateway.uploads import Upload, UploadError, UploadService
from ablerefusal.gateway.uploads.service import UPLOAD_ID_RE
from ablerefusal.gateway.workers.client import WorkerClient, WorkerError, WorkerUnreachable
from ablerefusal.protocol import DetectRequest, DetectResponse, PreprocessorInfo, PreprocessorList

router = APIRouter(prefix="/controlnet", tags=["controlnet"])


def _errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    return {code: {"model": ErrorEnvelope} for code in codes}


class PreprocessorsResponse(BaseModel):
    preprocessors: list[PreprocessorInfo] = Field(
        ..., description="Every preprocessor a ready worker knows, with whether it runs there and why not."
    )


class DetectBody(BaseModel):
    image: str = Field(
        ..., min_length=1, description="Upload id from POST /api/v1/uploads, or the image inline (base64 or data: URL)."
    )
    preprocessor: str = Field("canny", min_length=1, description="Preprocessor id (see /controlnet/preprocessors).")
    processor_res: int = Field(512, ge=64, le=2048, description="Resolution the preprocessor works at (short side).")
    threshold_a: float | None = Field(None, description="Parameter 1 (canny: low threshold); None: the default.")
    threshold_b: float | None = Field(None, description="Parameter 2 (canny: high threshold); None: the default.")
    store: bool = Field(False, description="Also keep the control map as an upload (its id and URL are returned).")


class DetectResult(BaseModel):
    image: str = Field(..., description="The control map, PNG bytes, base64.")
    width: int = Field(..., description="Its width in pixels.")
    height: int = Field(..., description="Its height in pixels.")
    upload: Upload | None = Field(None, description="The stored control map, when asked for with store.")


def _no_worker() -> ApiException:
    return ApiException(503, "unavailable", "no worker is ready to run ControlNet preprocessors; see /api/v1/ready")


def _from_worker(exc: WorkerError) -> ApiException:
    """A worker's refusal of the request, as ours (its fields are ours: preprocessor, image …)."""
    if exc.status_code == 400 and exc.body is not None:
        details = [FieldError(field=d.field or "body", message=d.message) for d in exc.body.details]
        return ApiException(400, "invalid_request", exc.message, details=details, available=exc.body.available)
    return ApiException(502, "worker_error", f"the worker failed: {exc.message}")


async def _on_a_worker(service: GatewayService, ask: Any) -> Any:
    """``ask(client)`` on the first ready worker that answers."""
    handles = service.pool.ready_handles()
    for handle in handles:
        client = WorkerClient(handle.url, token=handle.token)
        try:
            return await ask(client)
        except WorkerUnreachable:
            continue  # the probe takes it out of rotation; another worker may answer
        except WorkerError as exc:
            raise _from_worker(exc) from None
        finally:
            await client.aclose()
    raise _no_worker()


async def preprocessors(service: GatewayService) -> PreprocessorList:
    listed: PreprocessorList = await _on_a_worker(service, lambda client: client.controlnet_preprocessors())
    return listed


async def image_base64(value: str, uploads: UploadService, field: str) -> str:
    """An upload id's PNG, or an inline image checked and normalised as uploads are, as base64."""
    if UPLOAD_ID_RE.match(value):
        data = await uploads.load(value)
        if data is None:
            raise invalid(field, f"unknown upload id {value!r} (POST /api/v1/uploads stores one)")
        return base64.b64encode(data).decode("ascii")
    try:
        prepared = await asyncio.to_thread(uploads.prepare_inline, value)
    except UploadError as exc:
        status = 413 if exc.status == 413 else 400
        code = "payload_too_large" if status == 413 else "invalid_request"
        raise ApiException(
            status, code, f"{field}: {exc.message}", details=[FieldError(field=field, message=exc.message)]
        ) from None
    return base64.b64encode(prepared.png).decode("ascii")


async def detect(service: GatewayService, request: DetectRequest) -> DetectResponse:
    detected: DetectResponse = await _on_a_worker(service, lambda client: client.controlnet_detect(request))
    return detected


@router.get(
    "/preprocessors",
    summary="ControlNet preprocessors on the ready workers (none and canny always; others when installed)",
    responses=_errors(401, 503),
)
async def list_preprocessors(service: ServiceDep) -> PreprocessorsResponse:
    return PreprocessorsResponse(preprocessors=(await preprocessors(service)).preprocessors)


@router.post(
    "/detect",
    summary="Run a ControlNet preprocessor on an image and return its control map",
    responses=_errors(400, 401, 413, 502, 503),
)
async def run_detect(service: ServiceDep, uploads: UploadsDep, body: DetectBody) -> DetectResult:
    request = DetectRequest(
        preprocessor=body.preprocessor,
        image=await image_base64(body.image, uploads, "image"),
        processor_res=body.processor_res,
        threshold_a=body.threshold_a,
        threshold_b=body.threshold_b,
    )
    detected = await detect(service, request)
    upload = await uploads.save(base64.b64decode(detected.image)) if body.store else None
    return DetectResult(image=detected.image, width=detected.width, height=detected.height, upload=upload)
