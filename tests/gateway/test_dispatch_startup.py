"""Jobs accepted while no worker is ready yet (issue 16, finding 2): a real gateway process and a real
worker process that starts only after the job was accepted."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import httpx

from procs import Proc, free_port, worker_proc

WAIT_S = 180.0


def test_a_job_without_model_accepted_before_any_worker_is_ready_runs(tiny_models_dir: Path, tmp_path: Path) -> None:
    worker = worker_proc(tiny_models_dir, tmp_path / "worker.log")  # its port is chosen; not started yet
    port = free_port()
    gateway = Proc(
        [
            sys.executable, "-m", "ablerefusal", "serve", "--host", "127.0.0.1", "--port", str(port),
            "--no-local-worker", "--worker-url", worker.url,
            "--database-url", f"sqlite:///{tmp_path / 'jobs.db'}",
            "--output-dir", str(tmp_path / "outputs"), "--models-dir", str(tmp_path / "models"),
        ],
        port=port,
        log_path=tmp_path / "gateway.log",
        ready_path="/api/v1/health",
    )  # fmt: skip
    with gateway, httpx.Client(base_url=gateway.url, timeout=60) as client:
        gateway.start(timeout=WAIT_S)
        assert client.get("/api/v1/ready").status_code == 503  # no worker answers yet
        submitted = client.post(
            "/api/v1/generate", json={"prompt": "a red cube", "width": 64, "height": 64, "steps": 2}
        )
        assert submitted.status_code == 202, submitted.text
        job = submitted.json()
        assert job["request"]["model"] is None  # nothing could say which models exist
        with worker:
            worker.start(timeout=WAIT_S)
            deadline = time.monotonic() + WAIT_S
            while job["status"] in ("queued", "running"):
                assert time.monotonic() < deadline, f"job stuck: {job}"
                time.sleep(0.1)
                job = client.get(f"/api/v1/generate/{job['id']}").json()
            # It ran with the default that /api/v1/models names now that a worker is ready.
            default = client.get("/api/v1/models").json()["default"]
        assert job["status"] == "completed", job
        assert job["attempts"] == 1 and len(job["results"]) == 1
        assert default is not None and f"Model: {default}," in job["results"][0]["infotext"]
