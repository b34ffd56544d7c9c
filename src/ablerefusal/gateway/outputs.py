"""``/outputs/*``: generated images, served only from inside ``storage.output_dir``.

Paths are checked by shape before they touch the filesystem (each segment a plain file name) and again
after resolving symlinks, so neither ``..`` (plain or percent-encoded), absolute paths, backslashes nor a
symlink pointing outside can reach another file.
"""

from __future__ import annotations

import mimetypes
import re
from pathlib import Path

from fastapi import APIRouter, Depends, Request
from fastapi.responses import FileResponse

from ablerefusal.gateway.auth import require_api_key
from ablerefusal.gateway.errors import ApiException

# Our own files are <job-id>/<index>.png; anything outside this alphabet was not written by us.
_SEGMENT = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}$")

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
    target = resolve_output(root, path, request.scope.get("raw_path", b""))
    media_type = mimetypes.guess_type(target.name)[0] or "application/octet-stream"
    return FileResponse(target, media_type=media_type, headers={"X-Content-Type-Options": "nosniff"})
