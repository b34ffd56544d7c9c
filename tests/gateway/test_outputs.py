"""/outputs serves files inside storage.output_dir and nothing else (raw-HTTP traversal attempts are in
tests/integration/test_gateway_alone.py)."""

from __future__ import annotations

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
