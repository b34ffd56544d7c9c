"""The gallery: stored images newest first with filters, thumbnails, bulk delete and zip download."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from fastapi.responses import StreamingResponse

from ablerefusal.gateway.auth import PrincipalDep
from ablerefusal.gateway.deps import ServiceDep
from ablerefusal.gateway.gallery.models import DeleteResult, GalleryPage, ImageRef, JobSelection, ZipRequest
from ablerefusal.gateway.gallery.service import Gallery
from ablerefusal.gateway.gallery.thumbs import THUMB_TYPE
from ablerefusal.gateway.schemas import ErrorEnvelope

router = APIRouter(prefix="/gallery", tags=["gallery"])


def _errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    return {code: {"model": ErrorEnvelope} for code in codes}


def get_gallery(request: Request, service: ServiceDep) -> Gallery:
    # One per runtime: it bounds the thumbnails made at once.
    gallery: Gallery | None = getattr(request.app.state, "gallery", None)
    if gallery is None or gallery.service is not service:
        gallery = Gallery(service, service.outputs)
        request.app.state.gallery = gallery
    return gallery


GalleryDep = Annotated[Gallery, Depends(get_gallery)]


@router.get("", summary="Stored images, newest first, filtered by model and prompt text", responses=_errors(401))
async def gallery_page(
    gallery: GalleryDep,
    principal: PrincipalDep,
    offset: Annotated[int, Query(ge=0, le=10**9, description="Index of the first image.")] = 0,
    limit: Annotated[int, Query(ge=1, le=200, description="Page size.")] = 100,
    model: Annotated[
        str | None, Query(min_length=1, max_length=256, description="Only images made by this model.")
    ] = None,
    q: Annotated[
        str | None,
        Query(max_length=200, description="Only images whose prompt contains this text (case-insensitive)."),
    ] = None,
) -> GalleryPage:
    return await gallery.page(offset=offset, limit=limit, model=model, text=q or None, principal=principal)


@router.get(
    "/{job_id}/{index}/thumb.webp",
    summary="A small WebP thumbnail of one image (made once, then cached beside it)",
    response_class=Response,
    responses={200: {"content": {THUMB_TYPE: {}}, "description": "The thumbnail."}, **_errors(401, 404)},
)
async def thumbnail(
    # The same bounds as ImageRef's, so an over-long id is a 422 here rather than a validation error inside.
    job_id: Annotated[str, Path(min_length=1, max_length=64, description="Job that made the image.")],
    index: Annotated[int, Path(ge=0, le=1000, description="Image index within the job.")],
    gallery: GalleryDep,
    principal: PrincipalDep,
) -> Response:
    data = await gallery.thumbnail(ImageRef(job_id=job_id, index=index), principal)
    # The image under a job id and index never changes (a retry rewrites the same pixels): keep it for good.
    return Response(data, media_type=THUMB_TYPE, headers={"Cache-Control": "private, max-age=31536000, immutable"})


@router.post(
    "/delete",
    summary="Remove several finished jobs with their images; all or nothing",
    responses=_errors(401, 404, 409, 422),
)
async def delete_jobs(body: JobSelection, gallery: GalleryDep, principal: PrincipalDep) -> DeleteResult:
    return DeleteResult(deleted=await gallery.delete(body.job_ids, principal))


@router.post(
    "/zip",
    summary="A zip of several images, streamed",
    response_class=StreamingResponse,
    responses={200: {"content": {"application/zip": {}}, "description": "The archive."}, **_errors(401, 404, 422)},
)
async def zip_images(body: ZipRequest, gallery: GalleryDep, principal: PrincipalDep) -> StreamingResponse:
    entries = await gallery.zip_entries(body.images, principal)
    # A plain iterator: Starlette pulls each chunk in a worker thread, so reading files never blocks the loop.
    return StreamingResponse(
        gallery.zip_chunks(entries),
        media_type="application/zip",
        headers={"Content-Disposition": 'attachment; filename="ablerefusal-images.zip"'},
    )
