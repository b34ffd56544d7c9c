"""The studio's adapters in Chromium against a real gateway and worker whose models dir holds a tiny LoRA, VAE
and ControlNet: pick a LoRA (its tag lands at the cursor), set its weight with the slider, choose the VAE and
clip skip, add a ControlNet unit with an image, preview its canny map, generate; the job the studio submitted
is read back through the API."""

from __future__ import annotations

import base64
import io
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from gateway_procs import Gateway, make_gateway
from PIL import Image, ImageDraw
from playwright.sync_api import Page, expect
from web_e2e import REPO, screenshot

pytestmark = pytest.mark.e2e

_MAKE = """
import sys
from pathlib import Path
from ablerefusal.testing.controlnet import make_tiny_controlnet
from ablerefusal.testing.tiny import make_tiny
from ablerefusal.testing.tiny_adapters import make_tiny_lora, make_tiny_vae
dest = Path(sys.argv[1])
make_tiny(dest, "sd15", "diffusers")
make_tiny_lora(dest, "sd15", "kohya", name="ink")
make_tiny_lora(dest, "sdxl", "kohya", name="ink-xl")
make_tiny_vae(dest, name="tiny-vae")
make_tiny_controlnet(dest, "sd15", "diffusers", name="cn-canny")
"""


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    """This module's own gateway: the shared e2e one has no adapters."""
    if not (REPO / "web" / "out" / "index.html").is_file():
        pytest.fail("web/out/index.html is missing: build the UI first with 'make web'")
    models = tmp_path_factory.mktemp("e2e-adapter-models")
    subprocess.run([sys.executable, "-c", _MAKE, str(models)], check=True, timeout=600)
    gw = make_gateway(tmp_path_factory.mktemp("e2e-adapters-gw"), models, "--device", "cpu")
    gw.start(wait_ready=True)
    yield gw
    gw.stop()


def square(path: Path) -> None:
    image = Image.new("RGB", (64, 64), "black")
    ImageDraw.Draw(image).rectangle((16, 16, 47, 47), fill="white")
    image.save(path, "PNG")


def test_pick_a_lora_set_vae_clip_skip_and_a_controlnet_unit_then_generate(
    page: Page, gateway: Gateway, tmp_path: Path
) -> None:
    square(tmp_path / "square.png")
    page.goto("/")
    prompt = page.get_by_label("Prompt", exact=True)
    prompt.fill("a red cube, studio light")
    page.get_by_text("LoRAs, embeddings, VAE, ControlNet").click()
    # Only the model's family is offered: the SDXL LoRA is hidden.
    expect(page.get_by_role("button", name="Add LoRA ink", exact=True)).to_be_visible()
    expect(page.get_by_role("button", name="Add LoRA ink-xl")).to_have_count(0)
    # The tag goes where the cursor is: after "a red cube,".
    prompt.evaluate("el => { el.focus(); el.setSelectionRange(11, 11); }")
    page.get_by_role("button", name="Add LoRA ink", exact=True).click()
    expect(prompt).to_have_value("a red cube, <lora:ink:1> studio light")
    page.get_by_label("ink", exact=True).fill("0.5")
    expect(prompt).to_have_value("a red cube, <lora:ink:0.5> studio light")

    page.get_by_label("VAE").select_option("tiny-vae")
    page.get_by_label("Clip skip").select_option("2")

    page.get_by_role("button", name="Add ControlNet unit").click()
    unit = page.get_by_test_id("controlnet-unit-0")
    unit.get_by_label("Control image").set_input_files(str(tmp_path / "square.png"))
    expect(unit.get_by_role("img", name="Control image 1")).to_be_visible()
    unit.get_by_label("Preprocessor").select_option("canny")
    unit.get_by_role("button", name="Preview").click()
    preview = unit.get_by_test_id("controlnet-0-preview")
    expect(preview).to_be_visible(timeout=60_000)
    # The canny map of a white square on black: white edges, black inside and outside.
    data = preview.get_attribute("src")
    assert data is not None and data.startswith("data:image/png;base64,")
    edges = Image.open(io.BytesIO(base64.b64decode(data.split(",", 1)[1]))).convert("L")
    w, h = edges.size
    middle_row = edges.crop((0, h // 2, w, h // 2 + 1)).tobytes()  # one byte per pixel (mode L)
    assert edges.getpixel((w // 2, h // 2)) == 0 and edges.getpixel((2, 2)) == 0
    assert max(middle_row[: w // 2]) == 255 and max(middle_row[w // 2 :]) == 255, "no edge on the square's sides"
    unit.get_by_label("ControlNet model").select_option("cn-canny")
    unit.get_by_label("Weight").fill("0.8")
    screenshot(page, "generate-adapters")

    page.get_by_label("Width").fill("64")
    page.get_by_label("Height").fill("64")
    page.get_by_label("Steps").fill("2")
    page.get_by_role("button", name="Generate").click()
    expect(page.get_by_test_id("result")).to_have_count(1, timeout=180_000)

    job_id = json.loads(page.evaluate("localStorage.getItem('ablerefusal.activeJob')"))
    request = httpx.get(f"{gateway.url}/api/v1/generate/{job_id}", timeout=10).json()["request"]
    assert request["prompt"] == "a red cube, <lora:ink:0.5> studio light"
    assert (request["vae"], request["clip_skip"]) == ("tiny-vae", 2)
    (cn,) = request["controlnets"]
    assert (cn["model"], cn["preprocessor"], cn["weight"]) == ("cn-canny", "canny", 0.8)
    control = httpx.get(f"{gateway.url}/api/v1/uploads/{cn['image']}", timeout=10)
    assert control.status_code == 200
    assert Image.open(io.BytesIO(control.content)).convert("L").getpixel((32, 32)) == 255


def jobs(gateway: Gateway) -> int:
    total: int = httpx.get(f"{gateway.url}/api/v1/generate", timeout=10).json()["total"]
    return total


def test_a_refused_lora_is_named_at_the_prompt(page: Page, gateway: Gateway) -> None:
    before = jobs(gateway)
    page.goto("/")
    page.get_by_label("Prompt", exact=True).fill("a cube <lora:ink-xl:1>")
    page.get_by_label("Width").fill("64")
    page.get_by_label("Height").fill("64")
    page.get_by_label("Steps").fill("2")
    page.get_by_role("button", name="Generate").click()
    error = page.get_by_test_id("error-prompt")
    expect(error).to_contain_text("sdxl")
    expect(page.get_by_label("Prompt", exact=True)).to_be_focused()
    assert jobs(gateway) == before
