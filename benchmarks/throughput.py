"""Platform throughput on CPU with a tiny model: images/s with 16 concurrent clients submitting 1-image jobs
(same size/steps/sampler, different prompts and seeds), coalescing off vs on, measured in one run.

    .venv/bin/python benchmarks/throughput.py [--clients 16] [--per-client 4] [--scale 2]

Each run starts a real gateway + worker process pair on loopback (SQLite store in a temp dir).
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
from pathlib import Path

from platform_util import Shape, latency, start_platform, throughput


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--per-client", type=int, default=4)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--scale", type=int, default=2, help="tiny model width multiplier (see worker/tiny.py)")
    ap.add_argument("--max-batch", type=int, default=8)
    ap.add_argument("--gather-ms", type=float, default=5.0)
    args = ap.parse_args()

    from ablerefusal.worker.tiny import make_tiny

    work = Path(tempfile.mkdtemp(prefix="throughput-"))
    models_dir = work / "models"
    models_dir.mkdir()
    model = make_tiny(models_dir, "sd15", "diffusers", scale=args.scale).name
    shape = Shape("sd15", args.size, args.steps)
    results: dict[bool, tuple[float, float]] = {}
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
            ips = asyncio.run(throughput(platform.url, model, shape, args.clients, args.per_client))
        finally:
            platform.stop()
        results[coalesce] = (lat, ips)
        print(f"coalescing {'on ' if coalesce else 'off'}: {ips:6.2f} img/s, idle 1-image latency {lat:.3f} s")
    off, on = results[False][1], results[True][1]
    print(f"throughput ratio coalescing on/off with {args.clients} clients: {on / off:.2f}")
    print(f"latency ratio coalescing on/off (idle, 1 image): {results[True][0] / results[False][0]:.2f}")


if __name__ == "__main__":
    main()
