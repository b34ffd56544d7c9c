"""The gallery's first page with 500 images in history: Chromium's own timing of the page, the gallery read and
the thumbnails, measured (not asserted: wall-clock figures are reported, never tested against a limit).

The history is seeded through the job store the gateway uses (as the dispatcher records images), with real
512×512 PNGs in its output folder; the gateway runs without workers, so nothing else touches the store.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from typing import Any

import pytest
from gateway_procs import Gateway, make_gateway
from PIL import Image
from playwright.sync_api import Page, expect
from web_e2e import REPO

from ablerefusal.gateway.jobs import JobStore
from ablerefusal.gateway.schemas import GenerateRequest

pytestmark = pytest.mark.e2e

IMAGES = 500
FIGURES = REPO / "test-artifacts" / "gallery-perf.json"


def png(i: int) -> bytes:
    # A smooth gradient per image: about the size of a real render's PNG, unlike noise (far larger).
    image = Image.linear_gradient("L").resize((512, 512)).convert("RGB")
    image = Image.merge(
        "RGB", (image.getchannel(0), image.getchannel(1).rotate(i % 360), image.getchannel(2).transpose(0))
    )
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    gw = make_gateway(tmp_path_factory.mktemp("e2e-perf"), None, env={"ABLEREFUSAL_WORKERS__LOCAL": "0"})
    gw.start(wait_ready=False)
    store = JobStore(f"sqlite:///{gw.root / 'jobs.db'}")
    try:
        for i in range(IMAGES):
            request = GenerateRequest(prompt=f"seeded image {i}", width=512, height=512, steps=2, model="tiny-sd15")
            job_id = store.submit(request).job.id
            claimed = store.claim("perf-seeder")[0]
            (gw.output_dir / job_id).mkdir(parents=True)
            (gw.output_dir / job_id / "0.png").write_bytes(png(i))
            store.add_result(job_id, 0, f"{job_id}/0.png", i, {}, f"seeded image {i}", attempt=claimed.attempt)
            store.complete(job_id, attempt=claimed.attempt)
    finally:
        store.close()
    yield gw
    gw.stop()


TIMING = """
() => {
  const nav = performance.getEntriesByType("navigation")[0];
  const resources = performance.getEntriesByType("resource");
  const gallery = resources.filter((r) => new URL(r.name).pathname === "/api/v1/gallery");
  const thumbs = resources.filter((r) => r.name.includes("/thumb.webp"));
  return {
    dom_content_loaded_ms: nav.domContentLoadedEventEnd,
    gallery_request_ms: gallery.length ? gallery[0].responseEnd - gallery[0].requestStart : null,
    thumbnails_fetched: thumbs.length,
    thumbnail_bytes: thumbs.reduce((sum, r) => sum + r.encodedBodySize, 0),
    last_thumbnail_end_ms: Math.max(...thumbs.map((r) => r.responseEnd)),
    now_ms: performance.now(),
  };
}
"""

ALL_VISIBLE_LOADED = """
() => {
  const tiles = [...document.querySelectorAll('.gallery-tile img')];
  const inView = tiles.filter((img) => img.getBoundingClientRect().top < window.innerHeight);
  return tiles.length === 100 && inView.length > 0 && inView.every((img) => img.complete && img.naturalWidth > 0);
}
"""


def load_first_page(page: Page) -> dict[str, Any]:
    page.goto("about:blank")  # a fresh document each time: its performance entries are this load's only
    page.goto("/#gallery")
    expect(page.get_by_test_id("gallery-range")).to_have_text(f"1–100 of {IMAGES}")
    page.wait_for_function(ALL_VISIBLE_LOADED, timeout=120_000)
    timing: dict[str, Any] = page.evaluate(TIMING)
    return timing


def test_gallery_first_page_with_500_images(page: Page, gateway: Gateway) -> None:
    cold = load_first_page(page)  # thumbnails made on this visit
    # Browser cache off: the second visit measures the gateway serving thumbnails from the store's cache.
    page.context.new_cdp_session(page).send("Network.setCacheDisabled", {"cacheDisabled": True})
    warm = load_first_page(page)
    assert cold["thumbnails_fetched"] > 0 and warm["thumbnails_fetched"] > 0
    figures = {"images_in_history": IMAGES, "page_size": 100, "cold_thumbnails": cold, "cached_thumbnails": warm}
    FIGURES.parent.mkdir(parents=True, exist_ok=True)
    FIGURES.write_text(json.dumps(figures, indent=2))
    print(json.dumps(figures, indent=2))
