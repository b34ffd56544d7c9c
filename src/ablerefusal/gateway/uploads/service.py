"""Store input images: validate, apply EXIF orientation, drop metadata, keep them as PNG under their sha256.

Every image is re-encoded as a PNG of its pixels alone, so what is stored carries no EXIF (GPS, camera), no
ICC or text chunks, and the id is the hash of exactly the stored bytes: an upload can be verified, and the
same picture uploaded twice is one object. Decoding and storage block, so the async methods run them in a
thread.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import re
from dataclasses import dataclass

from PIL import Image, UnidentifiedImageError

from ablerefusal.gateway.settings import Settings
from ablerefusal.gateway.storage import ObjectStore, make_object_store
from ablerefusal.gateway.storage.local import LocalObjectStore
from ablerefusal.gateway.uploads.models import Upload
from ablerefusal.image_inputs import (
    InputImageError,
    base64_image_bytes,
    decode_image,
    encode_png,
)

UPLOAD_ID_RE = re.compile(r"^[0-9a-f]{64}$")
URL_PREFIX = "/api/v1/uploads/"
S3_KEY_PREFIX = "inputs/"  # beside the outputs' <job-id>/ folders in the shared bucket (never served as one)


class UploadError(ValueError):
    """A refused image: ``status`` is 413 for the byte limit, 400 for the rest."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


@dataclass(frozen=True)
class PreparedUpload:
    """An image checked and normalised but not stored yet: a job checks all its images before storing any."""

    png: bytes
    upload: Upload


class UploadService:
    def __init__(self, objects: ObjectStore, max_bytes: int, max_pixels: int, key_prefix: str = "") -> None:
        self.objects = objects
        self.max_bytes = max_bytes
        self.max_pixels = max_pixels
        self.key_prefix = key_prefix

    def _key(self, upload_id: str) -> str:
        return f"{self.key_prefix}{upload_id}.png"

    def prepare(self, data: bytes) -> PreparedUpload:
        """Check and normalise one image without storing it (blocking); raises UploadError naming the rule."""
        if len(data) > self.max_bytes:
            raise UploadError(f"image is {len(data)} bytes; the limit is {self.max_bytes}", status=413)
        try:
            decoded = decode_image(data, self.max_bytes, self.max_pixels)
        except InputImageError as exc:
            raise UploadError(str(exc)) from exc
        png = encode_png(decoded.image)
        upload_id = hashlib.sha256(png).hexdigest()
        width, height = decoded.image.size
        return PreparedUpload(png, Upload(id=upload_id, width=width, height=height, url=f"{URL_PREFIX}{upload_id}"))

    def prepare_inline(self, text: str) -> PreparedUpload:
        """An image a request carries inline (base64 or a data: URL), checked, not stored (blocking)."""
        try:
            data = base64_image_bytes(text, self.max_bytes)
        except InputImageError as exc:
            raise UploadError(str(exc)) from exc
        return self.prepare(data)

    def put(self, prepared: PreparedUpload) -> Upload:
        """Store a prepared image (blocking); storing the same pixels again changes nothing."""
        key = self._key(prepared.upload.id)
        if not self.objects.exists(key):
            self.objects.put(key, prepared.png, "image/png")
        return prepared.upload

    def store(self, data: bytes) -> Upload:
        """Check, normalise and store one image (blocking); raises UploadError naming the rule."""
        return self.put(self.prepare(data))

    def store_inline(self, text: str) -> Upload:
        """An image a request carries inline (base64 or a data: URL), stored as an upload (blocking)."""
        return self.put(self.prepare_inline(text))

    def describe(self, upload_id: str) -> Upload | None:
        """The stored upload ``upload_id`` (its size read from the PNG header), or None when there is none
        (blocking)."""
        data = self.read(upload_id)
        if data is None:
            return None
        try:
            with Image.open(io.BytesIO(data), formats=["PNG"]) as image:
                width, height = image.size
        except (UnidentifiedImageError, OSError) as exc:
            # Only this service writes there, so a stored object that is no PNG is damage, not input.
            raise UploadError(f"stored upload {upload_id} is not a readable PNG: {exc}", status=500) from exc
        return Upload(id=upload_id, width=width, height=height, url=f"{URL_PREFIX}{upload_id}")

    def read(self, upload_id: str) -> bytes | None:
        """The stored PNG, or None for an unknown (or malformed) id (blocking)."""
        if not UPLOAD_ID_RE.match(upload_id):
            return None
        found = self.objects.get(self._key(upload_id))
        return found.data if found is not None else None

    async def save(self, data: bytes) -> Upload:
        return await asyncio.to_thread(self.store, data)

    async def save_inline(self, text: str) -> Upload:
        return await asyncio.to_thread(self.store_inline, text)

    async def load(self, upload_id: str) -> bytes | None:
        return await asyncio.to_thread(self.read, upload_id)


def make_upload_service(settings: Settings) -> UploadService:
    """Local disk under ``storage.input_dir``, or the shared bucket under ``inputs/`` for backend s3."""
    storage = settings.storage
    if storage.backend == "local":
        objects: ObjectStore = LocalObjectStore(storage.input_dir)
        prefix = ""
    else:
        objects, prefix = make_object_store(storage), S3_KEY_PREFIX
    return UploadService(objects, storage.max_input_bytes, storage.max_input_pixels, prefix)
