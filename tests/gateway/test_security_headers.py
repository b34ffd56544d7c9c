"""Security headers of the UI and the API (issue 10, foundations 5). The UI is a real folder served by the real
app; tests/e2e checks in Chromium that the built UI runs under this policy and that an injected script does not."""

from __future__ import annotations

import base64
import hashlib
import os
from collections.abc import Callable
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError

from ablerefusal.gateway.app import create_app
from ablerefusal.gateway.security_headers import inline_script_hashes
from ablerefusal.gateway.settings import Settings

BOOT = "(self.__next_f=self.__next_f||[]).push([0])"
PAGE = f"""<!DOCTYPE html><html><head><script src="/_next/static/chunks/app.js" async=""></script>
<script id="_R_">{BOOT}</script></head><body><p>studio</p>
<script>self.__next_f.push([1,"a \\u003c b"])</script></body></html>"""


def sha256_source(script: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(script.encode()).digest()).decode() + "'"


def directives(policy: str) -> dict[str, list[str]]:
    parts = (d.split() for d in policy.split(";") if d.strip())
    return {p[0]: p[1:] for p in parts}


@pytest.fixture
def ui(tmp_path: Path) -> Path:
    root = tmp_path / "ui"
    (root / "_next" / "static" / "chunks").mkdir(parents=True)
    (root / "index.html").write_text(PAGE)
    (root / "404.html").write_text("<html><script>notFound()</script></html>")
    (root / "_next" / "static" / "chunks" / "app.js").write_text("console.log(1)")
    return root


@pytest.fixture
def ui_client(make_settings: Callable[..., Settings], ui: Path) -> TestClient:
    return TestClient(create_app(make_settings(server={"web_dir": str(ui)})))


def test_inline_script_hashes_are_of_the_exact_script_text() -> None:
    assert inline_script_hashes(PAGE) == [sha256_source(BOOT), sha256_source('self.__next_f.push([1,"a \\u003c b"])')]


def test_the_ui_allows_its_own_inline_scripts_by_hash_and_nothing_inline_else(ui_client: TestClient) -> None:
    resp = ui_client.get("/")
    assert resp.status_code == 200
    assert "studio" in resp.text
    policy = directives(resp.headers["content-security-policy"])
    assert policy["script-src"] == ["'self'", *inline_script_hashes(PAGE)]
    assert "'unsafe-inline'" not in resp.headers["content-security-policy"]
    assert "'unsafe-eval'" not in resp.headers["content-security-policy"]
    assert policy["object-src"] == ["'none'"]
    assert policy["frame-ancestors"] == ["'none'"]
    assert resp.headers["x-content-type-options"] == "nosniff"
    assert resp.headers["referrer-policy"] == "same-origin"
    assert resp.headers["cache-control"] == "no-cache"


def test_the_not_found_page_gets_its_own_hashes(ui_client: TestClient) -> None:
    resp = ui_client.get("/no/such/page")
    assert resp.status_code == 404
    assert directives(resp.headers["content-security-policy"])["script-src"] == ["'self'", sha256_source("notFound()")]


def test_hashed_bundles_are_cached_for_good(ui_client: TestClient) -> None:
    resp = ui_client.get("/_next/static/chunks/app.js")
    assert resp.status_code == 200
    assert resp.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert directives(resp.headers["content-security-policy"])["script-src"] == ["'self'"]


def test_a_page_rebuilt_under_a_running_gateway_gets_fresh_hashes(ui_client: TestClient, ui: Path) -> None:
    first = ui_client.get("/").headers["content-security-policy"]
    rebuilt = PAGE.replace(BOOT, "window.rebuilt=1")
    (ui / "index.html").write_text(rebuilt)
    later = os.stat(ui / "index.html").st_mtime_ns + 1_000_000_000
    os.utime(ui / "index.html", ns=(later, later))
    second = ui_client.get("/").headers["content-security-policy"]
    assert second != first
    assert sha256_source("window.rebuilt=1") in directives(second)["script-src"]


def test_frame_ancestors_is_configurable(make_settings: Callable[..., Settings], ui: Path) -> None:
    settings = make_settings(server={"web_dir": str(ui), "frame_ancestors": ["'self'", "https://portal.example.com"]})
    policy = TestClient(create_app(settings)).get("/").headers["content-security-policy"]
    assert directives(policy)["frame-ancestors"] == ["'self'", "https://portal.example.com"]


@pytest.mark.parametrize("source", ["'self'; script-src *", "a b", "https://x.example,https://y.example"])
def test_a_frame_ancestor_cannot_smuggle_other_directives(make_settings: Callable[..., Settings], source: str) -> None:
    with pytest.raises(ValidationError) as caught:
        make_settings(server={"frame_ancestors": [source]})
    assert "frame_ancestors" in str(caught.value)


def test_api_answers_carry_nosniff_and_referrer_policy(client: TestClient) -> None:
    for resp in (client.get("/api/v1/health"), client.get("/api/v1/generate/nope")):
        assert resp.headers["x-content-type-options"] == "nosniff"
        assert resp.headers["referrer-policy"] == "same-origin"
