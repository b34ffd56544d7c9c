"""Public shapes of the gallery endpoints (they become the OpenAPI docs and the web UI's types)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

MAX_SELECTION = 500


class GalleryImage(BaseModel):
    job_id: str = Field(..., description="Job that made the image.")
    index: int = Field(..., description="Image index within its job.")
    image_url: str = Field(..., description="URL of the full PNG under /outputs.")
    thumb_url: str = Field(..., description="URL of a small WebP thumbnail (made on first request, then cached).")
    seed: int = Field(..., description="Seed the image was generated with.")
    prompt: str = Field(..., description="The job's prompt.")
    negative_prompt: str = Field("", description="The job's negative prompt.")
    model: str | None = Field(None, description="Model that made the image; null when the default was used.")
    width: int = Field(..., description="Image width in pixels.")
    height: int = Field(..., description="Image height in pixels.")
    steps: int = Field(..., description="Denoising steps.")
    sampler: str = Field(..., description="Sampler name.")
    cfg_scale: float = Field(..., description="Classifier-free guidance scale.")
    infotext: str = Field("", description="AUTOMATIC1111-style parameters text of this image.")
    created_at: datetime = Field(..., description="When its job was accepted.")


class GalleryPage(BaseModel):
    items: list[GalleryImage] = Field(..., description="Images, newest job first, index order within a job.")
    total: int = Field(..., description="Images matching the filters.")
    offset: int = Field(..., description="Index of the first image of this page.")
    limit: int = Field(..., description="Page size asked for.")
    models: list[str] = Field(..., description="Every model that made a stored image (for the model filter).")


class JobSelection(BaseModel):
    job_ids: list[str] = Field(
        ..., min_length=1, max_length=MAX_SELECTION, description=f"Job ids, 1 to {MAX_SELECTION}."
    )


class DeleteResult(BaseModel):
    deleted: list[str] = Field(..., description="Jobs removed with their images and thumbnails.")


class ImageRef(BaseModel):
    job_id: str = Field(..., min_length=1, max_length=64, description="Job id.")
    index: int = Field(0, ge=0, le=1000, description="Image index within the job.")


class ZipRequest(BaseModel):
    images: list[ImageRef] = Field(
        ..., min_length=1, max_length=MAX_SELECTION, description=f"Images to put in the zip, 1 to {MAX_SELECTION}."
    )
