"""Hatch build hook: ships the web UI (the Next.js static export in web/out) inside the wheel as
``ablerefusal/gateway/web_ui``, where ``gateway/web.py`` serves it from.

The UI is built first (npm ci when needed, then npm run build) when web/out is missing or older than its
sources, so ``python -m build`` alone makes a complete wheel. Editable installs serve web/out from the checkout
and skip this. ``ABLEREFUSAL_WHEEL_WITHOUT_UI=1`` builds a wheel without the UI (its gateway answers ``/`` with a
pointer to the API docs).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface

PACKAGE_PATH = "ablerefusal/gateway/web_ui"
# What `next build` reads (the Makefile's WEB_SOURCES): newer than web/out/index.html means out is stale.
_SOURCES = ("src", "public", "package.json", "package-lock.json", "next.config.ts", "tsconfig.json", "openapi.json")


def _newest_source(web: Path) -> float:
    times = [0.0]
    for name in _SOURCES:
        path = web / name
        if path.is_file():
            times.append(path.stat().st_mtime)
        elif path.is_dir():
            times.extend(p.stat().st_mtime for p in path.rglob("*") if p.is_file())
    return max(times)


class WebUIHook(BuildHookInterface):
    PLUGIN_NAME = "custom"

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        if version == "editable" or os.environ.get("ABLEREFUSAL_WHEEL_WITHOUT_UI") == "1":
            return
        web = Path(self.root) / "web"
        index = web / "out" / "index.html"
        if not index.is_file() or index.stat().st_mtime < _newest_source(web):
            self._build_ui(web)
        build_data["force_include"][str(web / "out")] = PACKAGE_PATH

    def _build_ui(self, web: Path) -> None:
        npm = shutil.which("npm")
        if npm is None or not (web / "package.json").is_file():
            raise RuntimeError(
                "the wheel ships the web UI, but web/out is missing or stale and npm (Node.js >= 20.19) is not "
                "available to build it: run 'make web' first, or set ABLEREFUSAL_WHEEL_WITHOUT_UI=1"
            )
        if not (web / "node_modules" / ".bin" / "next").exists():
            subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=web, check=True)
        subprocess.run([npm, "run", "build"], cwd=web, check=True)
