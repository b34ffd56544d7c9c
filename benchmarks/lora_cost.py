"""LoRA cost on the worker: a job with a LoRA against a plain job, on first use (the LoRA file is loaded
onto the cached pipeline) and after (already loaded: only ``set_adapters``), on this machine's CPU.

    .venv/bin/python benchmarks/lora_cost.py [--family sd15] [--scale 4] [--size 128] [--steps 8] [--repeat 3]

Builds a tiny model (``scale`` widens it so a job takes a measurable time) and matching tiny LoRAs in a temp
dir, runs an in-process worker (its real HTTP app through Starlette's test client) and prints each kind of
job's median wall time and its ratio to a plain job. Figures are for the tiny model: the LoRA's share of the
work is of the same order as on a full-size one (it touches the same attention layers), its load time is not.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from ablerefusal.protocol import parse_event
from ablerefusal.testing.tiny import make_tiny
from ablerefusal.testing.tiny_adapters import make_tiny_lora
from ablerefusal.worker.app import create_app
from ablerefusal.worker.settings import WorkerSettings


def job(client: TestClient, model: str, size: int, steps: int, seed: int, loras: list[dict[str, Any]]) -> float:
    body = {
        "model": model, "width": size, "height": size, "steps": steps,
        "items": [{"job_id": f"j{seed}", "prompt": "a red cube on a table", "seeds": [seed]}], "loras": loras,
    }  # fmt: skip
    start = time.perf_counter()
    with client.stream("POST", "/v1/generate", json=body) as resp:
        if resp.status_code != 200:
            raise SystemExit(f"call failed: {resp.status_code} {resp.read()[:300]!r}")
        for line in resp.iter_lines():
            if line and parse_event(line).type == "error":
                raise SystemExit(f"call failed: {line}")
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--family", default="sd15", choices=["sd15", "sdxl"])
    parser.add_argument("--scale", type=int, default=4)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        models = Path(tmp)
        make_tiny(models, args.family, scale=args.scale)
        names = [f"bench-{n}" for n in range(args.repeat + 1)]
        for seed, name in enumerate(names):
            make_tiny_lora(models, args.family, "kohya", name=name, seed=seed, scale=args.scale)
        model = f"tiny-{args.family}"
        settings = WorkerSettings(models_dir=models, device="cpu", worker_id="bench", preload=[model])
        with TestClient(create_app(settings)) as client:
            while client.get("/v1/ready").status_code != 200:
                time.sleep(0.1)

            def run(loras: list[dict[str, Any]], seed: int) -> float:
                return job(client, model, args.size, args.steps, seed, loras)

            run([], 0)  # warm-up: first call pays one-off costs (allocator, kernels)
            plain, first, again, plain_after = [], [], [], []
            for r in range(args.repeat):
                plain.append(run([], 10 + r))
                # A LoRA never loaded before: each repeat uses a new file.
                first.append(run([{"name": names[r], "weight": 0.8}], 20 + r))
                again.append(run([{"name": names[r], "weight": 0.6}], 30 + r))
                plain_after.append(run([], 40 + r))
            service = client.app.state.service  # type: ignore[attr-defined]
            loads = service.cache.peek(model).lora_state.loads
    base = statistics.median(plain)
    print(f"{args.family} scale {args.scale}, {args.size}x{args.size}, {args.steps} steps, median of {args.repeat}")
    for label, times in (
        ("plain job", plain),
        ("LoRA job, first use (loads the file)", first),
        ("LoRA job, second use (loaded)", again),
        ("plain job after LoRA jobs", plain_after),
    ):
        median = statistics.median(times)
        print(f"  {label:40s} {median * 1000:8.1f} ms   x{median / base:.2f}")
    print(f"  LoRA files loaded: {loads} (one per new LoRA; none for the second use)")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
