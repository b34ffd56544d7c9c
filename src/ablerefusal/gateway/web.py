"""The web UI: a static export (Next.js ``out/``) served at ``/``.

Wheels carry the export as package data (``ablerefusal/gateway/web_ui``, put there by ``hatch_build.py``); a
source checkout serves ``web/out`` after ``make web``. Mounted last, so /api, /outputs, /docs and /metrics
win over any file of the same name. A gateway without a built UI still serves the API; ``/`` then answers a
short JSON pointer to the docs.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.responses import FileResponse, Response
from starlette.types import Scope

from ablerefusal.gateway.security_headers import PagePolicies, ui_policy

log = logging.getLogger(__name__)

PACKAGED_UI = Path(__file__).resolve().with_name("web_ui")
# src/ablerefusal/gateway/web.py → repository root is three levels above the package folder.
CHECKOUT_UI = Path(__file__).resolve().parents[3] / "web" / "out"
# Next puts content-hashed bundles here: a changed file gets a new name, so browsers may keep them for good.
_HASHED_ASSETS = "_next/static/"


def web_dir(configured: Path | None) -> Path | None:
    candidates = [configured] if configured is not None else [PACKAGED_UI, CHECKOUT_UI]
    return next((c for c in candidates if (c / "index.html").is_file()), None)


class UIFiles(StaticFiles):
    """StaticFiles that sends each page its CSP (with that page's inline-script hashes) and cache headers."""

    def __init__(self, directory: Path, frame_ancestors: list[str]) -> None:
        super().__init__(directory=directory, html=True)
        self.root = directory
        self.policies = PagePolicies(frame_ancestors)
        self.policies.warm(directory)
        self.asset_policy = ui_policy([], frame_ancestors)

    def file_response(
        self, full_path: str | os.PathLike[str], stat_result: os.stat_result, scope: Scope, status_code: int = 200
    ) -> Response:
        response = super().file_response(full_path, stat_result, scope, status_code)
        self._secure(response, Path(full_path), stat_result)
        return response

    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        # StaticFiles answers a missing page with 404.html directly, not through file_response.
        if isinstance(response, FileResponse) and "content-security-policy" not in response.headers:
            self._secure(response, Path(response.path), response.stat_result)
        return response

    def _secure(self, response: Response, path: Path, stat_result: os.stat_result | None) -> None:
        if path.suffix == ".html" and stat_result is not None:
            # Warmed at start-up; only a UI rebuilt under a running gateway is read again here.
            version = (stat_result.st_mtime_ns, stat_result.st_size)
            response.headers["Content-Security-Policy"] = self.policies.for_page(path, version)
        else:
            response.headers["Content-Security-Policy"] = self.asset_policy
        hashed = path.is_relative_to(self.root / _HASHED_ASSETS)
        response.headers["Cache-Control"] = "public, max-age=31536000, immutable" if hashed else "no-cache"


def mount_web_ui(app: FastAPI, configured: Path | None, frame_ancestors: list[str]) -> None:
    directory = web_dir(configured)
    if directory is None:
        if configured is not None:
            log.warning("server.web_dir %s has no index.html; the web UI is not served", configured)

        @app.get("/", include_in_schema=False)
        async def no_ui() -> JSONResponse:
            return JSONResponse({"message": "web UI not built (make web); the API is at /docs"})

        return
    # html=True serves index.html for folders, which is how a static export lays out its pages.
    app.mount("/", UIFiles(directory.resolve(), frame_ancestors), name="web")
