"""Input images: upload one (multipart) and read it back by id."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Path, Request, Response, UploadFile

from ablerefusal.gateway.errors import ApiException
from ablerefusal.gateway.schemas import ErrorEnvelope, FieldError
from ablerefusal.gateway.uploads import Upload, UploadError, UploadService, make_upload_service

router = APIRouter(prefix="/uploads", tags=["uploads"])


def _errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    return {code: {"model": ErrorEnvelope} for code in codes}


def get_uploads(request: Request) -> UploadService:
    # One per app: an S3 store holds a client and its connection pool.
    service: UploadService | None = getattr(request.app.state, "uploads", None)
    if service is None:
        service = make_upload_service(request.app.state.settings)
        request.app.state.uploads = service
    return service


UploadsDep = Annotated[UploadService, Depends(get_uploads)]


def _refused(exc: UploadError) -> ApiException:
    code = "payload_too_large" if exc.status == 413 else "invalid_request"
    return ApiException(
        exc.status, code, f"file: {exc.message}", details=[FieldError(field="file", message=exc.message)]
    )


@router.post(
    "",
    status_code=201,
    summary="Store one input image (PNG, JPEG or WebP) for img2img, inpainting and outpainting",
    responses=_errors(400, 401, 413),
)
async def upload(
    uploads: UploadsDep,
    file: Annotated[UploadFile, File(description="The image; its type is decided from its bytes.")],
) -> Upload:
    # Read one byte past the limit: enough to refuse a larger file without holding all of it.
    data = await file.read(uploads.max_bytes + 1)
    try:
        return await uploads.save(data)
    except UploadError as exc:
        raise _refused(exc) from None


@router.get(
    "/{upload_id}",
    summary="An uploaded input image (PNG)",
    response_class=Response,
    responses={200: {"content": {"image/png": {}}, "description": "The stored image."}, **_errors(401, 404)},
)
async def read_upload(
    uploads: UploadsDep,
    upload_id: Annotated[str, Path(max_length=64, description="The id POST /uploads answered.")],
) -> Response:
    data = await uploads.load(upload_id)
    if data is None:
        raise ApiException(404, "not_found", f"no upload {upload_id!r}")
    # Content-addressed: the bytes under an id never change.
    return Response(data, media_type="image/png", headers={"Cache-Control": "private, max-age=31536000, immutable"})
