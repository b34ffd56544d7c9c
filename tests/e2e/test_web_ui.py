"""The web UI against a real gateway and worker: generate, watch progress, cancel, validation, history."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest
from gateway_procs import Gateway, wait_until
from playwright.sync_api import Page, expect
from web_e2e import MAX_PROMPT_LENGTH, screenshot

from holds import Hold

pytestmark = pytest.mark.e2e

# Records every distinct "Step x/y" text the page shows, so progress seen to move is a fact of the DOM.
RECORD_PROGRESS = """
window.__steps = [];
new MutationObserver(() => {
  const el = document.querySelector('[data-testid="progress-text"]');
  if (el && window.__steps[window.__steps.length - 1] !== el.textContent) window.__steps.push(el.textContent);
}).observe(document.body, {subtree: true, childList: true, characterData: true});
"""


def fill_form(page: Page, prompt: str, *, size: int = 64, steps: int = 2) -> None:
    page.get_by_label("Prompt", exact=True).fill(prompt)
    page.get_by_label("Width").fill(str(size))
    page.get_by_label("Height").fill(str(size))
    page.get_by_label("Steps").fill(str(steps))


def api_job(gateway: Gateway, body: dict[str, Any]) -> dict[str, Any]:
    with gateway.client() as client:
        answer = client.post("/api/v1/generate", json=body)
        assert answer.status_code == 202, answer.text
        return dict(answer.json())


def job_status(gateway: Gateway, job_id: str) -> str:
    return str(httpx.get(f"{gateway.url}/api/v1/generate/{job_id}", timeout=10).json()["status"])


def test_generate_shows_progress_and_image_with_seed_then_history(page: Page, gateway: Gateway, hold: Hold) -> None:
    page.goto("/")
    expect(page.get_by_label("Model")).to_contain_text("demo (noise)")
    prompt = hold.prompt("a lighthouse at dusk")
    fill_form(page, prompt, size=128, steps=30)
    page.get_by_label("Seed", exact=True).select_option("fixed")
    page.get_by_label("Seed value").fill("4242")
    page.evaluate(RECORD_PROGRESS)
    # Ctrl+Enter from the prompt submits, as the hint says.
    page.get_by_label("Prompt", exact=True).press("Control+Enter")
    # Held after step 1: the page shows the job mid-run however fast the worker is; then it may finish.
    expect(page.get_by_test_id("progress-text")).to_have_text(re.compile(r"^Step 1/30"), timeout=120_000)
    hold.release()

    result = page.get_by_test_id("result")
    expect(result).to_have_count(1, timeout=120_000)
    expect(result.get_by_test_id("result-seed")).to_have_text("Seed 4242")
    expect(page.get_by_test_id("progress-text")).to_have_text(re.compile(r"^Step 30/30 · 100%"))
    image = result.get_by_role("img")
    expect(image).to_have_attribute("src", re.compile(r"^/outputs/.+\.png$"))
    natural_width = "document.querySelector('[data-testid=result] img').naturalWidth"
    wait_until(lambda: page.evaluate(natural_width) == 128, None, "the image to load")
    steps: list[str] = page.evaluate("window.__steps")
    partial = [s for s in steps if re.match(r"^Step ([1-9]|[12][0-9])/30", s)]
    assert partial, f"no intermediate progress was shown: {steps}"
    screenshot(page, "generate")

    result.get_by_role("button", name="Open image 1 large").click()
    expect(page.get_by_role("dialog")).to_contain_text("Seed 4242")
    screenshot(page, "generate-lightbox")
    page.get_by_role("dialog").get_by_role("button", name="Close").click()

    # After a reload the typed parameters are still there and the job is in the history.
    page.reload()
    expect(page.get_by_label("Prompt", exact=True)).to_have_value(prompt)
    expect(page.get_by_label("Seed value")).to_have_value("4242")
    page.get_by_role("link", name="History").click()
    row = page.get_by_test_id("job-row").filter(has_text="a lighthouse at dusk")
    expect(row).to_have_count(1)
    expect(row).to_have_attribute("data-status", "completed")
    expect(row.get_by_test_id("result-seed")).to_have_text("Seed 4242")
    screenshot(page, "history")

    page.get_by_label("Status").select_option("failed")
    expect(page.get_by_test_id("job-row").filter(has_text="a lighthouse at dusk")).to_have_count(0)


def test_cancel_a_queued_job_from_the_queue_screen(page: Page, gateway: Gateway, hold: Hold) -> None:
    # A held job keeps the only worker busy; a second one with another size cannot be coalesced with it.
    blocker = api_job(gateway, {"prompt": hold.prompt("long blocker"), "width": 128, "height": 128, "steps": 20})
    wait_until(lambda: job_status(gateway, blocker["id"]) == "running", None, "the blocker to run")
    queued = api_job(gateway, {"prompt": "waiting in line", "width": 64, "height": 64, "steps": 1})
    try:
        page.goto("/#queue")
        row = page.get_by_test_id("job-row").filter(has_text="waiting in line")
        expect(row).to_have_attribute("data-status", "queued")
        running = page.get_by_test_id("job-row").filter(has_text="long blocker")
        expect(running).to_have_attribute("data-status", "running")
        expect(page.get_by_test_id("count-queued")).to_contain_text("1")
        screenshot(page, "queue")
        row.get_by_role("button", name="Cancel queued job waiting in line").click()
        expect(row).to_have_count(0)
        assert job_status(gateway, queued["id"]) == "cancelled"
        expect(page.get_by_test_id("count-cancelled")).to_contain_text("1")
    finally:
        httpx.post(f"{gateway.url}/api/v1/generate/{blocker['id']}/cancel", timeout=10)
        httpx.post(f"{gateway.url}/api/v1/generate/{queued['id']}/cancel", timeout=10)
    wait_until(lambda: job_status(gateway, blocker["id"]) == "cancelled", None, "the blocker to stop")


def test_validation_errors_appear_next_to_their_field(page: Page, gateway: Gateway) -> None:
    page.goto("/")
    before = httpx.get(f"{gateway.url}/api/v1/generate", timeout=10).json()["total"]

    # The form's own check (the gateway's rule, read from its OpenAPI schema).
    fill_form(page, "a small robot", size=64)
    page.get_by_label("Width").fill("100")
    expect(page.get_by_test_id("error-width")).to_have_text("Width: must be a multiple of 8")
    expect(page.get_by_label("Width")).to_have_attribute("aria-invalid", "true")
    page.get_by_role("button", name="Generate").click()
    # A refused submit puts the keyboard on the field in error and says why.
    expect(page.get_by_label("Width")).to_be_focused()
    expect(page.get_by_test_id("submit-rejected")).to_have_text("Not submitted. Width: must be a multiple of 8.")

    # A rule only the gateway knows (its configured prompt length): the 400's field error lands at the prompt.
    page.get_by_label("Width").fill("64")
    expect(page.get_by_test_id("error-width")).to_have_count(0)
    long_prompt = "a very long prompt " * (MAX_PROMPT_LENGTH // 19 + 1)
    page.get_by_label("Prompt", exact=True).fill(long_prompt)
    page.get_by_role("button", name="Generate").click()
    expect(page.get_by_test_id("error-prompt")).to_contain_text(f"must be at most {MAX_PROMPT_LENGTH} characters")
    expect(page.get_by_label("Prompt", exact=True)).to_be_focused()
    # Nothing typed is lost, and nothing was queued by either attempt.
    expect(page.get_by_label("Prompt", exact=True)).to_have_value(long_prompt)
    assert httpx.get(f"{gateway.url}/api/v1/generate", timeout=10).json()["total"] == before
    screenshot(page, "validation")

    page.get_by_label("Prompt", exact=True).fill("short again")
    expect(page.get_by_test_id("error-prompt")).to_have_count(0)


def test_settings_show_readiness_workers_and_models(page: Page, gateway: Gateway) -> None:
    page.goto("/#settings")
    expect(page.get_by_test_id("readiness")).to_contain_text("Ready")
    expect(page.get_by_test_id("worker-row")).to_have_count(1)
    expect(page.get_by_test_id("worker-row")).to_contain_text("cpu")
    expect(page.get_by_test_id("model-row").first).to_contain_text("demo (noise)")
    screenshot(page, "settings")
    page.get_by_label("Theme").select_option("dark")
    screenshot(page, "settings-dark")
    page.set_viewport_size({"width": 390, "height": 844})
    page.get_by_role("link", name="Generate").click()
    screenshot(page, "generate-phone-dark")


def test_the_page_policy_blocks_script_injected_into_the_studio(page: Page, gateway: Gateway) -> None:
    """What an XSS would do once it reaches the DOM: add an inline script, or markup with an inline handler."""
    page.goto("/")
    expect(page.get_by_label("Prompt", exact=True)).to_be_visible()
    page.evaluate(
        """() => {
          const script = document.createElement("script");
          script.textContent = "window.__injected = 'script'";
          document.body.appendChild(script);
          const markup = '<img src="/nope.png" onerror="window.__injected = \\'handler\\'">';
          document.body.insertAdjacentHTML("beforeend", markup);
        }"""
    )
    wait_until(lambda: len(page.evaluate("window.__cspViolations")) >= 2, None, "the browser to report both")
    assert page.evaluate("window.__injected === undefined")
    directives = {v["directive"] for v in page.evaluate("window.__cspViolations")}
    assert directives <= {"script-src-elem", "script-src-attr", "script-src"}, directives
    page.evaluate("window.__cspViolations.length = 0")
    # The studio itself still works under the same policy.
    page.get_by_label("Prompt", exact=True).fill("still typing")
    expect(page.get_by_label("Prompt", exact=True)).to_have_value("still typing")
