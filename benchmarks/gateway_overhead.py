"""Gateway overhead: (time for N jobs through the gateway API) / (the same N calls sent straight to the
worker), with the tiny model, plus submit/status request throughput on loopback.

    .venv/bin/python benchmarks/gateway_overhead.py [--jobs 20] [--steps 4] [--size 64]

Starts one worker and one gateway (pointing at that worker with --worker-url, so both paths use the very
same warm process) in a temp dir; prints the figures; stops both. Jobs run one at a time on both paths
(coalescing off) so the ratio measures the gateway, not batching; the two paths alternate job by job.
"""

from __future__ import annotations

import argparse
import itertools
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path

import httpx

from ablerefusal.protocol import GenerateCall, GenerateItem, parse_event
from platform_util import free_port, wait_ready


def direct_job(client: httpx.Client, worker: str, model: str, steps: int, size: int, seed: int) -> None:
    call = GenerateCall(
        model=model, width=size, height=size, steps=steps,
        items=[GenerateItem(job_id=str(uuid.uuid4()), prompt="a red cube", seeds=[seed])],
    )  # fmt: skip
    with client.stream("POST", f"{worker}/v1/generate", json=call.model_dump(mode="json")) as resp:
        resp.raise_for_status()
        for line in resp.iter_lines():
            if line and parse_event(line).type in ("done", "error"):
                return


def gateway_job(client: httpx.Client, gateway: str, steps: int, size: int, seed: int) -> list[float]:
    """Runs one job in synchronous mode; its phases in seconds from the job's own timestamps (same machine,
    same clock): sent → accepted, accepted → claimed, claimed → finished, finished → answer read."""
    body = {"prompt": "a red cube", "width": size, "height": size, "steps": steps, "seed": seed}
    sent = time.time()
    resp = client.post(f"{gateway}/api/v1/generate", params={"wait": 600}, json=body)
    answered = time.time()
    if resp.status_code != 200:
        raise SystemExit(f"gateway job failed: {resp.status_code} {resp.text[:300]}")
    job = resp.json()
    marks = [sent, *(datetime.fromisoformat(job[k]).timestamp() for k in PHASE_MARKS), answered]
    return [b - a for a, b in itertools.pairwise(marks)]


PHASE_MARKS = ("created_at", "started_at", "finished_at")
PHASE_NAMES = ("sent→accepted", "accepted→claimed", "claimed→finished", "finished→answer")


def throughput(gateway: str, seconds: float = 3.0, threads: int = 8) -> float:
    """Requests/s of alternating submit + status calls (no worker runs them: the gateway is queue-only)."""
    body = {"prompt": "load", "width": 64, "height": 64, "steps": 1}
    count = 0
    stop = time.monotonic() + seconds

    def loop() -> int:
        done = 0
        with httpx.Client(timeout=30) as client:
            while time.monotonic() < stop:
                job = client.post(f"{gateway}/api/v1/generate", json=body).json()
                client.get(f"{gateway}/api/v1/generate/{job['id']}").raise_for_status()
                done += 2
        return done

    start = time.monotonic()
    with ThreadPoolExecutor(threads) as pool:
        count = sum(pool.map(lambda _: loop(), range(threads)))
    return count / (time.monotonic() - start)


def start(argv: list[str], log: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(argv, stdout=log.open("wb"), stderr=subprocess.STDOUT, env={**os.environ, **env})


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=20)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--size", type=int, default=64)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="ar-bench-"))
    models = tmp / "models"
    subprocess.run(
        [sys.executable, "-m", "ablerefusal", "models", "make-tiny", str(models)], check=True, capture_output=True
    )
    wport, gport = free_port(), free_port()
    worker_url, gateway_url = f"http://127.0.0.1:{wport}", f"http://127.0.0.1:{gport}"
    py = [sys.executable, "-m", "ablerefusal"]
    worker = start(
        [*py, "worker", "--port", str(wport), "--device", "cpu", "--models-dir", str(models)], tmp / "worker.log", {}
    )
    env = {"ABLEREFUSAL_QUEUE__COALESCE": "false", "ABLEREFUSAL_QUEUE__GATHER_WINDOW_MS": "0",
           "ABLEREFUSAL_QUEUE__MAX_QUEUE_LENGTH": "100000"}  # fmt: skip
    gateway = start(
        [*py, "serve", "--port", str(gport), "--no-local-worker", "--worker-url", worker_url,
         "--database-url", f"sqlite:///{tmp / 'jobs.db'}", "--output-dir", str(tmp / "out")],
        tmp / "gateway.log", env,
    )  # fmt: skip
    try:
        wait_ready(f"{worker_url}/v1/ready", worker, tmp / "worker.log", 180)
        wait_ready(f"{gateway_url}/api/v1/ready", gateway, tmp / "gateway.log", 180)
        with httpx.Client(timeout=600) as client:
            model = client.get(f"{worker_url}/v1/models").json()["models"][0]["id"]
            # Warm-up on both paths: pipeline load and first-call costs are not what we measure.
            direct_job(client, worker_url, model, args.steps, args.size, 0)
            gateway_job(client, gateway_url, args.steps, args.size, 0)
            # Interleaved (direct, gateway, gateway, direct, …) so that a slow spell of the machine lands on
            # both paths alike instead of on whichever ran second.
            direct: list[float] = []
            through: list[float] = []
            phases: list[list[float]] = []
            for i in range(args.jobs):
                order = [(direct, True), (through, False)]
                for times, is_direct in order if i % 2 == 0 else order[::-1]:
                    t0 = time.perf_counter()
                    if is_direct:
                        direct_job(client, worker_url, model, args.steps, args.size, i + 1)
                    else:
                        phases.append(gateway_job(client, gateway_url, args.steps, args.size, i + 1))
                    times.append(time.perf_counter() - t0)
        direct_s, gateway_s = sum(direct), sum(through)
        d_med, g_med = statistics.median(direct), statistics.median(through)
        print(f"jobs={args.jobs} steps={args.steps} size={args.size}x{args.size} (interleaved)")
        print(f"direct to worker: {direct_s:.2f}s  through gateway: {gateway_s:.2f}s")
        print(f"median per job: direct {1000 * d_med:.1f} ms, through gateway {1000 * g_med:.1f} ms")
        print(f"overhead ratio (gateway/direct): {gateway_s / direct_s:.3f} (of medians: {g_med / d_med:.3f})")
        medians = [statistics.median(column) for column in zip(*phases, strict=True)]
        print(
            "gateway phases, median ms: "
            + ", ".join(f"{n} {1000 * m:.1f}" for n, m in zip(PHASE_NAMES, medians, strict=True))
        )
        # Throughput is measured with the worker stopped, so the queue-only gateway answers alone.
        worker.send_signal(signal.SIGTERM)
        worker.wait(30)
        print(f"submit+status throughput: {throughput(gateway_url):.0f} req/s")
    finally:
        for proc in (gateway, worker):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                proc.wait(30)


if __name__ == "__main__":
    main()
