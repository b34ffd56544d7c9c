"""One real gateway with one supervised local worker and the tiny model: jobs run end to end."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from gateway_procs import Gateway, make_gateway, wait_job, wait_until

from holds import Hold

pytestmark = pytest.mark.integration

SMALL: dict[str, Any] = {"prompt": "a red cube", "width": 64, "height": 64, "steps": 1}


@pytest.fixture(scope="module")
def hold_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("holds")


@pytest.fixture
def hold(hold_dir: Path) -> Iterator[Hold]:
    """Jobs to cancel or time out while they run are held after step 1 (tests/holds.py)."""
    with Hold(hold_dir) as held:
        yield held


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory, tiny_models: Path, hold_dir: Path) -> Iterator[Gateway]:
    gateway = make_gateway(tmp_path_factory.mktemp("e2e"), tiny_models, "--device", "cpu", env=Hold(hold_dir).env)
    gateway.start()
    yield gateway
    gateway.stop()


def held(hold: Hold, **over: Any) -> dict[str, Any]:
    return {**SMALL, "prompt": hold.prompt("a held one"), "steps": 20, **over}


@pytest.fixture
def client(gw: Gateway) -> Iterator[httpx.Client]:
    with gw.client() as c:
        yield c


def wait_running(client: httpx.Client, job_id: str) -> None:
    wait_until(lambda: client.get(f"/api/v1/generate/{job_id}").json()["step"] >= 1, None, "the job to make progress")


def test_submit_completes_with_images_and_metadata(client: httpx.Client, gw: Gateway) -> None:
    resp = client.post("/api/v1/generate", json={**SMALL, "batch_size": 2, "seed": 1234})
    assert resp.status_code == 202
    assert resp.json()["status"] == "queued"
    job = wait_job(client, resp.json()["id"])
    assert job["status"] == "completed", job
    assert [r["index"] for r in job["results"]] == [0, 1]
    assert [r["seed"] for r in job["results"]] == [1234, 1235]
    for result in job["results"]:
        assert result["metadata"]["prompt"] == "a red cube"
        assert "Steps: 1" in result["infotext"]
        image = client.get(result["image_url"])
        assert image.status_code == 200 and image.headers["content-type"] == "image/png"
        assert image.content.startswith(b"\x89PNG")
    assert sorted(p.name for p in (gw.output_dir / job["id"]).iterdir()) == ["0.png", "1.png"]


def test_models_lists_the_demo_model(client: httpx.Client) -> None:
    models = client.get("/api/v1/models").json()
    assert [m["id"] for m in models["models"]] == ["tiny-sd15"]
    assert models["models"][0]["demo"] is True
    assert models["default"] == "tiny-sd15"


def test_unknown_model_is_404_listing_available(client: httpx.Client) -> None:
    resp = client.post("/api/v1/generate", json={**SMALL, "model": "nope"})
    assert resp.status_code == 404
    assert resp.json()["error"]["available"] == ["tiny-sd15"]
    assert client.get("/api/v1/generate", params={"limit": 200}).json()["items"][0]["request"]["model"] != "nope"


def test_sync_mode_returns_finished_job(client: httpx.Client) -> None:
    resp = client.post("/api/v1/generate", params={"wait": 120}, json=SMALL)
    assert resp.status_code == 200
    assert resp.json()["status"] == "completed" and len(resp.json()["results"]) == 1


def test_sse_streams_progress_images_and_terminal_status(client: httpx.Client) -> None:
    job_id = client.post("/api/v1/generate", json={**SMALL, "steps": 3}).json()["id"]
    events: list[tuple[str, dict[str, Any]]] = []
    with client.stream("GET", f"/api/v1/generate/{job_id}/events") as resp:
        name = ""
        for line in resp.iter_lines():
            if line.startswith("event:"):
                name = line.split(":", 1)[1].strip()
            elif line.startswith("data:"):
                events.append((name, json.loads(line.split(":", 1)[1])))
    names = [n for n, _ in events]
    assert names[-1] == "status" and events[-1][1]["job"]["status"] == "completed"
    assert "image" in names
    assert events[-1][1]["terminal"] is True


def test_cancel_running_and_queued(client: httpx.Client, hold: Hold) -> None:
    running = client.post("/api/v1/generate", json=held(hold)).json()["id"]
    # Other steps keep it out of the held job's call: it waits in the queue behind it.
    queued = client.post("/api/v1/generate", json={**SMALL, "steps": 19}).json()["id"]
    wait_running(client, running)
    assert client.post(f"/api/v1/generate/{queued}/cancel").json()["status"] == "cancelled"
    client.post(f"/api/v1/generate/{running}/cancel")
    job = wait_job(client, running)
    assert job["status"] == "cancelled" and job["step"] < job["total_steps"]
    again = client.post(f"/api/v1/generate/{running}/cancel").json()
    assert again["status"] == "cancelled"  # terminal states never change
    assert client.get(f"/api/v1/generate/{queued}").json()["attempts"] == 0


def test_timeout_keeps_partial_results(client: httpx.Client, hold: Hold) -> None:
    job_id = client.post("/api/v1/generate", json=held(hold, timeout_s=2)).json()["id"]
    job = wait_job(client, job_id)
    assert job["status"] == "timed_out"
    assert job["error"]["code"] == "timeout"
    assert job["step"] < job["total_steps"]
    resp = client.post("/api/v1/generate", params={"wait": 60}, json=held(hold, timeout_s=1))
    assert resp.status_code == 408 and resp.json()["job"]["status"] == "timed_out"


def test_priority_runs_first(client: httpx.Client, hold: Hold) -> None:
    blocker = client.post("/api/v1/generate", json=held(hold)).json()["id"]
    wait_running(client, blocker)
    # Different steps keep them from being coalesced into one call.
    low = client.post("/api/v1/generate", json={**SMALL, "steps": 1, "priority": 0}).json()["id"]
    high = client.post("/api/v1/generate", json={**SMALL, "steps": 2, "priority": 10}).json()["id"]
    assert [client.get(f"/api/v1/generate/{i}").json()["status"] for i in (low, high)] == ["queued", "queued"]
    hold.release()
    jobs = [wait_job(client, i) for i in (blocker, low, high)]
    assert all(j["status"] == "completed" for j in jobs)
    assert jobs[2]["started_at"] < jobs[1]["started_at"]


def test_delete_removes_files(client: httpx.Client, gw: Gateway) -> None:
    job = wait_job(client, client.post("/api/v1/generate", json=SMALL).json()["id"])
    assert (gw.output_dir / job["id"] / "0.png").is_file()
    assert client.delete(f"/api/v1/generate/{job['id']}").status_code == 204
    assert not (gw.output_dir / job["id"]).exists()
    assert client.get(job["results"][0]["image_url"]).status_code == 404


def test_metrics_after_jobs(client: httpx.Client) -> None:
    wait_job(client, client.post("/api/v1/generate", json=SMALL).json()["id"])
    text = client.get("/metrics").text
    completed = [line for line in text.splitlines() if line.startswith('ablerefusal_jobs_total{outcome="completed"}')]
    assert completed and float(completed[0].split()[-1]) >= 1
    assert 'ablerefusal_workers_up{worker="local-0"} 1.0' in text
    assert "ablerefusal_generation_seconds_count" in text


def test_cli_generate_saves_images(gw: Gateway, tmp_path: Path) -> None:
    out = tmp_path / "imgs"
    cmd = [sys.executable, "-m", "ablerefusal", "generate", "a cli cube", "--steps", "1", "--width", "64",
           "--height", "64", "--seed", "7", "--out", str(out), "--url", gw.url]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr
    saved = sorted(out.iterdir())
    assert len(saved) == 1 and saved[0].read_bytes().startswith(b"\x89PNG")
    bad = subprocess.run([*cmd[:4], "x", "--steps", "0", "--url", gw.url], capture_output=True, text=True)
    assert bad.returncode == 1 and "steps" in bad.stderr


def test_ready_lists_the_worker(client: httpx.Client) -> None:
    ready = client.get("/api/v1/ready").json()
    assert ready["ready"] is True
    assert [(w["id"], w["local"], w["ready"]) for w in ready["workers"]] == [("local-0", True, True)]
