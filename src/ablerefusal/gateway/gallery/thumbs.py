"""WebP thumbnails, made once from the PNG and kept in the object store beside it.

Blocking (object store I/O and Pillow): callers run these in a thread.
"""

from __future__ import annotations

import io

from PIL import Image

from ablerefusal.gateway.storage import ObjectStore

# Long side of a thumbnail: a dense grid shows tiles of about 128-192 CSS px, so 256 stays sharp at 2x.
THUMB_SIZE = 256
# WebP at this quality keeps a 256 px thumbnail at a few KB, small enough for pages of 100.
THUMB_QUALITY = 70
THUMB_TYPE = "image/webp"


def thumb_key(job_id: str, index: int) -> str:
    return f"{job_id}/thumbs/{index}.webp"


def make_thumbnail(png: bytes) -> bytes:
    with Image.open(io.BytesIO(png)) as image:
        image.thumbnail((THUMB_SIZE, THUMB_SIZE))
        out = io.BytesIO()
        image.convert("RGB").save(out, format="WEBP", quality=THUMB_QUALITY, method=4)
    return out.getvalue()


def thumbnail(objects: ObjectStore, job_id: str, index: int, image_key: str) -> bytes | None:
    """The cached thumbnail of the image at ``image_key``, made and stored on first use; None when the
    image itself is gone."""
    key = thumb_key(job_id, index)
    cached = objects.get(key)
    if cached is not None:
        return cached.data
    source = objects.get(image_key)
    if source is None:
        return None
    data = make_thumbnail(source.data)
    objects.put(key, data, THUMB_TYPE)
    return data
