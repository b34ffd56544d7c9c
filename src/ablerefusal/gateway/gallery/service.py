"""Gallery operations over the job store and the object store; raises ``ApiException`` only."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import anyio

from ablerefusal.gateway.auth import Principal
from ablerefusal.gateway.errors import ApiException
from ablerefusal.gateway.gallery import thumbs
from ablerefusal.gateway.gallery.archive import zip_stream
from ablerefusal.gateway.gallery.models import GalleryImage, GalleryPage, ImageRef
from ablerefusal.gateway.jobs.convert import OUTPUTS_URL_PREFIX, StoredRequest, to_datetime
from ablerefusal.gateway.jobs.store import GalleryRow
from ablerefusal.gateway.schemas import TERMINAL_STATUSES
from ablerefusal.gateway.services import GatewayService
from ablerefusal.gateway.storage import ObjectStore

THUMB_URL = "/api/v1/gallery/{job_id}/{index}/thumb.webp"
# Thumbnails decode a full PNG each: a first visit to a page of 100 must not take every worker thread.
_thumbnailing = anyio.CapacityLimiter(2)


def _image(row: GalleryRow) -> GalleryImage:
    request = StoredRequest.model_validate(row.request)
    created = to_datetime(row.created_at)
    assert created is not None
    return GalleryImage(
        job_id=row.job_id,
        index=row.image_index,
        image_url=OUTPUTS_URL_PREFIX + row.path,
        thumb_url=THUMB_URL.format(job_id=row.job_id, index=row.image_index),
        seed=row.seed,
        prompt=request.prompt,
        negative_prompt=request.negative_prompt or "",
        model=row.model,
        width=request.width,
        height=request.height,
        steps=request.steps,
        sampler=request.sampler,
        cfg_scale=request.cfg_scale,
        infotext=row.infotext,
        created_at=created,
    )


class Gallery:
    def __init__(self, service: GatewayService, objects: ObjectStore) -> None:
        self.service = service
        self.objects = objects

    async def page(
        self, *, offset: int, limit: int, model: str | None, text: str | None, principal: Principal
    ) -> GalleryPage:
        store = self.service.store
        total, rows = await asyncio.to_thread(
            store.gallery_page, offset=offset, limit=limit, model=model, text=text, owner=principal.scope
        )
        models = await asyncio.to_thread(store.gallery_models, owner=principal.scope)
        return GalleryPage(items=[_image(r) for r in rows], total=total, offset=offset, limit=limit, models=models)

    async def _path(self, ref: ImageRef, principal: Principal) -> str:
        await self.service.check_access(ref.job_id, principal)
        path = await asyncio.to_thread(self.service.store.result_path, ref.job_id, ref.index)
        if path is None:
            raise ApiException(404, "not_found", f"job {ref.job_id} has no image {ref.index}")
        return path

    async def thumbnail(self, ref: ImageRef, principal: Principal) -> bytes:
        path = await self._path(ref, principal)
        data = await anyio.to_thread.run_sync(
            thumbs.thumbnail, self.objects, ref.job_id, ref.index, path, limiter=_thumbnailing
        )
        if data is None:
            raise ApiException(404, "not_found", f"the file of image {ref.index} of job {ref.job_id} is gone")
        return data

    async def delete(self, job_ids: list[str], principal: Principal) -> list[str]:
        """Remove finished jobs with their images and thumbnails. Every id is checked first, so one unknown
        or unfinished job refuses the whole request and removes nothing."""
        unique = list(dict.fromkeys(job_ids))
        for job_id in unique:
            job = await self.service.get(job_id, principal=principal)
            if job.status not in TERMINAL_STATUSES:
                raise ApiException(409, "conflict", f"job_ids: job {job_id} is {job.status.value}; cancel it first")
        for job_id in unique:
            # Thumbnails first: the job's folder is removed only once nothing else is left in it.
            await asyncio.to_thread(self.objects.delete_prefix, f"{job_id}/thumbs")
            await self.service.delete(job_id, principal=principal)
        return unique

    async def zip_entries(self, refs: list[ImageRef], principal: Principal) -> list[tuple[str, str]]:
        """``(name in the zip, object key)`` per image, after checking every one exists and may be read."""
        unique = list(dict.fromkeys((r.job_id, r.index) for r in refs))
        return [
            (f"{job_id}-{index}.png", await self._path(ImageRef(job_id=job_id, index=index), principal))
            for job_id, index in unique
        ]

    def zip_chunks(self, entries: list[tuple[str, str]]) -> Iterator[bytes]:
        def read(key: str) -> bytes | None:
            found = self.objects.get(key)
            return None if found is None else found.data

        return zip_stream(entries, read)
