"""Platform throughput on CPU with a tiny model: images/s with 16 concurrent clients submitting 1-image jobs
(same size/steps/sampler, different prompts and seeds), coalescing off vs on, measured in one run.

    .venv/bin/python benchmarks/throughput.py [--clients 16] [--per-client 4] [--scale 2] [--cfg-mix 5,7,9]

``--cfg-mix`` gives each job a CFG scale drawn from the list (a mixed workload); without it every job uses 7.5.

Each run starts a real gateway + worker process pair on loopback (SQLite store in a temp dir).
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
import tempfile
from pathlib import Path

from platform_util import Shape, latency, start_platform, throughput


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--per-client", type=int, default=4)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--scale", type=int, default=2, help="tiny model width multiplier (see testing/tiny.py)")
    ap.add_argument("--max-batch", type=int, default=8)
    ap.add_argument("--gather-ms", type=float, default=5.0)
    ap.add_argument("--cfg-mix", default="", help="comma-separated CFG scales each job draws from, e.g. 5,7,9")
    args = ap.parse_args()
    cfg_choices = [float(v) for v in args.cfg_mix.split(",") if v]

    from ablerefusal.testing.tiny import make_tiny

    work = Path(tempfile.mkdtemp(prefix="throughput-"))
    models_dir = work / "models"
    models_dir.mkdir()
    model = make_tiny(models_dir, "sd15", "diffusers", scale=args.scale).name
    shape = Shape("sd15", args.size, args.steps)
    results: dict[bool, tuple[float, float]] = {}
    per_call: dict[bool, float] = {}
    for coalesce in (False, True):
        platform = start_platform(
            work,
            models_dir,
            device="cpu",
            coalesce=coalesce,
            tag=f"coalesce-{coalesce}",
            gather_ms=args.gather_ms,
            max_batch=args.max_batch,
        )
        try:
            lat = asyncio.run(latency(platform.url, model, shape, 3))
            ips = asyncio.run(throughput(platform.url, model, shape, args.clients, args.per_client, cfg_choices))
        finally:
            platform.stop()
        results[coalesce] = (lat, ips)
        per_call[coalesce] = images_per_call(work / f"jobs-coalesce-{coalesce}.db")
        print(
            f"coalescing {'on ' if coalesce else 'off'}: {ips:6.2f} img/s, idle 1-image latency {lat:.3f} s, "
            f"{per_call[coalesce]:.2f} images per worker call"
        )
    off, on = results[False][1], results[True][1]
    print(f"workload: CFG {'from ' + args.cfg_mix if cfg_choices else '7.5 for every job'}")
    print(f"throughput ratio coalescing on/off with {args.clients} clients: {on / off:.2f}")
    print(f"latency ratio coalescing on/off (idle, 1 image): {results[True][0] / results[False][0]:.2f}")


def images_per_call(db: Path) -> float:
    """Images per worker call in the throughput phase (its seeds start at 100000), from the job store: a
    figure of how well jobs coalesce that does not depend on how busy the machine was."""
    with sqlite3.connect(db) as conn:
        images, calls = conn.execute(
            "SELECT count(*), count(DISTINCT json_extract(meta, '$.call_id')) FROM ar_job_results WHERE seed >= 100000"
        ).fetchone()
        if images and not calls:
            # A tree from before images carried their call_id (to measure "before" on it): the jobs of one call
            # were claimed together, so they share their start time.
            (calls,) = conn.execute(
                "SELECT count(DISTINCT j.started_at) FROM ar_jobs j JOIN ar_job_results r ON r.job_id = j.id "
                "WHERE r.seed >= 100000"
            ).fetchone()
    return float(images) / max(1, calls)


if __name__ == "__main__":
    main()
