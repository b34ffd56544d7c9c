"""Helpers for worker tests: run a call through the HTTP API and read its events and PNGs."""

from __future__ import annotations

import base64
import io
import json
import time
from typing import Any

import numpy as np
from fastapi.testclient import TestClient
from PIL import Image

from ablerefusal.protocol import WorkerEvent, parse_event


def call_body(model: str = "tiny-sd15", **over: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": model,
        "width": 64,
        "height": 64,
        "steps": 2,
        "cfg_scale": 7.5,
        "sampler": "euler_a",
        "items": [{"job_id": "job-1", "prompt": "a red cat", "seeds": [42]}],
    }
    body.update(over)
    return body


def run_call(client: TestClient, body: dict[str, Any]) -> list[WorkerEvent]:
    with client.stream("POST", "/v1/generate", json=body) as resp:
        assert resp.status_code == 200, resp.read()
        assert resp.headers["content-type"].startswith("application/x-ndjson")
        return [parse_event(line) for line in resp.iter_lines() if line]


def images(events: list[WorkerEvent]) -> dict[tuple[str, int], Any]:
    return {(e.job_id, e.index): e for e in events if e.type == "image"}


def pixels(event: Any) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(event.png_base64))).convert("RGB"))


def png(event: Any) -> Image.Image:
    image = Image.open(io.BytesIO(base64.b64decode(event.png_base64)))
    image.load()
    return image


def wait_ready(client: TestClient, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if client.get("/v1/ready").status_code == 200:
            return
        time.sleep(0.05)
    raise TimeoutError(json.dumps(client.get("/v1/ready").json()))
