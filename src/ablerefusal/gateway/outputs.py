"""``/outputs/*``: generated images, from ``storage.output_dir`` or, with ``storage.backend: s3``, the bucket
(a redirect to a presigned or public URL, or the bytes streamed through the gateway).

Paths are checked by shape before they touch the filesystem (each segment a plain file name) and again
after resolving symlinks, so neither ``..`` (plain or percent-encoded), absolute paths, backslashes nor a
symlink pointing outside can reach another file.

Only the image types we write are served, under a CSP that forbids everything: a file planted in the folder
by anything else (an ``.html``, an ``.svg`` with script) must never run as a page on the gateway's origin.
"""

from __future__ import annotations

import re
from pathlib import Path

from fastapi import APIRouter, Depends, Request
from fastapi.responses import FileResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from ablerefusal.gateway.auth import require_api_key
from ablerefusal.gateway.errors import ApiException
from ablerefusal.gateway.storage import ObjectStore
from ablerefusal.gateway.uploads.service import S3_KEY_PREFIX as UPLOADS_PREFIX

# Our own files are <job-id>/<index>.png; anything outside this alphabet was not written by us.
_SEGMENT = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}$")
# The types the dispatcher writes (dispatch.output_key); the suffix decides, never the content.
IMAGE_TYPES = {".png": "image/png"}
# An image is a resource, not a document: nothing in it may load, run or be framed.
OUTPUT_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'; sandbox",
    "X-Content-Type-Options": "nosniff",
    # A file's name is <job-id>/<index>: a retry rewrites the same pixels, so browsers may keep it for good;
    # private, because with API keys the image belongs to one key and a shared cache must not hand it out.
    "Cache-Control": "private, max-age=31536000, immutable",
}

router = APIRouter(dependencies=[Depends(require_api_key)], tags=["outputs"])


def check_output_path(rel: str, raw_path: bytes) -> None:
    """Raise an ApiException unless ``rel`` has the shape of a file we write (checked before any I/O)."""
    if b"%" in raw_path or "\\" in rel or rel.startswith("/"):
        raise ApiException(
            400,
            "invalid_request",
            "invalid output path: encoded characters, backslashes and absolute paths are not allowed",
        )
    segments = rel.split("/")
    if not all(_SEGMENT.match(s) and s not in (".", "..") for s in segments):
        raise ApiException(400, "invalid_request", "invalid output path: segments must be plain file names")
    if Path(segments[-1]).suffix.lower() not in IMAGE_TYPES:
        raise ApiException(404, "not_found", f"no output file {rel!r}: only {', '.join(IMAGE_TYPES)} images are served")


def resolve_output(root: Path, rel: str, raw_path: bytes) -> Path:
    """The file ``rel`` names inside ``root``, or an ApiException saying why not."""
    check_output_path(rel, raw_path)
    base = root.resolve()
    target = (base / rel).resolve()
    if not target.is_relative_to(base) or not target.is_file():
        raise ApiException(404, "not_found", f"no output file {rel!r}")
    return target


@router.get(
    "/outputs/{path:path}",
    summary="A generated image",
    response_class=FileResponse,
    responses={
        200: {"content": {"image/png": {}}, "description": "The file."},
        307: {"description": "With storage.backend s3: the object's presigned (or public_base_url) address."},
    },
)
async def get_output(path: str, request: Request) -> Response:
    settings = request.app.state.settings
    raw_path = request.scope.get("raw_path", b"")
    # The name asked for decides the type (the path checks allow only IMAGE_TYPES); a symlink target's does not.
    media_type = IMAGE_TYPES.get(Path(path).suffix.lower(), "")
    if settings.storage.backend == "local":
        # resolve() and is_file() hit the disk (a network volume can stall): keep them off the event loop.
        target = await run_in_threadpool(resolve_output, settings.storage.output_dir, path, raw_path)
        return FileResponse(target, media_type=media_type, headers=OUTPUT_HEADERS)
    check_output_path(path, raw_path)
    if path.startswith(UPLOADS_PREFIX):
        # Uploads share the bucket but are not outputs: they are served (to keys that may) at /api/v1/uploads.
        raise ApiException(404, "not_found", f"no output file {path!r}")
    outputs: ObjectStore = request.app.state.service.outputs
    direct = outputs.direct_url(path)
    if direct is not None:
        # A presigned URL expires: clients may keep the redirect only briefly (the image itself they keep).
        return RedirectResponse(direct, status_code=307, headers={"Cache-Control": "private, max-age=60"})
    found = await run_in_threadpool(outputs.get, path)
    if found is None:
        raise ApiException(404, "not_found", f"no output file {path!r}")
    return Response(found.data, media_type=media_type, headers=OUTPUT_HEADERS)
