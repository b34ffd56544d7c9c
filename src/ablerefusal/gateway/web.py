"""The web UI: a static export (Next.js ``out/``) served at ``/`` when it exists.

Mounted last, so /api, /outputs, /docs and /metrics win over any file of the same name. A gateway without a
built UI still serves the API; ``/`` then answers a short JSON pointer to the docs.
"""

from __future__ import annotations

import logging
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles

log = logging.getLogger(__name__)

# src/ablerefusal/gateway/web.py → repository root is three levels above the package folder.
REPO_WEB_OUT = Path(__file__).resolve().parents[3] / "web" / "out"


def web_dir(configured: Path | None) -> Path | None:
    candidate = configured if configured is not None else REPO_WEB_OUT
    return candidate if (candidate / "index.html").is_file() else None


def mount_web_ui(app: FastAPI, configured: Path | None) -> None:
    directory = web_dir(configured)
    if directory is None:
        if configured is not None:
            log.warning("server.web_dir %s has no index.html; the web UI is not served", configured)

        @app.get("/", include_in_schema=False)
        async def no_ui() -> JSONResponse:
            return JSONResponse({"message": "web UI not built (make web); the API is at /docs"})

        return
    # html=True serves index.html for folders, which is how a static export lays out its pages.
    app.mount("/", StaticFiles(directory=directory, html=True), name="web")
