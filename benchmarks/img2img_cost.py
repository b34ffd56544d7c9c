"""img2img cost vs txt2img: 4-step 64x64 calls on the worker's real engine (CPU), ratio of generate time.

img2img at strength s runs int(steps x s) denoising steps plus one VAE encode, so it should cost about s of a
txt2img call (a little more: the encode). Calls go through the worker's HTTP API in-process (validation,
image decoding and the pipeline derived with from_pipe included); the figure is the worker's own
``generate_s`` (denoise + VAE), medians over rounds that alternate the modes so background load hits all alike.

    python benchmarks/img2img_cost.py [--rounds 5] [--scale 4] [--steps 4]
"""

from __future__ import annotations

import argparse
import base64
import io
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from PIL import Image

from ablerefusal.protocol import parse_event
from ablerefusal.testing.tiny import make_tiny
from ablerefusal.worker.app import create_app
from ablerefusal.worker.settings import WorkerSettings


def generate_s(client: TestClient, body: dict[str, Any]) -> float:
    with client.stream("POST", "/v1/generate", json=body) as resp:
        if resp.status_code != 200:
            sys.exit(f"worker answered {resp.status_code}: {resp.read()!r}")
        events = [parse_event(line) for line in resp.iter_lines() if line]
    done = events[-1]
    if done.type != "done":
        sys.exit(f"call failed: {done}")
    return done.timings.generate_s


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--scale", type=int, default=4, help="tiny model channel multiplier")
    parser.add_argument("--steps", type=int, default=4)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="img2img-cost-"))
    make_tiny(work, "sd15", "diffusers", scale=args.scale)
    buf = io.BytesIO()
    Image.radial_gradient("L").convert("RGB").resize((64, 64)).save(buf, format="PNG")
    init = base64.b64encode(buf.getvalue()).decode()
    base = {"model": "tiny-sd15", "width": 64, "height": 64, "steps": args.steps, "sampler": "euler_a"}
    item = {"job_id": "bench", "prompt": "a lighthouse", "seeds": [7]}
    cases: dict[str, dict[str, Any]] = {"txt2img": {**base, "items": [item]}}
    for strength in (0.25, 0.5, 0.75, 1.0):
        cases[f"img2img s={strength}"] = {
            **base,
            "mode": "img2img",
            "denoising_strength": strength,
            "items": [{**item, "init_image": init}],
        }
    settings = WorkerSettings(models_dir=work, device="cpu", cache_size=1, worker_id="bench")
    times: dict[str, list[float]] = {name: [] for name in cases}
    with TestClient(create_app(settings)) as client:
        deadline = time.monotonic() + 300
        while client.get("/v1/ready").status_code != 200 and time.monotonic() < deadline:
            time.sleep(0.1)
        for body in cases.values():  # warm-up: model load, from_pipe, first-call allocations
            generate_s(client, body)
        for _ in range(args.rounds):
            for name, body in cases.items():
                times[name].append(generate_s(client, body))
    ref = statistics.median(times["txt2img"])
    print(f"{args.steps} steps, 64x64, tiny sd15 scale {args.scale}, {args.rounds} rounds (median generate_s)")
    for name, values in times.items():
        med = statistics.median(values)
        print(f"  {name:<16} {med * 1000:8.1f} ms   ratio to txt2img {med / ref:5.2f}")


if __name__ == "__main__":
    main()
