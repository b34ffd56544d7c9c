"""kill -9 of the gateway or of a worker mid-job loses nothing; remote workers by URL."""

from __future__ import annotations

import os
import re
import signal
from pathlib import Path
from typing import Any

import httpx
import pytest
from gateway_procs import Gateway, wait_job, wait_until

from holds import Hold
from procs import worker_proc

pytestmark = pytest.mark.integration

MID: dict[str, Any] = {"prompt": "survive", "width": 64, "height": 64, "steps": 20, "batch_size": 2}
# Short leases and backoff so recovery happens within a few seconds.
FAST_RECOVERY = {
    "ABLEREFUSAL_QUEUE__LEASE_S": "2",
    "ABLEREFUSAL_QUEUE__BACKOFF_BASE_S": "0.2",
    "ABLEREFUSAL_WORKERS__RESTART_BACKOFF_S": "0.2",
    "ABLEREFUSAL_WORKERS__PROBE_INTERVAL_S": "0.5",
}


def wait_running(client: httpx.Client, job_id: str) -> None:
    wait_until(lambda: client.get(f"/api/v1/generate/{job_id}").json()["step"] >= 1, None, "job progress")


def assert_no_orphans(gw: Gateway, client: httpx.Client) -> None:
    """Every image file belongs to a job result, and every result has its file."""
    jobs = client.get("/api/v1/generate", params={"limit": 200}).json()["items"]
    expected = {r["image_url"].removeprefix("/outputs/") for j in jobs for r in j["results"]}
    on_disk = {str(p.relative_to(gw.output_dir)) for p in gw.output_dir.rglob("*") if p.is_file()}
    assert on_disk == expected


def worker_pids(gw: Gateway) -> list[int]:
    assert gw.proc is not None
    log = gw.proc.log_path.read_text(errors="replace")
    return [int(p) for p in re.findall(r"started worker pid (\d+)", log)]


def test_gateway_kill9_mid_job_then_restart(gateway_factory: Any, tiny_models: Path, tmp_path: Path) -> None:
    hold = Hold(tmp_path / "holds")
    gw: Gateway = gateway_factory("--device", "cpu", models=tiny_models, env={**FAST_RECOVERY, **hold.env})
    with gw.client() as client:
        # Held after step 1, so the kill lands mid-job whatever the machine's speed.
        job_id = client.post("/api/v1/generate", json={**MID, "prompt": hold.prompt("survive")}).json()["id"]
        queued = client.post("/api/v1/generate", json={**MID, "steps": 2}).json()["id"]
        wait_running(client, job_id)
    assert gw.proc is not None
    gw.proc.kill9()
    hold.release()  # the retry runs through
    gw.start()
    with gw.client() as client:
        first, second = wait_job(client, job_id, 240), wait_job(client, queued, 240)
        assert first["status"] == "completed", first
        assert second["status"] == "completed", second
        assert first["attempts"] == 2
        assert [r["index"] for r in first["results"]] == [0, 1]
        assert_no_orphans(gw, client)


def test_worker_kill9_mid_job_is_restarted_and_job_retried(
    gateway_factory: Any, tiny_models: Path, tmp_path: Path
) -> None:
    hold = Hold(tmp_path / "holds")
    gw: Gateway = gateway_factory("--device", "cpu", models=tiny_models, env={**FAST_RECOVERY, **hold.env})
    with gw.client() as client:
        job_id = client.post("/api/v1/generate", json={**MID, "prompt": hold.prompt("survive")}).json()["id"]
        wait_running(client, job_id)
        os.kill(worker_pids(gw)[-1], signal.SIGKILL)
        hold.release()
        job = wait_job(client, job_id, 240)
        assert job["status"] == "completed", job
        assert job["attempts"] >= 2
        assert len(worker_pids(gw)) == 2
        ready = client.get("/api/v1/ready").json()
        assert ready["ready"] is True and ready["workers"][0]["restarts"] == 1
        assert_no_orphans(gw, client)


def test_remote_worker_by_url(gateway_factory: Any, tiny_models: Path, tmp_path: Path) -> None:
    worker = worker_proc(tiny_models, tmp_path / "worker.log")
    worker.start()
    try:
        url = worker.url
        gw: Gateway = gateway_factory("--no-local-worker", "--worker-url", url, env=FAST_RECOVERY)
        with gw.client() as client:
            job = wait_job(client, client.post("/api/v1/generate", json={**MID, "steps": 1}).json()["id"])
            assert job["status"] == "completed" and job["worker_id"] == url
            worker.stop()
            wait_until(lambda: client.get("/api/v1/ready").status_code == 503, None, "the worker out of rotation")
            status = client.get("/api/v1/ready").json()["workers"][0]
            assert status == {**status, "id": url, "local": False, "ready": False}
    finally:
        worker.stop()
