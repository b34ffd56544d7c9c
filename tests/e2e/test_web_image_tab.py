"""The studio's Image tab against a real gateway and worker in Chromium: pick an image, paint a mask with the
mouse, generate, and see the result beside the input; the mask the job carried is checked pixel by pixel
through the API. "Send to image" from a generated result; the mask editor's keyboard shortcuts; hires fix."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import httpx
import pytest
from gateway_procs import Gateway
from PIL import Image
from playwright.sync_api import Page, expect
from web_e2e import screenshot

pytestmark = pytest.mark.e2e

SIZE = 64


def input_png(path: Path) -> Image.Image:
    """A 64x64 RGB gradient: every pixel differs, so a moved or resampled pixel shows."""
    image = Image.new("RGB", (SIZE, SIZE))
    image.putdata([(x * 4, y * 4, 128) for y in range(SIZE) for x in range(SIZE)])
    image.save(path, format="PNG")
    return image


def get_json(gateway: Gateway, path: str) -> dict[str, Any]:
    answer = httpx.get(f"{gateway.url}{path}", timeout=10)
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


def get_image(gateway: Gateway, path: str) -> Image.Image:
    answer = httpx.get(f"{gateway.url}{path}", timeout=10)
    assert answer.status_code == 200, answer.text
    return Image.open(io.BytesIO(answer.content))


def image_job(page: Page, gateway: Gateway) -> dict[str, Any]:
    """The job the Image tab submitted last (the id it keeps in localStorage), read through the API."""
    job_id = page.evaluate("JSON.parse(localStorage.getItem('ablerefusal.activeImageJob'))")
    assert isinstance(job_id, str), job_id
    return get_json(gateway, f"/api/v1/generate/{job_id}")


def test_paint_a_mask_generate_and_see_the_result_beside_the_input(
    page: Page, gateway: Gateway, tmp_path: Path
) -> None:
    source = input_png(tmp_path / "input.png")
    page.goto("/#image")
    expect(page.get_by_role("heading", name="Image to image", exact=True)).to_be_visible()
    page.get_by_test_id("image-file").set_input_files(str(tmp_path / "input.png"))
    expect(page.get_by_test_id("input-size")).to_have_text(f"{SIZE}×{SIZE}")
    # The form takes the image's size.
    expect(page.get_by_label("Width")).to_have_value(str(SIZE))
    expect(page.get_by_label("Height")).to_have_value(str(SIZE))

    page.get_by_label("Prompt", exact=True).fill("a red ribbon across the picture")
    page.get_by_label("Steps").fill("2")
    page.get_by_label("Seed").select_option("fixed")
    page.get_by_label("Seed value").fill("4242")
    page.get_by_label("Denoising strength").fill("0.9")
    page.get_by_label("Mask blur").fill("0")

    # A horizontal stroke with the mouse across the middle of the image, from 1/4 to 3/4 of its width.
    canvas = page.get_by_role("application", name="Mask over the input image", exact=False)
    page.get_by_label("Brush size").fill("6")
    box = canvas.bounding_box()
    assert box is not None
    scale = box["width"] / SIZE
    y = box["y"] + 32 * scale
    page.mouse.move(box["x"] + 16 * scale, y)
    page.mouse.down()
    page.mouse.move(box["x"] + 48 * scale, y, steps=12)
    page.mouse.up()
    expect(page.get_by_test_id("mask-coverage")).to_contain_text("Mask covers")

    page.get_by_role("button", name="Generate").click()
    output = page.get_by_role("region", name="Output")
    result = output.get_by_test_id("result")
    expect(result).to_have_count(1, timeout=180_000)
    expect(output.get_by_role("img").first).to_be_visible()

    # The result shows beside the input: the two regions sit side by side at desktop width.
    input_box = page.get_by_role("region", name="Input").bounding_box()
    output_box = output.bounding_box()
    assert input_box is not None and output_box is not None
    assert input_box["x"] + input_box["width"] <= output_box["x"], (input_box, output_box)
    assert abs(input_box["y"] - output_box["y"]) < 5, (input_box, output_box)
    screenshot(page, "image-tab-inpaint")

    job = image_job(page, gateway)
    assert job["status"] == "completed", job
    request = job["request"]
    assert request["denoising_strength"] == pytest.approx(0.9)
    assert request["mask_blur"] == 0
    stored_input = get_image(gateway, f"/api/v1/uploads/{request['init_image']}").convert("RGB")
    assert stored_input.tobytes() == source.tobytes(), "the uploaded init image is not the picked file"

    # The mask the job carried: the image's size, white along the stroke, black away from it.
    assert request["mask"], request
    mask = get_image(gateway, f"/api/v1/uploads/{request['mask']}").convert("L")
    assert mask.size == (SIZE, SIZE)
    for x in (18, 24, 32, 40, 46):
        assert mask.getpixel((x, 32)) == 255, f"painted pixel ({x}, 32) is not white"
    for point in ((2, 2), (32, 5), (32, 58), (5, 32), (60, 32), (32, 40)):
        assert mask.getpixel(point) == 0, f"unpainted pixel {point} is not black"

    # Outside the mask (no blur) the result keeps the input's pixels exactly.
    result_image = get_image(gateway, job["results"][0]["image_url"]).convert("RGB")
    assert result_image.size == (SIZE, SIZE)
    for point in ((2, 2), (61, 61), (32, 5), (5, 58)):
        assert result_image.getpixel(point) == source.getpixel(point), point


def test_send_to_image_from_a_generated_result(page: Page, gateway: Gateway) -> None:
    with gateway.client() as client:
        answer = client.post(
            "/api/v1/generate",
            params={"wait": 300},
            json={"prompt": "a harbour to send on", "width": 64, "height": 64, "steps": 2, "seed": 31},
            timeout=330,
        )
    assert answer.status_code == 200, answer.text
    made = answer.json()
    page.goto(f"/?job={made['id']}#generate")
    expect(page.get_by_test_id("result-seed")).to_have_text("Seed 31")
    page.get_by_test_id("result").get_by_role("button", name="Send to image").click()

    expect(page.get_by_role("link", name="Image", exact=True)).to_have_attribute("aria-current", "page")
    expect(page.get_by_test_id("input-size")).to_have_text("64×64")
    expect(page.get_by_label("Prompt", exact=True)).to_have_value("a harbour to send on")
    page.get_by_label("Steps").fill("2")
    page.get_by_label("Denoising strength").fill("0.5")
    page.get_by_role("button", name="Generate").click()
    expect(page.get_by_role("region", name="Output").get_by_test_id("result")).to_have_count(1, timeout=180_000)

    job = image_job(page, gateway)
    assert job["status"] == "completed", job
    assert job["request"]["mask"] is None, "nothing was painted, so no mask is sent"
    assert job["request"]["denoising_strength"] == pytest.approx(0.5)
    sent = get_image(gateway, f"/api/v1/uploads/{job['request']['init_image']}").convert("RGB")
    original = get_image(gateway, made["results"][0]["image_url"]).convert("RGB")
    assert sent.tobytes() == original.tobytes(), "the image sent is not the result's pixels"


def test_mask_editor_keyboard_shortcuts(page: Page, tmp_path: Path) -> None:
    input_png(tmp_path / "input.png")
    page.goto("/#image")
    page.get_by_test_id("image-file").set_input_files(str(tmp_path / "input.png"))
    canvas = page.get_by_role("application", name="Mask over the input image", exact=False)
    expect(canvas).to_be_visible()
    canvas.focus()
    size = page.get_by_test_id("brush-size-value")
    before = int(size.inner_text().split()[0])
    page.keyboard.press("]")
    expect(size).not_to_have_text(f"{before} px")
    page.keyboard.press("e")
    expect(page.get_by_role("button", name="Eraser")).to_have_attribute("aria-pressed", "true")
    page.keyboard.press("b")
    expect(page.get_by_role("button", name="Brush", exact=True)).to_have_attribute("aria-pressed", "true")
    # Paint from the keyboard: Space puts the brush down, the arrows draw, Space lifts it.
    page.keyboard.press("Space")
    page.keyboard.press("ArrowRight")
    page.keyboard.press("ArrowRight")
    page.keyboard.press("Space")
    coverage = page.get_by_test_id("mask-coverage")
    expect(coverage).to_contain_text("Mask covers")
    painted = coverage.inner_text()
    page.keyboard.press("i")
    expect(coverage).not_to_have_text(painted)
    page.keyboard.press("Control+z")
    expect(coverage).to_have_text(painted)
    page.keyboard.press("Control+z")
    expect(coverage).to_contain_text("No mask")
    page.keyboard.press("Control+Shift+z")
    expect(coverage).to_have_text(painted)


def test_hires_fix_returns_the_scaled_size(page: Page, gateway: Gateway) -> None:
    page.goto("/#generate")
    page.get_by_label("Prompt", exact=True).fill("a hires lighthouse")
    page.get_by_label("Width").fill("64")
    page.get_by_label("Height").fill("64")
    page.get_by_label("Steps").fill("2")
    page.get_by_label("Hires fix").check()
    page.get_by_label("Upscale by").fill("2")
    page.get_by_label("Upscaler").select_option("lanczos")
    page.get_by_label("Hires steps").fill("2")
    expect(page.get_by_text("then upscales and refines to 128×128")).to_be_visible()
    page.get_by_role("button", name="Generate").click()
    expect(page.get_by_test_id("result")).to_have_count(1, timeout=180_000)
    job_id = page.evaluate("JSON.parse(localStorage.getItem('ablerefusal.activeJob'))")
    job = get_json(gateway, f"/api/v1/generate/{job_id}")
    assert job["request"]["hires"] == {
        "scale": 2,
        "width": None,
        "height": None,
        "upscaler": "lanczos",
        "steps": 2,
        "denoising_strength": pytest.approx(0.7),
    }
    assert get_image(gateway, job["results"][0]["image_url"]).size == (128, 128)


def test_touch_painting_at_phone_width(page: Page, tmp_path: Path) -> None:
    input_png(tmp_path / "input.png")
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto("/#image")
    page.get_by_test_id("image-file").set_input_files(str(tmp_path / "input.png"))
    canvas = page.get_by_role("application", name="Mask over the input image", exact=False)
    expect(canvas).to_be_visible()
    # The canvas keeps the page from scrolling under a finger that paints.
    assert canvas.evaluate("el => getComputedStyle(el).touchAction") == "none"
    # A finger's stroke as Chromium's touch input delivers it (pointer events of type "touch"), diagonally
    # across the image.
    canvas.scroll_into_view_if_needed()
    box = canvas.bounding_box()
    assert box is not None
    cdp = page.context.new_cdp_session(page)
    cdp.send("Emulation.setTouchEmulationEnabled", {"enabled": True, "maxTouchPoints": 1})

    def touch(kind: str, fx: float, fy: float) -> None:
        points = [] if kind == "touchEnd" else [{"x": box["x"] + fx * box["width"], "y": box["y"] + fy * box["height"]}]
        cdp.send("Input.dispatchTouchEvent", {"type": kind, "touchPoints": points})

    touch("touchStart", 0.2, 0.2)
    for i in range(1, 11):
        touch("touchMove", 0.2 + i * 0.06, 0.2 + i * 0.06)
    touch("touchEnd", 0.8, 0.8)
    expect(page.get_by_test_id("mask-coverage")).to_contain_text("Mask covers")
    # Nothing sticks out sideways on a phone.
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    screenshot(page, "image-tab-phone")
