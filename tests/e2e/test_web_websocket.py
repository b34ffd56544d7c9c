"""The studio follows jobs over the gateway's WebSocket (``/api/v1/ws``), with the API key at the handshake,
and still gets a job to the end over SSE when the socket is refused. Real gateway and worker (tiny model,
API key required), real Chromium; the socket is observed with Playwright's ``page.on("websocket")``, and
the refusal is a Playwright WebSocket route that closes the page's socket before it opens, as a proxy that
does not pass upgrades would."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from gateway_procs import Gateway, make_gateway
from playwright.sync_api import Page, WebSocket, WebSocketRoute, expect
from web_e2e import MAX_PROMPT_LENGTH, REPO

from holds import Hold

pytestmark = pytest.mark.e2e

KEY = "studio-ws-key"
STEPS = 3
LONG_S = 120_000


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory, e2e_models: Path, hold_dir: Path) -> Iterator[Gateway]:
    """This module's gateway requires an API key, so the socket's handshake has one to check."""
    if not (REPO / "web" / "out" / "index.html").is_file():
        pytest.fail("web/out/index.html is missing: build the UI first with 'make web'")
    env = {"ABLEREFUSAL_QUEUE__MAX_PROMPT_LENGTH": str(MAX_PROMPT_LENGTH), **Hold(hold_dir).env}
    gw = make_gateway(tmp_path_factory.mktemp("e2e-ws"), e2e_models, "--device", "cpu", "--api-key", KEY, env=env)
    gw.start(wait_ready=True)
    yield gw
    gw.stop()


@dataclass
class SocketLog:
    """One WebSocket the page opened, as Chromium saw it."""

    url: str
    sent: list[dict[str, Any]] = field(default_factory=list)
    received: list[dict[str, Any]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


@dataclass
class Traffic:
    sockets: list[SocketLog] = field(default_factory=list)
    event_streams: list[str] = field(default_factory=list)

    def frames(self, job_id: str, kind: str) -> list[dict[str, Any]]:
        return [f for s in self.sockets for f in s.received if f.get("job_id") == job_id and f.get("type") == kind]


def watch_traffic(page: Page) -> Traffic:
    traffic = Traffic()

    def on_socket(ws: WebSocket) -> None:
        log = SocketLog(ws.url)
        ws.on("framesent", lambda payload: log.sent.append(json.loads(payload)))
        ws.on("framereceived", lambda payload: log.received.append(json.loads(payload)))
        ws.on("socketerror", lambda error: log.errors.append(error))
        traffic.sockets.append(log)

    page.on("websocket", on_socket)
    page.on("request", lambda r: traffic.event_streams.append(r.url) if r.url.endswith("/events") else None)
    return traffic


def submit(page: Page, prompt: str) -> str:
    """Submits from the studio's form; the new job's id (the page keeps it in the URL's hash)."""
    page.add_init_script(f"localStorage.setItem('ablerefusal.apiKey', {json.dumps(json.dumps(KEY))})")
    page.goto("/")
    page.get_by_label("Prompt", exact=True).fill(prompt)
    page.get_by_label("Width").fill("64")
    page.get_by_label("Height").fill("64")
    page.get_by_label("Steps").fill(str(STEPS))
    with page.expect_response(re.compile(r"/api/v1/generate$")) as answer:
        page.get_by_role("button", name="Generate").click()
    assert answer.value.status == 202, answer.value.text()
    return str(answer.value.json()["id"])


def _wait(page: Page, check: Callable[[], bool], what: str) -> None:
    """Lets the page run (Playwright delivers its events only inside a call) until ``check`` holds."""
    for _ in range(LONG_S // 100):
        if check():
            return
        page.wait_for_timeout(100)
    pytest.fail(f"timed out waiting for {what}")


def stored_job(gateway: Gateway, job_id: str) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {KEY}"}
    answer = httpx.get(f"{gateway.url}/api/v1/generate/{job_id}", headers=headers, timeout=10)
    return dict(answer.json())


def test_progress_reaches_the_studio_over_the_websocket(page: Page, gateway: Gateway, hold: Hold) -> None:
    traffic = watch_traffic(page)
    job_id = submit(page, hold.prompt("a lantern on the socket"))
    expect(page.get_by_test_id("progress-text")).to_have_text(re.compile(rf"^Step 1/{STEPS}"), timeout=LONG_S)
    # The job is held at step 1 until the page follows it on the socket: the steps after it can only come
    # as events (over the socket, or over SSE, which the last assertion rules out).
    _wait(page, lambda: bool(traffic.frames(job_id, "status")), "the job's snapshot on the socket")
    socket = traffic.sockets[0]
    hold.release()
    expect(page.get_by_role("status")).to_contain_text("Job completed.", timeout=LONG_S)
    expect(page.get_by_test_id("result")).to_have_count(1)

    assert len(traffic.sockets) == 1, [s.url for s in traffic.sockets]
    # Browsers cannot set headers on a WebSocket: the key goes as the parameter the gateway checks.
    assert socket.url == f"ws://127.0.0.1:{gateway.port}/api/v1/ws?api_key={KEY}"
    assert socket.sent == [{"type": "subscribe", "job_ids": [job_id], "previews": True}]
    steps = [f["step"] for f in traffic.frames(job_id, "progress")]
    assert steps and steps[-1] == STEPS, steps
    final = traffic.frames(job_id, "status")[-1]
    assert final["terminal"] is True and final["job"]["status"] == "completed"
    assert final["job"]["results"] == stored_job(gateway, job_id)["results"]
    # Nothing went over SSE: the socket carried the job from its snapshot to its end.
    assert traffic.event_streams == []


def test_with_the_socket_refused_the_studio_completes_the_job_over_sse(
    page: Page, gateway: Gateway, hold: Hold
) -> None:
    refused: list[str] = []

    def refuse(ws: WebSocketRoute) -> None:
        # Closed in the route, before any connection to the gateway: the page sees a close and never an open,
        # as behind a proxy that does not pass upgrades.
        refused.append(ws.url)
        ws.close(code=1011, reason="no WebSocket here")

    page.route_web_socket(re.compile(r"/api/v1/ws"), refuse)
    traffic = watch_traffic(page)
    job_id = submit(page, hold.prompt("a lantern without a socket"))
    expect(page.get_by_test_id("progress-text")).to_have_text(re.compile(rf"^Step 1/{STEPS}"), timeout=LONG_S)
    _wait(page, lambda: bool(traffic.event_streams), "the job's event stream")
    hold.release()
    expect(page.get_by_role("status")).to_contain_text("Job completed.", timeout=LONG_S)
    expect(page.get_by_test_id("result")).to_have_count(1)

    assert traffic.event_streams == [f"{gateway.url}/api/v1/generate/{job_id}/events"]
    # The page did try the socket first, and nothing went over one.
    assert refused and refused[0] == f"ws://127.0.0.1:{gateway.port}/api/v1/ws?api_key={KEY}", refused
    assert all(s.received == [] and s.sent == [] for s in traffic.sockets), traffic.sockets
    assert stored_job(gateway, job_id)["status"] == "completed"
