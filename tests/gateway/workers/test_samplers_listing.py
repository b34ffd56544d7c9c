"""Every surface lists and accepts the same samplers: those the ready workers announce (a worker of another
version may know fewer or more than this gateway's table)."""

from __future__ import annotations

import time
from collections.abc import Callable

from fake_worker import FakeWorker, info_body
from fastapi.testclient import TestClient

from ablerefusal.gateway.app import create_app
from ablerefusal.gateway.settings import Settings
from ablerefusal.samplers import SAMPLERS

# An older worker: two samplers of today's table, one with a schedule variant.
ANNOUNCED = [s.model_dump() for s in SAMPLERS if s.id in {"euler_a", "dpmpp_2m", "dpmpp_2m_karras"}]


def _wait_ready(client: TestClient) -> None:
    deadline = time.monotonic() + 30
    while client.get("/api/v1/ready").status_code != 200:
        assert time.monotonic() < deadline, client.get("/api/v1/ready").json()
        time.sleep(0.02)


def test_rest_and_a1111_lists_agree_with_what_the_workers_announce(make_settings: Callable[..., Settings]) -> None:
    with FakeWorker(info=info_body(samplers=ANNOUNCED)) as worker:
        settings = make_settings(workers={"local": 0, "urls": [worker.url], "probe_interval_s": 0.05})
        with TestClient(create_app(settings)) as client:
            _wait_ready(client)
            rest = client.get("/api/v1/samplers").json()["samplers"]
            a1111 = client.get("/sdapi/v1/samplers").json()
            schedulers = {s["name"] for s in client.get("/sdapi/v1/schedulers").json()}
            refused = client.post("/api/v1/generate", json={"prompt": "x", "sampler": "DDIM"})
            accepted = client.post("/api/v1/generate", json={"prompt": "x", "sampler": "DPM++ 2M Karras"})
    names = ["DPM++ 2M", "DPM++ 2M Karras", "Euler a"]
    assert sorted(s["name"] for s in rest) == sorted(s["name"] for s in a1111) == names
    assert sorted(s["id"] for s in rest) == sorted(s["aliases"][0] for s in a1111)
    assert "karras" in schedulers and "exponential" not in schedulers
    assert refused.status_code == 400 and refused.json()["error"]["details"][0]["field"] == "sampler"
    assert accepted.status_code == 202 and accepted.json()["request"]["sampler"] == "dpmpp_2m_karras"
