"""`serve --workers auto` starts one local worker per GPU, each pinned with CUDA_VISIBLE_DEVICES.

This machine has no GPU and no NVIDIA driver, so `nvidia-smi` is a stand-in script on PATH that prints what
the real tool prints on a two-GPU box (the one stub: the driver's tool is not ours and cannot run here). The
workers themselves are real processes told to use the CPU, so they come up and take jobs.
"""

from __future__ import annotations

import os
import re
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from gateway_procs import Gateway, wait_job, wait_until

pytestmark = pytest.mark.integration

NVIDIA_SMI = """#!/bin/sh
[ "$1" = "-L" ] || exit 9
echo "GPU 0: NVIDIA H200 (UUID: GPU-00000000-0000-0000-0000-000000000000)"
echo "GPU 1: NVIDIA H200 (UUID: GPU-11111111-1111-1111-1111-111111111111)"
"""


def fake_nvidia_smi(folder: Path) -> dict[str, str]:
    folder.mkdir(parents=True, exist_ok=True)
    tool = folder / "nvidia-smi"
    tool.write_text(NVIDIA_SMI)
    tool.chmod(tool.stat().st_mode | stat.S_IXUSR)
    return {"PATH": f"{folder}{os.pathsep}{os.environ['PATH']}"}


def pinned_gpus(gw: Gateway) -> list[str | None]:
    """CUDA_VISIBLE_DEVICES of each worker process the gateway started (read from /proc)."""
    assert gw.proc is not None
    pids = [int(p) for p in re.findall(r"started worker pid (\d+)", gw.proc.log_path.read_text(errors="replace"))]
    found: list[str | None] = []
    for pid in pids:
        environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        values = [e.split(b"=", 1)[1].decode() for e in environ if e.startswith(b"CUDA_VISIBLE_DEVICES=")]
        found.append(values[0] if values else None)
    return found


def ready_workers(client: httpx.Client, count: int) -> list[dict[str, Any]] | None:
    ready = client.get("/api/v1/ready").json()
    workers: list[dict[str, Any]] = ready["workers"]
    return workers if len(workers) == count and all(w["ready"] for w in workers) else None


def test_auto_starts_one_pinned_worker_per_gpu(gateway_factory: Any, tiny_models: Path, tmp_path: Path) -> None:
    env = fake_nvidia_smi(tmp_path / "bin")
    gw: Gateway = gateway_factory("--workers", "auto", "--device", "cpu", models=tiny_models, env=env)
    with gw.client() as client:
        workers: list[dict[str, Any]] = []
        wait_until(lambda: bool(workers.extend(ready_workers(client, 2) or []) or workers), gw.proc, "two workers")
        assert [(w["id"], w["gpu"], w["device"]) for w in workers] == [("local-0", "0", "cpu"), ("local-1", "1", "cpu")]
        assert sorted(g or "" for g in pinned_gpus(gw)) == ["0", "1"]
        jobs = [client.post("/api/v1/generate", json={"prompt": f"p{i}", "steps": 1, "width": 64, "height": 64})
                for i in range(2)]  # fmt: skip
        assert all(wait_job(client, j.json()["id"])["status"] == "completed" for j in jobs)


def test_gpus_flag_picks_the_gpus(gateway_factory: Any, tiny_models: Path, tmp_path: Path) -> None:
    gw: Gateway = gateway_factory(
        "--workers", "auto", "--gpus", "1", "--device", "cpu", models=tiny_models, env=fake_nvidia_smi(tmp_path / "b")
    )
    with gw.client() as client:
        [worker] = client.get("/api/v1/ready").json()["workers"]
        assert worker["gpu"] == "1" and worker["ready"] is True
    assert pinned_gpus(gw) == ["1"]


def test_bad_workers_value_is_a_clear_error() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "ablerefusal", "serve", "--workers", "many"], capture_output=True, text=True, timeout=60
    )
    assert done.returncode != 0 and "--workers" in done.stderr and "'many'" in done.stderr
