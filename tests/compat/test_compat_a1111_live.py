"""A1111 flows as real clients run them, over real HTTP against a live gateway + worker."""

from __future__ import annotations

import base64
import io
import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from compat_live import LiveGateway
from PIL import Image

from holds import Hold

pytestmark = pytest.mark.integration

# Each job of these requests is held after step 1 (tests/holds.py) until released or cancelled, so
# /progress is watched mid-generation however fast the machine is.
HELD = {"steps": 20, "width": 64, "height": 64}


@pytest.fixture(scope="module")
def http(live_gateway: LiveGateway) -> Iterator[httpx.Client]:
    # A1111 clients authenticate with Basic auth; the API key is the password.
    with httpx.Client(base_url=live_gateway.url, auth=("a1111-user", live_gateway.api_key), timeout=300) as client:
        yield client


def _jobs(gateway: LiveGateway) -> list[dict[str, Any]]:
    # /api/v1 takes the key as a Bearer token only; Basic auth is an A1111-API courtesy.
    headers = {"Authorization": f"Bearer {gateway.api_key}"}
    listing = httpx.get(f"{gateway.url}/api/v1/generate", params={"limit": 200}, headers=headers)
    items: list[dict[str, Any]] = listing.json()["items"]
    return items


def _title(http: httpx.Client, model_id: str) -> str:
    models = http.get("/sdapi/v1/sd-models").json()
    return next(m["title"] for m in models if m["model_name"] == model_id)


def test_models_samplers_and_schedulers(http: httpx.Client, live_gateway: LiveGateway) -> None:
    models = {m["model_name"]: m for m in http.get("/sdapi/v1/sd-models").json()}
    ckpt = models[live_gateway.single_file_model]
    assert ckpt["sha256"] and len(ckpt["sha256"]) == 64 and ckpt["hash"] == ckpt["sha256"][:10]
    assert ckpt["title"] == f"{live_gateway.single_file_model} [{ckpt['hash']}]"
    assert models[live_gateway.diffusers_model]["title"] == live_gateway.diffusers_model
    samplers = {s["name"]: s for s in http.get("/sdapi/v1/samplers").json()}
    assert "dpmpp_2m_karras" in samplers["DPM++ 2M Karras"]["aliases"]
    assert {"automatic", "karras"} <= {s["name"] for s in http.get("/sdapi/v1/schedulers").json()}


def test_set_checkpoint_via_options_then_txt2img(http: httpx.Client, live_gateway: LiveGateway) -> None:
    title = _title(http, live_gateway.single_file_model)
    assert http.post("/sdapi/v1/options", json={"sd_model_checkpoint": title}).status_code == 200
    assert http.get("/sdapi/v1/options").json()["sd_model_checkpoint"] == title
    body = {
        "prompt": "a tiny lighthouse",
        "negative_prompt": "fog",
        "seed": 4242,
        "sampler_name": "DPM++ 2M",
        "scheduler": "karras",
        "n_iter": 2,
        "batch_size": 2,
        "steps": 2,
        "cfg_scale": 5,
        "width": 64,
        "height": 64,
        "restore_faces": True,  # an A1111 field we ignore, echoed back
    }
    response = http.post("/sdapi/v1/txt2img", json=body)
    assert response.status_code == 200, response.text
    answer = response.json()
    info = json.loads(answer["info"])
    assert info["all_seeds"] == [4242, 4243, 4244, 4245] and info["seed"] == 4242
    assert info["sd_model_name"] == live_gateway.single_file_model
    assert info["sampler_name"] == "DPM++ 2M Karras" and info["steps"] == 2 and info["batch_size"] == 2
    assert len(info["all_subseeds"]) == 4 and len(set(info["all_subseeds"])) == 4
    assert answer["parameters"]["restore_faces"] is True and answer["parameters"]["n_iter"] == 2
    assert len(answer["images"]) == 4 and len(info["infotexts"]) == 4
    for seed, image_b64, infotext in zip(info["all_seeds"], answer["images"], info["infotexts"], strict=True):
        image = Image.open(io.BytesIO(base64.b64decode(image_b64)))
        assert image.size == (64, 64) and image.info["parameters"] == infotext
        assert f"Seed: {seed}," in infotext
    # Same queue as /api/v1: two jobs of two images on the chosen model, with the resolved sampler id.
    ours = [j for j in _jobs(live_gateway) if j["request"]["prompt"] == "a tiny lighthouse"]
    assert len(ours) == 2 and all(j["status"] == "completed" for j in ours)
    assert {(j["request"]["model"], j["request"]["sampler"], j["request"]["batch_size"]) for j in ours} == {
        (live_gateway.single_file_model, "dpmpp_2m_karras", 2)
    }

    # png-info of one of our images gives back what made it.
    parsed = http.post("/sdapi/v1/png-info", json={"image": answer["images"][1]}).json()
    assert parsed["info"] == info["infotexts"][1]
    params = parsed["parameters"]
    assert params["Prompt"] == "a tiny lighthouse" and params["Negative prompt"] == "fog"
    assert (params["Seed"], params["Steps"], params["Size-1"], params["Size-2"]) == ("4243", "2", "64", "64")

    # A per-request override beats the option, which stays as set.
    body.update(n_iter=1, batch_size=1, override_settings={"sd_model_checkpoint": live_gateway.diffusers_model})
    info = json.loads(http.post("/sdapi/v1/txt2img", json=body).json()["info"])
    assert info["sd_model_name"] == live_gateway.diffusers_model
    assert http.get("/sdapi/v1/options").json()["sd_model_checkpoint"] == title


def test_bad_requests_are_422_and_queue_nothing(http: httpx.Client, live_gateway: LiveGateway) -> None:
    before = len(_jobs(live_gateway))
    cases = [
        ({"prompt": "x", "sampler_name": "Nope"}, ["body", "sampler_name"]),
        ({"prompt": "x", "sampler_name": "UniPC", "scheduler": "karras"}, ["body", "scheduler"]),
        (
            {"prompt": "x", "override_settings": {"sd_model_checkpoint": "nope"}},
            ["body", "override_settings", "sd_model_checkpoint"],
        ),
        ({"prompt": "x", "width": 63}, ["body", "width"]),
    ]
    for body, loc in cases:
        response = http.post("/sdapi/v1/txt2img", json=body)
        assert response.status_code == 422 and response.json()["detail"][0]["loc"] == loc, response.text
    refused = http.post("/sdapi/v1/options", json={"sd_model_checkpoint": "nope"})
    assert refused.status_code == 422 and refused.json()["detail"][0]["loc"] == ["body", "sd_model_checkpoint"]
    assert len(_jobs(live_gateway)) == before


class _Txt2Img(threading.Thread):
    """A txt2img call running in the background, as a UI does while it polls /progress."""

    def __init__(self, live_gateway: LiveGateway, body: dict[str, Any]) -> None:
        super().__init__(daemon=True)
        self.gateway, self.body = live_gateway, body
        self.response: httpx.Response | None = None

    def run(self) -> None:
        auth = ("a1111-user", self.gateway.api_key)
        self.response = httpx.post(f"{self.gateway.url}/sdapi/v1/txt2img", json=self.body, auth=auth, timeout=300)


def _poll_until_sampling(http: httpx.Client, call: _Txt2Img) -> list[dict[str, Any]]:
    """/progress answers until the request is past its first step; all of them, for the test to check."""
    seen: list[dict[str, Any]] = []
    while call.is_alive():
        progress = http.get("/sdapi/v1/progress").json()
        seen.append(progress)
        if progress["state"]["sampling_step"] >= 1:
            return seen
        time.sleep(0.02)
    pytest.fail(f"txt2img finished before /progress saw it sampling: {seen[-3:]}")


@pytest.fixture
def hold(live_gateway: LiveGateway) -> Iterator[Hold]:
    with Hold(live_gateway.hold_dir) as held:
        yield held


def test_progress_during_generation_then_interrupt(http: httpx.Client, live_gateway: LiveGateway, hold: Hold) -> None:
    prompt = hold.prompt("interrupt me")
    call = _Txt2Img(live_gateway, {"prompt": prompt, "seed": 7, "n_iter": 3, **HELD})
    call.start()
    seen = _poll_until_sampling(http, call)
    live = seen[-1]
    assert 0 < live["progress"] < 1 and live["eta_relative"] >= 0
    assert live["state"]["job_count"] == 3 and live["state"]["sampling_steps"] == HELD["steps"]
    assert live["textinfo"].startswith("Sampling step")
    assert http.post("/sdapi/v1/interrupt").status_code == 200
    call.join(timeout=120)
    assert call.response is not None and call.response.status_code == 200, call.response
    answer = call.response.json()
    info = json.loads(answer["info"])
    # The first iteration was held when the interrupt came: nothing finished, so nothing comes back.
    assert answer["images"] == [] and info["all_seeds"] == []
    assert _statuses(live_gateway, prompt) == {7: "cancelled", 8: "cancelled", 9: "cancelled"}
    idle = http.get("/sdapi/v1/progress").json()
    assert idle["progress"] == 0 and idle["state"]["job_count"] == 0


def _wait_for(check: Any, what: str, timeout_s: float = 120) -> Any:
    """Poll ``check`` until it returns something truthy (a bound, not a timing assertion)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    pytest.fail(f"gave up waiting for {what}")


def _statuses(gateway: LiveGateway, prompt: str) -> dict[int, str]:
    """Status of each job of one A1111 request, by its first seed."""
    return {j["request"]["seed"]: j["status"] for j in _jobs(gateway) if j["request"]["prompt"] == prompt}


def test_skip_drops_the_running_iteration_only(http: httpx.Client, live_gateway: LiveGateway, hold: Hold) -> None:
    prompt = hold.prompt("skip one")
    call = _Txt2Img(live_gateway, {"prompt": prompt, "seed": 100, "n_iter": 2, **HELD})
    call.start()
    _poll_until_sampling(http, call)
    assert http.post("/sdapi/v1/skip").status_code == 200
    statuses = _wait_for(
        lambda: (s := _statuses(live_gateway, prompt)).get(100) == "cancelled" and s, "iteration 1 cancelled"
    )
    assert statuses[101] in ("queued", "running")  # the next iteration goes on
    progress = _wait_for(
        lambda: (p := http.get("/sdapi/v1/progress").json())["state"]["job_no"] == 1 and p, "iteration 2 running"
    )
    assert progress["state"]["skipped"] is True and progress["state"]["job_count"] == 2
    # Done watching: iteration 2 is held too; stop it.
    assert http.post("/sdapi/v1/interrupt").status_code == 200
    call.join(timeout=120)
    assert call.response is not None and call.response.status_code == 200, call.response
    assert call.response.json()["images"] == []
    assert _statuses(live_gateway, prompt) == {100: "cancelled", 101: "cancelled"}


def test_a_client_that_leaves_leaves_nothing_running(live_gateway: LiveGateway, hold: Hold) -> None:
    auth = ("a1111-user", live_gateway.api_key)
    prompt = hold.prompt("walk away")
    body = {"prompt": prompt, "seed": 500, "n_iter": 2, **HELD}
    # The job is held, so the client's read timeout fires whatever the machine's speed.
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(f"{live_gateway.url}/sdapi/v1/txt2img", json=body, auth=auth, timeout=httpx.Timeout(10, read=2))
    _wait_for(lambda: _statuses(live_gateway, prompt) == {500: "cancelled", 501: "cancelled"}, "both jobs cancelled")


def test_cross_site_interrupt_does_not_stop_the_run(http: httpx.Client, live_gateway: LiveGateway, hold: Hold) -> None:
    # Security finding 7: a web page could POST text/plain to /interrupt (no preflight) and stop the run; a
    # browser attaches cached Basic credentials and its Origin, as these requests do.
    prompt = hold.prompt("keep running")
    call = _Txt2Img(live_gateway, {"prompt": prompt, "seed": 300, "n_iter": 1, **HELD})
    call.start()
    _poll_until_sampling(http, call)
    form = {"Content-Type": "text/plain"}
    assert http.post("/sdapi/v1/interrupt", content=b"stop", headers=form).status_code == 415
    foreign = http.post("/sdapi/v1/interrupt", headers={"Origin": "https://evil.example"})
    assert foreign.status_code == 403 and "Origin" in foreign.json()["detail"]
    assert _statuses(live_gateway, prompt) == {300: "running"}
    hold.release()
    call.join(timeout=120)
    assert call.response is not None and call.response.status_code == 200, call.response
    assert len(call.response.json()["images"]) == 1
    assert _statuses(live_gateway, prompt) == {300: "completed"}
