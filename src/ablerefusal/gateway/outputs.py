"""``/outputs/*``: generated images, served only from inside ``storage.output_dir``.

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
from fastapi.responses import FileResponse
from starlette.concurrency import run_in_threadpool

from ablerefusal.gateway.auth import require_api_key
from ablerefusal.gateway.errors import ApiException

# Our own files are <job-id>/<index>.png; anything outside this alphabet was not written by us.
_SEGMENT = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}$")
# The types the dispatcher writes (dispatch.write_png_atomically); the suffix decides, never the content.
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


def resolve_output(root: Path, rel: str, raw_path: bytes) -> Path:
    """The file ``rel`` names inside ``root``, or an ApiException saying why not."""
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
    base = root.resolve()
    target = (base / rel).resolve()
    if not target.is_relative_to(base) or not target.is_file():
        raise ApiException(404, "not_found", f"no output file {rel!r}")
    return target


@router.get(
    "/outputs/{path:path}",
    summary="A generated image",
    response_class=FileResponse,
    responses={200: {"content": {"image/png": {}}, "description": "The file."}},
)
async def get_output(path: str, request: Request) -> FileResponse:
    root: Path = request.app.state.settings.storage.output_dir
    # resolve() and is_file() hit the disk (a network volume can stall): keep them off the event loop.
    target = await run_in_threadpool(resolve_output, root, path, request.scope.get("raw_path", b""))
    # The name asked for decides the type (resolve_output checked it); a symlink target's name does not.
    media_type = IMAGE_TYPES[Path(path).suffix.lower()]
    return FileResponse(target, media_type=media_type, headers=OUTPUT_HEADERS)
