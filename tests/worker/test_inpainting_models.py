"""Dedicated inpainting models (9-channel UNet): detected from config / tensor shapes, listed, and run.

They live in their own models folder and worker so the shared worker's model list stays as other tests expect.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import ImageFilter
from test_image_modes import b64, item, only, picture, square_mask
from worker_helpers import call_body, pixels, run_call, wait_ready

from ablerefusal.worker.app import create_app
from ablerefusal.worker.engine.detection import inpainting_from_header, read_safetensors_header
from ablerefusal.worker.settings import WorkerSettings

INPAINTING = [
    "tiny-sd15-inpainting",
    "tiny-sd15-inpainting-single",
    "tiny-sdxl-inpainting",
    "tiny-sdxl-inpainting-single",
]


@pytest.fixture(scope="module")
def inpainting_models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    models = tmp_path_factory.mktemp("inpainting-models")
    # Through the CLI, as an operator would; in a child process like the shared tiny models.
    for family in ("sd15", "sdxl"):
        for fmt in ("diffusers", "single-file"):
            cmd = [sys.executable, "-m", "ablerefusal", "models", "make-tiny", str(models), "--family", family]
            subprocess.run([*cmd, "--format", fmt, "--inpainting"], check=True, timeout=600, capture_output=True)
    subprocess.run(
        [sys.executable, "-m", "ablerefusal", "models", "make-tiny", str(models)],
        check=True,
        timeout=600,
        capture_output=True,
    )
    return models


@pytest.fixture(scope="module")
def client(inpainting_models: Path) -> Iterator[TestClient]:
    settings = WorkerSettings(models_dir=inpainting_models, device="cpu", cache_size=5, worker_id="inpaint-worker")
    with TestClient(create_app(settings)) as c:
        wait_ready(c)
        yield c


def test_inpainting_models_are_detected_and_listed(client: TestClient, inpainting_models: Path) -> None:
    listed = {m["id"]: m["inpainting"] for m in client.get("/v1/models").json()["models"]}
    assert listed == {**dict.fromkeys(INPAINTING, True), "tiny-sd15": False}
    # Single files: from the UNet's first convolution, 9 input channels instead of 4.
    assert inpainting_from_header(
        read_safetensors_header(inpainting_models / "tiny-sd15-inpainting-single.safetensors")
    )


@pytest.mark.parametrize(("model", "fill"), [(m, "original") for m in INPAINTING] + [(INPAINTING[0], "latent_nothing")])
def test_inpainting_model_keeps_every_pixel_outside_the_mask(client: TestClient, model: str, fill: str) -> None:
    source = picture(64, 64, 12)
    mask = square_mask(64, 64, (16, 16, 47, 47))
    items = [
        item("a", [71, 72], init_image=b64(source), mask=b64(mask)),
        item("b", [73], init_image=b64(source), mask=b64(mask)),
    ]
    together = only(
        run_call(client, call_body(model, mode="inpaint", mask_blur=2, steps=3, inpainting_fill=fill, items=items))
    )
    result, original = pixels(together[("a", 0)]), np.asarray(source)
    outside = np.asarray(mask.filter(ImageFilter.GaussianBlur(2))) == 0
    assert np.array_equal(result[outside], original[outside])
    assert not np.array_equal(result[24:40, 24:40], original[24:40, 24:40])
    alone = only(
        run_call(client, call_body(model, mode="inpaint", mask_blur=2, steps=3, inpainting_fill=fill, items=[items[1]]))
    )
    assert np.array_equal(pixels(alone[("b", 0)]), pixels(together[("b", 0)]))


def test_inpainting_model_outpaints(client: TestClient) -> None:
    source = picture(64, 64, 13)
    body = call_body(
        "tiny-sd15-inpainting", mode="outpaint", outpaint={"right": 32}, items=[item("j", [81], init_image=b64(source))]
    )
    result = pixels(only(run_call(client, body))[("j", 0)])
    assert result.shape == (64, 96, 3) and np.array_equal(result[:, :64], np.asarray(source))


@pytest.mark.parametrize("mode", ["txt2img", "img2img"])
def test_inpainting_model_refuses_modes_without_a_mask(client: TestClient, mode: str) -> None:
    extra = {"init_image": b64(picture(64, 64))} if mode == "img2img" else {}
    resp = client.post(
        "/v1/generate", json=call_body("tiny-sd15-inpainting", mode=mode, items=[item("j", [1], **extra)])
    )
    assert resp.status_code == 400, resp.text
    error = resp.json()["error"]
    assert error["details"][0]["field"] == "mode" and "inpainting model" in error["message"]
