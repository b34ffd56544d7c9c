"""The studio's second part against a real gateway and worker: PNG info by drag and drop, the gallery and its
lightbox, deep links and the back button, the live preview, and screenshots at phone and desktop widths in
light and dark."""

from __future__ import annotations

import base64
import io
import re
from typing import Any

import httpx
import pytest
from gateway_procs import Gateway, wait_until
from PIL import Image, PngImagePlugin
from playwright.sync_api import Page, expect
from web_e2e import screenshot

from holds import Hold

pytestmark = pytest.mark.e2e

PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 900}

# Drops a file on the page the way a browser does for a file dragged from the desktop.
DROP_FILE = """
([b64, name]) => {
  const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
  const data = new DataTransfer();
  data.items.add(new File([bytes], name, { type: "image/png" }));
  const target = document.querySelector("main");
  for (const type of ["dragenter", "dragover", "drop"]) {
    target.dispatchEvent(new DragEvent(type, { dataTransfer: data, bubbles: true, cancelable: true }));
  }
}
"""


def a1111_png(infotext: str) -> str:
    info = PngImagePlugin.PngInfo()
    info.add_text("parameters", infotext)
    out = io.BytesIO()
    Image.new("RGB", (64, 64), (40, 90, 160)).save(out, format="PNG", pnginfo=info)
    return base64.b64encode(out.getvalue()).decode()


def finished_job(gateway: Gateway, body: dict[str, Any]) -> dict[str, Any]:
    """A job run to completion by the real worker."""
    with gateway.client() as client:
        answer = client.post("/api/v1/generate", params={"wait": 300}, json=body, timeout=330)
        assert answer.status_code == 200, answer.text
        return dict(answer.json())


def submit_job(gateway: Gateway, body: dict[str, Any]) -> str:
    """Submits a job without waiting; its id."""
    with gateway.client() as client:
        answer = client.post("/api/v1/generate", json=body)
        assert answer.status_code == 202, answer.text
        return str(answer.json()["id"])


def job_status(gateway: Gateway, job_id: str) -> str:
    return str(httpx.get(f"{gateway.url}/api/v1/generate/{job_id}", timeout=10).json()["status"])


def model_id(gateway: Gateway) -> str:
    return str(httpx.get(f"{gateway.url}/api/v1/models", timeout=10).json()["models"][0]["id"])


def test_dropping_an_a1111_png_fills_the_form(page: Page, gateway: Gateway) -> None:
    model = model_id(gateway)
    infotext = (
        "a lighthouse at dusk, (oil painting:1.2)\n"
        "Negative prompt: blurry, lowres\n"
        f"Steps: 23, Sampler: DPM++ 2M, Schedule type: Karras, CFG scale: 6.5, Seed: 1234, Size: 96x128, Model: {model}"
    )
    page.goto("/#queue")
    expect(page.get_by_role("heading", name="Queue", exact=True)).to_be_visible()
    page.evaluate(DROP_FILE, [a1111_png(infotext), "from-a1111.png"])
    dialog = page.get_by_role("dialog", name="Image parameters")
    expect(dialog.get_by_test_id("png-info-source")).to_have_text("A1111-style parameters")
    expect(dialog.get_by_test_id("png-info-parameters")).to_contain_text("DPM++ 2M")
    screenshot(page, "png-info")
    dialog.get_by_role("button", name="Fill the form").click()

    expect(page.get_by_role("link", name="Generate")).to_have_attribute("aria-current", "page")
    expect(page.get_by_label("Prompt", exact=True)).to_have_value("a lighthouse at dusk, (oil painting:1.2)")
    expect(page.get_by_label("Negative prompt")).to_have_value("blurry, lowres")
    expect(page.get_by_label("Steps")).to_have_value("23")
    expect(page.get_by_label("CFG scale")).to_have_value("6.5")
    expect(page.get_by_label("Width")).to_have_value("96")
    expect(page.get_by_label("Height")).to_have_value("128")
    expect(page.get_by_label("Seed value")).to_have_value("1234")
    expect(page.get_by_label("Sampler")).to_have_value("dpmpp_2m_karras")
    expect(page.get_by_label("Model")).to_have_value(model)


def test_gallery_lightbox_moves_with_the_keyboard(page: Page, gateway: Gateway) -> None:
    jobs = [
        finished_job(gateway, {"prompt": f"gallery {name}", "width": 64, "height": 64, "steps": 2, "seed": seed})
        for name, seed in (("first", 101), ("second", 202), ("third", 303))
    ]
    page.goto("/#gallery")
    tiles = page.get_by_test_id("gallery-tile")
    expect(page.get_by_role("button", name="Open gallery third (seed 303)")).to_be_visible()
    # Newest first: third, second, first.
    names = page.get_by_test_id("gallery-tile").get_by_role("button").evaluate_all("els => els.map(e => e.ariaLabel)")
    order = [n for n in names if n.startswith("Open gallery ")]
    assert order[:3] == [
        "Open gallery third (seed 303)",
        "Open gallery second (seed 202)",
        "Open gallery first (seed 101)",
    ]
    thumb = tiles.first.get_by_role("img")
    expect(thumb).to_have_attribute("src", f"/api/v1/gallery/{jobs[2]['id']}/0/thumb.webp")
    wait_until(lambda: thumb.evaluate("img => img.complete && img.naturalWidth") == 64, None, "the thumbnail")

    page.get_by_role("button", name="Open gallery third (seed 303)").click()
    viewer = page.get_by_role("dialog", name="Image viewer")
    expect(viewer.get_by_test_id("lightbox-seed")).to_have_text("303")
    page.keyboard.press("ArrowRight")
    expect(viewer.get_by_test_id("lightbox-seed")).to_have_text("202")
    page.keyboard.press("ArrowRight")
    expect(viewer.get_by_test_id("lightbox-seed")).to_have_text("101")
    page.keyboard.press("ArrowLeft")
    expect(viewer.get_by_test_id("lightbox-seed")).to_have_text("202")
    expect(viewer.get_by_role("img")).to_have_attribute("src", f"/outputs/{jobs[1]['id']}/0.png")
    viewer.get_by_role("button", name="Zoom to 100 %").click()
    width = viewer.get_by_role("img").evaluate("img => img.getBoundingClientRect().width")
    assert width == 64, f"at 100 % a 64 px image is 64 CSS px wide, not {width}"
    screenshot(page, "gallery-lightbox")
    page.keyboard.press("Escape")
    expect(viewer).to_be_hidden()

    # Reuse seed from the gallery fills the form with that image's parameters.
    page.get_by_role("button", name="Open gallery first (seed 101)").click()
    viewer.get_by_role("button", name="Reuse seed").click()
    expect(page.get_by_label("Prompt", exact=True)).to_have_value("gallery first")
    expect(page.get_by_label("Seed value")).to_have_value("101")


def test_deep_link_opens_the_job_after_reload_and_back_moves_between_tabs(page: Page, gateway: Gateway) -> None:
    job = finished_job(gateway, {"prompt": "a deep-linked harbour", "width": 64, "height": 64, "steps": 2, "seed": 77})
    page.goto(f"/?job={job['id']}#generate")
    expect(page.locator(".job-prompt")).to_have_text("a deep-linked harbour")
    page.reload()
    expect(page.locator(".job-prompt")).to_have_text("a deep-linked harbour")
    expect(page.get_by_test_id("result-seed")).to_have_text("Seed 77")
    page.get_by_role("link", name="History").click()
    page.get_by_role("link", name="Gallery").click()
    page.go_back()
    expect(page.get_by_role("link", name="History")).to_have_attribute("aria-current", "page")
    page.go_back()
    expect(page.get_by_role("link", name="Generate")).to_have_attribute("aria-current", "page")
    expect(page.locator(".job-prompt")).to_have_text("a deep-linked harbour")
    page.go_forward()
    expect(page.get_by_role("link", name="History")).to_have_attribute("aria-current", "page")


def test_live_preview_is_large_and_a_single_result_fills_the_output(page: Page, gateway: Gateway, hold: Hold) -> None:
    # The first job on an idle worker: dispatched at once, maybe before the page's event stream is open. The
    # studio asks for previews in the request, so the held step 1 still comes with one.
    page.goto("/")
    page.get_by_label("Prompt", exact=True).fill(hold.prompt("a live preview of a forest"))
    page.get_by_label("Width").fill("128")
    page.get_by_label("Height").fill("128")
    page.get_by_label("Steps").fill("6")
    page.get_by_role("button", name="Generate").click()
    expect(page.get_by_test_id("progress-text")).to_have_text(re.compile(r"^Step 1/6"), timeout=120_000)
    preview = page.get_by_test_id("live-preview")
    expect(preview).to_be_visible()
    output_width = page.get_by_role("region", name="Output").evaluate("el => el.clientWidth")
    preview_width = preview.evaluate("el => el.getBoundingClientRect().width")
    assert preview_width >= min(0.8 * output_width, 700), (preview_width, output_width)
    screenshot(page, "generate-live-preview")
    hold.release()
    result = page.get_by_test_id("result")
    expect(result).to_have_count(1, timeout=120_000)
    image_width = result.get_by_role("img").evaluate("el => el.getBoundingClientRect().width")
    assert image_width >= 0.8 * output_width, (image_width, output_width)
    # The prompt box offers the prompt just submitted.
    expect(page.get_by_label("Recent prompts")).to_contain_text("a live preview of a forest")


@pytest.mark.parametrize("theme", ["light", "dark"])
@pytest.mark.parametrize("width", ["phone", "desktop"])
def test_screenshots(page: Page, gateway: Gateway, theme: str, width: str) -> None:
    finished_job(gateway, {"prompt": "a screenshot subject", "width": 64, "height": 64, "steps": 2, "seed": 5})
    page.set_viewport_size(PHONE if width == "phone" else DESKTOP)
    page.goto("/#settings")
    page.get_by_label("Theme").select_option(theme)
    page.get_by_role("link", name="Gallery").click()
    expect(page.get_by_test_id("gallery-tile").first).to_be_visible()
    wait_until(
        lambda: page.evaluate("[...document.querySelectorAll('.gallery-tile img')].every(i => i.complete)"),
        None,
        "the thumbnails",
    )
    screenshot(page, f"gallery-{width}-{theme}")
    page.get_by_role("link", name="Generate").click()
    expect(page.get_by_label("Prompt", exact=True)).to_be_visible()
    screenshot(page, f"generate-{width}-{theme}")
