"""The wheel is the product (issue 10, foundations 4): built from this checkout, installed into a fresh venv
outside it, its gateway serves the studio from the package.

The fresh venv gets only the wheel (``--no-deps``). The base dependencies are borrowed from this test's own
environment through a ``.pth`` line, which Python appends after the venv's own site-packages: the installed
wheel's ``ablerefusal`` is found first, and the checkout's editable install is not visible at all (``.pth``
files inside a directory added that way are not processed). Nothing is downloaded.
"""

from __future__ import annotations

import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import httpx
import pytest

from procs import Proc, free_port

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not (REPO / "web" / "out" / "index.html").is_file():
        pytest.fail("web/out/index.html is missing: build the UI first with 'make web'")
    out = tmp_path_factory.mktemp("dist")
    # hatchling straight from this environment: what `python -m build` runs, without an isolated env to set up.
    subprocess.run(
        [sys.executable, "-m", "hatchling", "build", "-t", "wheel", "-d", str(out)],
        cwd=REPO,
        check=True,
        capture_output=True,
        timeout=600,
    )
    (built,) = out.glob("ablerefusal-*.whl")
    return built


def test_the_wheel_carries_the_built_ui(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    ui = "ablerefusal/gateway/web_ui/"
    assert ui + "index.html" in names
    for built in (REPO / "web" / "out").rglob("*"):
        if built.is_file():
            assert ui + built.relative_to(REPO / "web" / "out").as_posix() in names


def test_installed_wheel_serves_the_studio_from_the_package(wheel: Path, tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps", "--no-index", str(wheel)],
        check=True,
        timeout=300,
    )
    site = Path(
        subprocess.check_output(
            [python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"], text=True
        ).strip()
    )
    (site / "zz_borrowed_deps.pth").write_text(sysconfig.get_path("purelib") + "\n")

    where = subprocess.check_output(
        [python, "-c", "import ablerefusal; print(ablerefusal.__file__)"], cwd=tmp_path, text=True
    )
    assert Path(where.strip()).is_relative_to(site), where

    port = free_port()
    gateway = Proc(
        [str(venv / "bin" / "ablerefusal"), "serve", "--no-local-worker", "--port", str(port)],
        port=port,
        log_path=tmp_path / "gateway.log",
        ready_path="/api/v1/health",
        cwd=tmp_path,
    )
    with gateway.start(timeout=120):
        resp = httpx.get(gateway.url + "/")
        assert resp.status_code == 200
        assert resp.headers["content-type"].startswith("text/html")
        assert "<title>AbleRefusal" in resp.text
        assert resp.text == (site / "ablerefusal" / "gateway" / "web_ui" / "index.html").read_text()
        assert "sha256-" in resp.headers["content-security-policy"]
        bundle = resp.text.split('src="/_next/static/', 1)[1].split('"', 1)[0]
        assert httpx.get(f"{gateway.url}/_next/static/{bundle}").status_code == 200
