"""Security headers: the ones every gateway response carries, and the Content-Security-Policy of the static UI.

The UI is a Next.js static export, which inlines a few bootstrap scripts into each page. Rather than allow
``'unsafe-inline'``, the policy lists the sha256 of each inline script of the page being served, so a script
injected into a page (or a page planted beside the UI) does not run. ``/outputs`` sets its own, stricter policy.
"""

from __future__ import annotations

import base64
import hashlib
from html.parser import HTMLParser
from pathlib import Path

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

# "same-origin", not "no-referrer": under no-referrer a browser sends `Origin: null` on the UI's own POSTs,
# which an Origin check must then refuse; other sites still learn nothing.
BASE_HEADERS = {"X-Content-Type-Options": "nosniff", "Referrer-Policy": "same-origin"}


class SecurityHeaders:
    """Adds BASE_HEADERS to every HTTP response that does not set them itself (pure ASGI: streams untouched)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in BASE_HEADERS.items():
                    headers.setdefault(name, value)
            await send(message)

        await self.app(scope, receive, send_with_headers)


class _InlineScripts(HTMLParser):
    """Collects the text of every ``<script>`` without ``src``, exactly as the browser hashes it."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=False)
        self.scripts: list[str] = []
        self._current: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "script" and not any(name == "src" for name, _ in attrs):
            self._current = []

    def handle_data(self, data: str) -> None:
        if self._current is not None:
            self._current.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "script" and self._current is not None:
            self.scripts.append("".join(self._current))
            self._current = None


def inline_script_hashes(html: str) -> list[str]:
    """CSP sources (``'sha256-…'``) for the page's inline scripts, in page order, without repeats."""
    parser = _InlineScripts()
    parser.feed(html)
    parser.close()
    digests = (base64.b64encode(hashlib.sha256(s.encode()).digest()).decode() for s in parser.scripts)
    return list(dict.fromkeys(f"'sha256-{d}'" for d in digests))


def ui_policy(script_hashes: list[str], frame_ancestors: list[str]) -> str:
    """The UI's policy: its own files only; images also from data: (previews) and blob: (keyed images)."""
    directives = {
        "default-src": ["'self'"],
        "script-src": ["'self'", *script_hashes],
        "style-src": ["'self'"],
        "img-src": ["'self'", "data:", "blob:"],
        "connect-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'none'"],
        "form-action": ["'self'"],
        "frame-ancestors": frame_ancestors,
    }
    return "; ".join(f"{name} {' '.join(sources)}" for name, sources in directives.items())


class PagePolicies:
    """The policy of each HTML file of the UI, computed from its own inline scripts and cached by file
    version, so a UI rebuilt under a running gateway gets fresh hashes on its next request."""

    def __init__(self, frame_ancestors: list[str]) -> None:
        self.frame_ancestors = frame_ancestors
        self._cache: dict[Path, tuple[tuple[int, int], str]] = {}

    def for_page(self, path: Path, version: tuple[int, int]) -> str:
        cached = self._cache.get(path)
        if cached is not None and cached[0] == version:
            return cached[1]
        policy = ui_policy(inline_script_hashes(path.read_text(encoding="utf-8")), self.frame_ancestors)
        self._cache[path] = (version, policy)
        return policy

    def warm(self, root: Path) -> None:
        """Reads every page once, at start-up, so requests find their policy without touching the disk."""
        for page in root.rglob("*.html"):
            stat = page.stat()
            self.for_page(page, (stat.st_mtime_ns, stat.st_size))
