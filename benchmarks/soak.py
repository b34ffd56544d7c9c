"""Soak: many tiny jobs alternating between two models; the gateway's and the worker's resident memory (RSS)
and open file descriptors, sampled as the run goes. They should level off: growth from the middle to the
end well under growth from the start to the middle (the first jobs warm allocators, caches and pools).

    .venv/bin/python benchmarks/soak.py [--jobs 2000] [--switch-every 10] [--clients 4] [--cache-size 1]

A real gateway and its local worker (CPU, SQLite) on loopback. Jobs are submitted in order by ``--clients``
concurrent clients; job i asks for model (i // switch-every) % 2 (tiny SD 1.5, tiny SDXL). With
``--cache-size 1`` (the default) every switch evicts one pipeline and loads the other from disk, the path
most likely to leak; ``--cache-size 2`` keeps both resident and soaks the generation path alone.
Bounded: a fixed number of jobs, each waited for at most ``--job-timeout`` seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import psutil

from platform_util import Platform, Shape, job_body, one_job, start_platform


@dataclass
class Sample:
    done: int
    elapsed_s: float
    gateway_rss: int
    gateway_fds: int
    worker_pid: int
    worker_rss: int
    worker_fds: int


def worker_process(gateway: psutil.Process) -> psutil.Process:
    """The gateway's local worker: its only child running ``ablerefusal worker``."""
    for child in gateway.children(recursive=True):
        if "worker" in child.cmdline():
            return child
    raise RuntimeError("the gateway has no local worker process")


def sample(platform: Platform, done: int, t0: float) -> Sample:
    gateway = psutil.Process(platform.proc.pid)
    worker = worker_process(gateway)  # looked up each time: a restarted worker shows as a new pid
    return Sample(
        done=done,
        elapsed_s=time.monotonic() - t0,
        gateway_rss=gateway.memory_info().rss,
        gateway_fds=gateway.num_fds(),
        worker_pid=worker.pid,
        worker_rss=worker.memory_info().rss,
        worker_fds=worker.num_fds(),
    )


def mib(n: int) -> str:
    return f"{n / 2**20:7.1f}"


def print_sample(s: Sample) -> None:
    print(
        f"{s.done:6d} {s.elapsed_s:8.0f} {mib(s.gateway_rss)} {s.gateway_fds:5d}"
        f" {mib(s.worker_rss)} {s.worker_fds:5d} {s.worker_pid:8d}",
        flush=True,
    )


async def soak(platform: Platform, models: list[str], args: argparse.Namespace) -> list[Sample]:
    shape = Shape("mixed", args.size, args.steps)
    every = max(1, args.jobs // args.samples)
    samples: list[Sample] = []
    next_job = 0
    done = 0
    t0 = time.monotonic()
    limits = httpx.Limits(max_connections=args.clients + 4, max_keepalive_connections=args.clients + 4)
    async with httpx.AsyncClient(timeout=args.job_timeout, limits=limits) as client:
        # One job per model first: loading the weights the first time is not a leak.
        for m in models:
            await one_job(client, platform.url, job_body(m, shape, 1))
        samples.append(sample(platform, 0, t0))
        print_sample(samples[-1])

        async def run_client() -> None:
            nonlocal next_job, done
            while next_job < args.jobs:
                i, next_job = next_job, next_job + 1
                model = models[(i // args.switch_every) % len(models)]
                await one_job(client, platform.url, job_body(model, shape, 1000 + i))
                done += 1
                if done % every == 0 or done == args.jobs:
                    samples.append(sample(platform, done, t0))
                    print_sample(samples[-1])

        await asyncio.gather(*(run_client() for _ in range(args.clients)))
    return samples


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--jobs", type=int, default=2000)
    ap.add_argument("--switch-every", type=int, default=10, help="jobs in a row for one model before switching")
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--cache-size", type=int, default=1, help="pipelines the worker keeps resident")
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--steps", type=int, default=2)
    ap.add_argument("--samples", type=int, default=10, help="samples during the run (plus one at the start)")
    ap.add_argument("--job-timeout", type=float, default=600)
    args = ap.parse_args()

    from ablerefusal.testing.tiny import make_tiny

    work = Path(tempfile.mkdtemp(prefix="soak-"))
    models_dir = work / "models"
    models_dir.mkdir()
    models = [make_tiny(models_dir, family, "diffusers").name for family in ("sd15", "sdxl")]
    platform = start_platform(
        work,
        models_dir,
        device="cpu",
        coalesce=True,
        tag="soak",
        worker_args=["--cache-size", str(args.cache_size)],
    )
    print(f"{args.jobs} jobs, models {models}, switch every {args.switch_every}, cache size {args.cache_size}")
    print("  jobs  elapsed  gw_MiB gw_fd  wk_MiB wk_fd  wk_pid")
    try:
        samples = asyncio.run(soak(platform, models, args))
    finally:
        platform.stop()
    start, middle, end = samples[0], samples[len(samples) // 2], samples[-1]
    for name, attr in (("gateway RSS", "gateway_rss"), ("worker RSS", "worker_rss")):
        a, b, c = (getattr(s, attr) for s in (start, middle, end))
        print(f"{name}: start {mib(a)} MiB, middle {mib(b)} MiB, end {mib(c)} MiB;"
              f" growth start→middle {mib(b - a)} MiB, middle→end {mib(c - b)} MiB")  # fmt: skip
    for name, attr in (("gateway fds", "gateway_fds"), ("worker fds", "worker_fds")):
        a, b, c = (getattr(s, attr) for s in (start, middle, end))
        print(f"{name}: start {a}, middle {b}, end {c}")
    restarts = len({s.worker_pid for s in samples}) - 1
    print(f"worker restarts during the run: {restarts}; {end.elapsed_s:.0f} s, {args.jobs / end.elapsed_s:.2f} jobs/s")


if __name__ == "__main__":
    main()
