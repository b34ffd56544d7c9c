"""Input images (init images, masks): checked from their bytes, normalised, stored content-addressed.

Routers and the job wiring use ``UploadService``; the checks themselves are ``ablerefusal.image_inputs``,
shared with the worker so both sides refuse the same images.
"""

from __future__ import annotations

from ablerefusal.gateway.uploads.models import Upload
from ablerefusal.gateway.uploads.service import (
    URL_PREFIX,
    PreparedUpload,
    UploadError,
    UploadService,
    make_upload_service,
)

__all__ = ["URL_PREFIX", "PreparedUpload", "Upload", "UploadError", "UploadService", "make_upload_service"]
