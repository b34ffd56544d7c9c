"""Fixtures for end-to-end tests: the built web UI in headless Debian Chromium, driven by Playwright, against
one real gateway (with one real local worker and the tiny SD 1.5 model) per module."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

# The real-process helpers live with the integration tests; one copy serves both suites.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))
from gateway_procs import Gateway, make_gateway
from web_e2e import CHROMIUM, MAX_PROMPT_LENGTH, REPO

from holds import Hold


@pytest.fixture(scope="session")
def e2e_models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny random-weight SD 1.5 model, made in a child process so this process never imports torch."""
    models = tmp_path_factory.mktemp("e2e-models")
    code = (
        "import sys; from pathlib import Path; from ablerefusal.testing.tiny import make_tiny; "
        "make_tiny(Path(sys.argv[1]), 'sd15', 'diffusers')"
    )
    subprocess.run([sys.executable, "-c", code, str(models)], check=True, timeout=300)
    return models


@pytest.fixture(scope="module")
def hold_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("e2e-holds")


@pytest.fixture
def hold(hold_dir: Path) -> Iterator[Hold]:
    """A job to watch mid-run is held after step 1 until released (tests/holds.py)."""
    with Hold(hold_dir) as held:
        yield held


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory, e2e_models: Path, hold_dir: Path) -> Iterator[Gateway]:
    if not (REPO / "web" / "out" / "index.html").is_file():
        pytest.fail("web/out/index.html is missing: build the UI first with 'make web'")
    gw = make_gateway(
        tmp_path_factory.mktemp("e2e-gw"),
        e2e_models,
        "--device",
        "cpu",
        env={"ABLEREFUSAL_QUEUE__MAX_PROMPT_LENGTH": str(MAX_PROMPT_LENGTH), **Hold(hold_dir).env},
    )
    gw.start(wait_ready=True)
    yield gw
    gw.stop()


# Module scope, not session: Playwright's sync API keeps an event loop running in this thread until it
# stops, and pytest-asyncio tests collected after this module must not find one.
@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.is_file():
        pytest.fail(f"{CHROMIUM} is missing: install it with 'make chromium' (apt-get install chromium)")
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(
            executable_path=str(CHROMIUM),
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        yield chromium
        chromium.close()


# Every Content-Security-Policy violation the page reports, so each test also proves the UI runs under the
# gateway's policy (the inline scripts of the static export allowed by hash, nothing else inline).
RECORD_CSP_VIOLATIONS = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", (e) => {
  window.__cspViolations.push({directive: e.effectiveDirective, blocked: e.blockedURI, sample: e.sample});
});
"""


@pytest.fixture
def page(browser: Browser, gateway: Gateway) -> Iterator[Page]:
    """A fresh browser context (empty localStorage) on the gateway's UI; fails the test on a CSP violation
    (a test that provokes one on purpose empties ``window.__cspViolations`` after checking it)."""
    context = browser.new_context(base_url=gateway.url, viewport={"width": 1280, "height": 900})
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=gateway.url)
    context.add_init_script(RECORD_CSP_VIOLATIONS)
    pg = context.new_page()
    pg.set_default_timeout(30_000)
    yield pg
    violations = pg.evaluate("window.__cspViolations ?? []") if pg.url.startswith(gateway.url) else []
    context.close()
    assert violations == [], f"the UI broke its Content-Security-Policy: {violations}"
