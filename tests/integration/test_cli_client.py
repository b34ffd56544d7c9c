"""``ablerefusal generate`` (src/ablerefusal/client) against a real gateway with a real local worker: it follows the
job's event stream (not the polling fallback), saves the images the gateway wrote, and explains bad input."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from gateway_procs import Gateway, make_gateway

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory, tiny_models: Path) -> Iterator[Gateway]:
    gw = make_gateway(tmp_path_factory.mktemp("cli-gw"), tiny_models, "--device", "cpu")
    gw.start(wait_ready=True)
    yield gw
    gw.stop()


def generate(gateway: Gateway, out: Path, *args: str) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "ablerefusal", "generate", *args, "--out", str(out), "--url", gateway.url]
    return subprocess.run(argv, capture_output=True, text=True, timeout=300)


def test_generate_follows_the_stream_and_saves_what_the_gateway_wrote(gateway: Gateway, tmp_path: Path) -> None:
    out = tmp_path / "images"
    run = generate(gateway, out, "a red cube", "--steps", "2", "--width", "64", "--height", "64", "--batch-size", "2")
    assert run.returncode == 0, run.stderr
    assert "polling instead" not in run.stderr
    job_id = run.stderr.split("job ", 1)[1].split()[0]
    saved = [Path(line) for line in run.stdout.split()]
    assert saved == [out / f"{job_id}-0.png", out / f"{job_id}-1.png"]
    for index, path in enumerate(saved):
        assert path.read_bytes() == (gateway.output_dir / job_id / f"{index}.png").read_bytes()


def test_bad_input_is_explained_field_by_field_and_nothing_is_saved(gateway: Gateway, tmp_path: Path) -> None:
    out = tmp_path / "images"
    run = generate(gateway, out, "a red cube", "--steps", "0", "--width", "65")
    assert run.returncode == 1
    assert "HTTP 400" in run.stderr
    assert "steps" in run.stderr
    assert "width" in run.stderr
    assert not out.exists()
