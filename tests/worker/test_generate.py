"""Generation through the real HTTP service: both families x both formats, every sampler, PNG metadata."""

from __future__ import annotations

import json

import numpy as np
import pytest
from fastapi.testclient import TestClient
from worker_helpers import call_body, images, pixels, png, run_call

from ablerefusal.protocol import PROTOCOL_VERSION
from ablerefusal.samplers import SAMPLER_SPECS

MODELS = ["tiny-sd15", "tiny-sd15-single", "tiny-sdxl", "tiny-sdxl-single"]


@pytest.mark.parametrize("model", MODELS)
def test_each_family_and_format_generates_a_batched_call(worker_client: TestClient, model: str) -> None:
    body = call_body(
        model,
        items=[
            {"job_id": "a", "prompt": "a red cat", "negative_prompt": "blurry", "seeds": [7, 8]},
            {"job_id": "b", "prompt": "a blue dog", "seeds": [100]},
        ],
    )
    events = run_call(worker_client, body)
    kinds = [e.type for e in events]
    assert kinds[0] == "started" and kinds[-1] == "done"
    assert kinds.count("progress") == 2
    # The device is announced free once, after the last step and before the (encoded) images.
    assert kinds.count("generated") == 1 and kinds.index("progress") < kinds.index("generated") < kinds.index("image")
    got = images(events)
    assert sorted(got) == [("a", 0), ("a", 1), ("b", 0)]
    assert [got[k].seed for k in sorted(got)] == [7, 8, 100]
    for event in got.values():
        image = png(event)
        assert image.size == (64, 64) and image.format == "PNG"
        assert image.info["parameters"] == event.infotext
        assert json.loads(image.info["ablerefusal"]) == event.metadata
        assert event.metadata["model"] == model and event.metadata["demo"] is True
    # Different seeds and prompts give different pixels.
    assert not np.array_equal(pixels(got[("a", 0)]), pixels(got[("a", 1)]))


def test_infotext_is_a1111_format(worker_client: TestClient) -> None:
    body = call_body(
        "tiny-sd15-single",
        steps=3,
        cfg_scale=6.5,
        sampler="DPM++ 2M Karras",
        items=[{"job_id": "j", "prompt": "castle on a hill", "negative_prompt": "fog", "seeds": [1234]}],
    )
    (event,) = images(run_call(worker_client, body)).values()
    lines = event.infotext.split("\n")
    assert lines[0] == "castle on a hill"
    assert lines[1] == "Negative prompt: fog"
    pairs = dict(p.split(": ", 1) for p in lines[2].split(", "))
    assert pairs["Steps"] == "3"
    assert pairs["Sampler"] == "DPM++ 2M Karras"
    assert pairs["CFG scale"] == "6.5"
    assert pairs["Seed"] == "1234"
    assert pairs["Size"] == "64x64"
    assert pairs["Model"] == "tiny-sd15-single"
    assert len(pairs["Model hash"]) == 10
    assert event.metadata["sampler"] == "dpmpp_2m_karras"


def test_no_negative_prompt_line_when_empty(worker_client: TestClient) -> None:
    (event,) = images(run_call(worker_client, call_body())).values()
    assert "Negative prompt:" not in event.infotext


@pytest.mark.parametrize("sampler", [s.id for s in SAMPLER_SPECS])
def test_every_sampler_runs_two_steps(worker_client: TestClient, sampler: str) -> None:
    events = run_call(worker_client, call_body(sampler=sampler))
    assert events[-1].type == "done", events[-1]
    (event,) = images(events).values()
    assert event.metadata["sampler"] == sampler
    assert pixels(event).std() > 0  # a real decoded image, not a blank


@pytest.mark.parametrize("name", ["Euler a", "DPM++ 2M SDE Karras", "dpm++_sde", "UniPC"])
def test_a1111_names_and_aliases_resolve(worker_client: TestClient, name: str) -> None:
    events = run_call(worker_client, call_body(sampler=name))
    assert events[-1].type == "done"


def test_previews_are_jpeg(worker_client: TestClient) -> None:
    import base64

    events = run_call(worker_client, call_body(steps=4, previews=True, preview_every=2))
    progress = [e for e in events if e.type == "progress"]
    assert [p.step for p in progress] == [1, 2, 3, 4]
    assert [p.preview is not None for p in progress] == [False, True, False, True]
    assert base64.b64decode(progress[1].preview or "")[:3] == b"\xff\xd8\xff"
    assert all(p.job_ids == ["job-1"] and p.total == 4 for p in progress)


def test_info_reports_device_and_samplers(worker_client: TestClient) -> None:
    info = worker_client.get("/v1/info").json()
    assert info["device"] == "cpu" and info["dtype"] == "float32"
    assert info["worker_id"] == "test-worker"
    assert info["protocol_version"] == PROTOCOL_VERSION
    assert {s["id"] for s in info["samplers"]} == {s.id for s in SAMPLER_SPECS}
    assert {"torch", "diffusers", "transformers"} <= set(info["versions"])
    assert info["fallback_reason"] is None


def test_health_and_ready(worker_client: TestClient) -> None:
    assert worker_client.get("/v1/health").json() == {"status": "ok"}
    ready = worker_client.get("/v1/ready")
    assert ready.status_code == 200 and ready.json()["ready"] is True
