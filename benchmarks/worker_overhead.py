"""Worker overhead: (N jobs through a real worker process's HTTP API) / (the same N jobs as direct calls).

The tiny SD 1.5 model is made with a channel ``--scale`` so that one 64x64 job takes a few tenths of a second
on CPU. Both sides run the same jobs (same prompts, seeds, sampler, steps); rounds alternate between the two
so background load hits both alike. The worker side includes everything a client pays for: HTTP, JSON
validation, NDJSON events, PNG encoding and base64. Target: <= 1.10.

    python benchmarks/worker_overhead.py [--jobs 8] [--rounds 3] [--scale 4] [--steps 8]
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import torch

from platform_util import free_port, wait_ready


def start_worker(models: Path, log: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    args = [sys.executable, "-m", "ablerefusal", "worker", "--host", "127.0.0.1", "--port", str(port),
            "--device", "cpu", "--models-dir", str(models), "--preload", "tiny-sd15",
            "--log-level", "warning"]  # fmt: skip
    proc = subprocess.Popen(args, stdout=log.open("wb"), stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    wait_ready(url + "/v1/ready", proc, log, 300)
    return proc, url


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--scale", type=int, default=4, help="tiny model channel multiplier")
    parser.add_argument("--steps", type=int, default=8)
    args = parser.parse_args()

    from diffusers import EulerAncestralDiscreteScheduler, StableDiffusionPipeline

    from ablerefusal.testing.tiny import make_tiny

    work = Path(tempfile.mkdtemp(prefix="worker-overhead-"))
    path = make_tiny(work / "models", "sd15", "diffusers", scale=args.scale)
    jobs = [(f"a test prompt number {i}", 1000 + i) for i in range(args.jobs)]

    pipe = StableDiffusionPipeline.from_pretrained(path, safety_checker=None, requires_safety_checker=False)
    pipe.scheduler = EulerAncestralDiscreteScheduler.from_config(pipe.scheduler.config)
    pipe.set_progress_bar_config(disable=True)

    def direct() -> float:
        start = time.perf_counter()
        for prompt, seed in jobs:
            pipe(
                prompt,
                width=64,
                height=64,
                num_inference_steps=args.steps,
                guidance_scale=7.5,
                generator=torch.Generator().manual_seed(seed),
            )
        return time.perf_counter() - start

    proc, url = start_worker(work / "models", work / "worker.log")
    try:
        client = httpx.Client(base_url=url, timeout=300)

        def via_worker() -> float:
            start = time.perf_counter()
            for n, (prompt, seed) in enumerate(jobs):
                item = {"job_id": f"j{n}", "prompt": prompt, "seeds": [seed]}
                body = {"model": "tiny-sd15", "width": 64, "height": 64, "steps": args.steps, "cfg_scale": 7.5,
                        "sampler": "euler_a", "items": [item]}  # fmt: skip
                with client.stream("POST", "/v1/generate", json=body) as resp:
                    lines = [line for line in resp.iter_lines() if line]
                if '"type":"done"' not in lines[-1]:
                    raise RuntimeError(lines[-1])
            return time.perf_counter() - start

        direct()  # warm-up both sides
        via_worker()
        direct_total = worker_total = 0.0
        for _ in range(args.rounds):
            direct_total += direct()
            worker_total += via_worker()
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
    n = args.jobs * args.rounds
    print(f"tiny SD 1.5 (scale {args.scale}), 64x64, {args.steps} steps, Euler a, CPU, {os.cpu_count()} cores")
    print(
        f"direct pipeline: {direct_total / n:.3f} s/job   worker HTTP: {worker_total / n:.3f} s/job   ({n} jobs each)"
    )
    print(f"overhead ratio (worker / direct): {worker_total / direct_total:.3f}")


if __name__ == "__main__":
    main()
