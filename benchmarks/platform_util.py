"""Shared helpers for benchmarks that drive the whole platform: start `ablerefusal serve` as a real process,
submit jobs over HTTP, measure latency and throughput."""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx


@dataclass
class Shape:
    family: str
    size: int
    steps: int


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Platform:
    url: str
    proc: subprocess.Popen[bytes]
    log: Path

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def start_platform(
    work: Path,
    models_dir: Path,
    *,
    device: str,
    coalesce: bool,
    tag: str,
    compile_shapes: list[str] | None = None,
    preload: list[str] | None = None,
    gather_ms: float = 5.0,
    max_batch: int = 4,
    start_timeout: float = 180,
    extra_env: dict[str, str] | None = None,
    worker_args: list[str] | None = None,
) -> Platform:
    port = free_port()
    env = dict(os.environ)
    env["ABLEREFUSAL_QUEUE__COALESCE"] = "true" if coalesce else "false"
    env["ABLEREFUSAL_QUEUE__GATHER_WINDOW_MS"] = str(gather_ms)
    env["ABLEREFUSAL_INFERENCE__MAX_BATCH_SIZE"] = str(max_batch)
    extra = ["--compile"] if compile_shapes else []
    for shape in compile_shapes or []:
        extra += ["--compile-shape", shape]
    for model in preload or []:  # loaded before ready, so no first job pays for reading the weights
        extra += ["--preload", model]
    extra += worker_args or []
    env["ABLEREFUSAL_WORKERS__EXTRA_ARGS"] = json.dumps(extra)
    env.update(extra_env or {})
    log = work / f"platform-{tag}.log"
    cmd = [
        sys.executable, "-m", "ablerefusal", "serve",
        "--port", str(port),
        "--models-dir", str(models_dir),
        "--output-dir", str(work / f"outputs-{tag}"),
        "--database-url", f"sqlite:///{work / f'jobs-{tag}.db'}",
        "--device", device,
    ]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=log.open("wb"), stderr=subprocess.STDOUT, env=env)
    platform = Platform(f"http://127.0.0.1:{port}", proc, log)
    try:
        wait_ready(f"{platform.url}/api/v1/ready", proc, log, start_timeout)
    except RuntimeError:
        platform.stop()
        raise
    return platform


def wait_ready(url: str, proc: subprocess.Popen[bytes], log: Path, timeout: float) -> None:
    """Poll ``url`` until it answers 200; RuntimeError with the log's tail if the process exits or time runs out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"process exited {proc.returncode} waiting for {url}; log:\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} not ready in {timeout}s; log:\n{log.read_text()[-3000:]}")


def wait_compiled(platform: Platform, want: int, timeout: float) -> float:
    """Wait until the worker reports ``want`` warm compiled shapes; returns seconds waited."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        ready = httpx.get(f"{platform.url}/api/v1/ready", timeout=5).json()
        warm = 0
        for w in ready.get("workers", []):
            info = httpx.get(f"{w['url']}/v1/info", timeout=5).json()
            warm = len(info.get("compiled_shapes", []))
        if warm >= want:
            return time.monotonic() - t0
        time.sleep(1)
    raise RuntimeError(f"compiled shapes not warm after {timeout}s")


def job_body(model: str, shape: Shape, seed: int, cfg_scale: float = 7.5) -> dict[str, Any]:
    return {
        "prompt": f"a photograph of a lighthouse, variant {seed}",
        "model": model,
        "width": shape.size,
        "height": shape.size,
        "steps": shape.steps,
        "cfg_scale": cfg_scale,
        "sampler": "euler_a",
        "seed": seed,
    }


async def one_job(client: httpx.AsyncClient, url: str, body: dict[str, Any]) -> None:
    r = await client.post(f"{url}/api/v1/generate", params={"wait": 300}, json=body)
    if r.status_code != 200 or r.json()["status"] != "completed":
        raise RuntimeError(f"job failed: {r.status_code} {r.text[:500]}")


async def latency(url: str, model: str, shape: Shape, reps: int) -> float:
    async with httpx.AsyncClient(timeout=600) as client:
        await one_job(client, url, job_body(model, shape, 1))  # warm: model resident, allocator warm
        times = []
        for i in range(reps):
            t0 = time.perf_counter()
            await one_job(client, url, job_body(model, shape, 10 + i))
            times.append(time.perf_counter() - t0)
    return statistics.median(times)


async def throughput(
    url: str, model: str, shape: Shape, clients: int, per_client: int, cfg_choices: Sequence[float] = ()
) -> float:
    """Images/s of ``clients`` concurrent clients; with ``cfg_choices`` each job draws its CFG scale from them
    (seeded by the job's seed, so every run submits the same workload)."""
    limits = httpx.Limits(max_connections=clients + 8, max_keepalive_connections=clients + 8)
    async with httpx.AsyncClient(timeout=900, limits=limits) as client:

        async def run_client(c: int) -> None:
            for j in range(per_client):
                seed = 100_000 + c * 1000 + j
                cfg = random.Random(seed).choice(cfg_choices) if cfg_choices else 7.5
                await one_job(client, url, job_body(model, shape, seed, cfg))

        await one_job(client, url, job_body(model, shape, 2))
        t0 = time.perf_counter()
        await asyncio.gather(*(run_client(c) for c in range(clients)))
        return clients * per_client / (time.perf_counter() - t0)
