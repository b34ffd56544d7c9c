"""ESRGAN upscaler files through the A1111 API, over real HTTP against a live gateway + CPU worker: the worker
announces ``make-tiny --upscaler``'s files, ``/sdapi/v1/upscalers`` lists them, and txt2img's hires fix runs
with one named in ``hr_upscaler``. The models are made in a child process (this process stays torch-free,
like the gateway's)."""

from __future__ import annotations

import base64
import io
import json
import subprocess
import sys
from collections.abc import Iterator

import httpx
import pytest
from compat_live import API_KEY, DIFFUSERS_MODEL, gateway_proc, wait_for_models
from PIL import Image

pytestmark = pytest.mark.integration

_MODELS = ("tiny-esrgan-old-x4", "tiny-esrgan-x2", "tiny-esrgan-x4")


@pytest.fixture(scope="module")
def esrgan_http(tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    root = tmp_path_factory.mktemp("esrgan-live")
    models = root / "models"
    subprocess.run(
        [sys.executable, "-m", "ablerefusal", "models", "make-tiny", str(models), "--upscaler"],
        check=True,
        timeout=600,
        capture_output=True,
    )
    with gateway_proc(root, models).start(timeout=180) as proc:
        wait_for_models(proc, {DIFFUSERS_MODEL}, timeout_s=180)
        headers = {"Authorization": f"Bearer {API_KEY}"}
        with httpx.Client(base_url=proc.url, headers=headers, timeout=300) as http:
            yield http


def test_a1111_lists_the_worker_upscaler_models(esrgan_http: httpx.Client) -> None:
    listed = esrgan_http.get("/sdapi/v1/upscalers").json()
    assert [u["name"] for u in listed] == ["None", "Lanczos", "Nearest", *_MODELS]
    ours = esrgan_http.get("/api/v1/models", params={"kind": "upscaler"}).json()["models"]
    assert sorted(m["id"] for m in ours) == list(_MODELS)


def test_a1111_txt2img_hires_with_an_esrgan_model(esrgan_http: httpx.Client) -> None:
    body = {
        "prompt": "a tiny castle",
        "enable_hr": True,
        "hr_scale": 2,
        "hr_upscaler": "tiny-esrgan-x4",
        "denoising_strength": 0.5,
        "steps": 2,
        "width": 64,
        "height": 64,
        "seed": 9,
    }
    response = esrgan_http.post("/sdapi/v1/txt2img", json=body)
    assert response.status_code == 200, response.text
    answer = response.json()
    assert Image.open(io.BytesIO(base64.b64decode(answer["images"][0]))).size == (128, 128)
    info = json.loads(answer["info"])
    assert info["extra_generation_params"]["Hires upscaler"] == "tiny-esrgan-x4"
    assert "Hires upscaler: tiny-esrgan-x4" in info["infotexts"][0]


def test_a1111_unknown_model_upscaler_is_422(esrgan_http: httpx.Client) -> None:
    body = {"prompt": "x", "enable_hr": True, "hr_upscaler": "4x-UltraSharp", "steps": 2, "width": 64, "height": 64}
    response = esrgan_http.post("/sdapi/v1/txt2img", json=body)
    assert response.status_code == 422, response.text
    assert "tiny-esrgan-x4" in response.text
