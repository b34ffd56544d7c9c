"""Constants and helpers shared by the e2e conftest and tests (a module of its own: 'conftest' is ambiguous)."""

from __future__ import annotations

from pathlib import Path

from playwright.sync_api import Page

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOTS = REPO / "test-artifacts" / "screenshots"
# Low enough that the test can cross it with a prompt the form itself accepts: the gateway's own rule.
MAX_PROMPT_LENGTH = 120


def screenshot(page: Page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)
