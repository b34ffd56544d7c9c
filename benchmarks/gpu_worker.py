"""Seconds per image through the worker's engine vs. a plain diffusers pipeline call, on one device.

Builds a full-size SD 1.5 architecture with RANDOM weights from the bundled configs (no hub; timings do not
depend on weight values), saves it as a diffusers folder, loads it through the worker's registry, loader and
cache, and times ``runner.generate`` (the worker's generation path: per-image generators, prompt encoding,
progress callback) against ``pipe(...)`` on the same weights: 512x512, 20 steps, Euler a, CFG 7.5, fp16.
PNG encoding is timed apart: the worker does it beside the GPU loop.

    python benchmarks/gpu_worker.py            # CUDA box
    python benchmarks/gpu_worker.py --tiny     # end to end on CPU with tiny shapes (a smoke run)

Needs only torch, diffusers, transformers and this package.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from ablerefusal.protocol import GenerateCall, GenerateItem, ModelFamily
from ablerefusal.samplers import resolve_sampler, sampler_spec
from ablerefusal.testing.random_models import full_size_random_pipeline
from ablerefusal.testing.tiny import build_tiny_pipeline
from ablerefusal.worker.engine.cache import PipelineCache
from ablerefusal.worker.engine.devices import DeviceInfo, resolve_device
from ablerefusal.worker.engine.images import encode_png
from ablerefusal.worker.engine.loading import load_pipeline
from ablerefusal.worker.engine.registry import ModelRegistry
from ablerefusal.worker.engine.runner import CallControl, MemoryDefaults, generate

PROMPT = "a photograph of an astronaut riding a horse"


def full_size_sd15(device: DeviceInfo) -> Any:
    """SD 1.5 at full size, random weights, straight from the bundled component configs."""
    return full_size_random_pipeline(ModelFamily.sd15, device.device, device.dtype)


def sync(device: DeviceInfo) -> None:
    if device.is_cuda:
        torch.cuda.synchronize(device.device)


def time_it(fn: Any, device: DeviceInfo, repeats: int) -> float:
    runs = []
    for _ in range(repeats):
        sync(device)
        start = time.perf_counter()
        fn()
        sync(device)
        runs.append(time.perf_counter() - start)
    return statistics.median(runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tiny", action="store_true", help="CPU, tiny model, 64x64, 2 steps (smoke run).")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--compiled", action="store_true", help="Also time the engine's compiled mode (issue 6).")
    args = parser.parse_args()

    device = resolve_device("cpu" if args.tiny else "cuda")
    size, steps = (64, 2) if args.tiny else (512, 20)
    plain = build_tiny_pipeline(ModelFamily.sd15) if args.tiny else full_size_sd15(device)
    plain.set_progress_bar_config(disable=True)

    models = Path(tempfile.mkdtemp(prefix="gpu-worker-models-"))
    plain.save_pretrained(models / "random-sd15", safe_serialization=True)
    entry = ModelRegistry(models, [], allow_pickle=False).scan()["random-sd15"]
    cache = PipelineCache(1, device, lambda e: load_pipeline(e, device, allow_pickle=False))
    t0 = time.perf_counter()
    resident, _ = cache.get(entry)
    load_s = time.perf_counter() - t0
    plain = plain.to(device.device, device.dtype)
    sampler = sampler_spec(resolve_sampler("euler_a").id)
    defaults = MemoryDefaults(
        attention_slicing=False, vae_tiling=None, vae_tiling_min_pixels=1024 * 1024 + 1, cpu_offload=False
    )
    from diffusers import EulerAncestralDiscreteScheduler

    plain.scheduler = EulerAncestralDiscreteScheduler.from_config(plain.scheduler.config)

    def make_call(batch: int) -> GenerateCall:
        item = GenerateItem(job_id="bench", prompt=PROMPT, seeds=list(range(batch)))
        return GenerateCall(
            model=entry.id, width=size, height=size, steps=steps, cfg_scale=7.5, sampler=sampler.id, items=[item]
        )

    def engine_call(batch: int, unet: Any = None) -> Any:
        control = CallControl(call_id="bench", job_ids=["bench"], emit=lambda event: None)
        return generate(resident, make_call(batch), sampler, control, device, defaults, unet=unet)

    def plain_call(batch: int) -> Any:
        generator = torch.Generator(device=device.device).manual_seed(0)
        return plain(
            PROMPT,
            width=size,
            height=size,
            num_inference_steps=steps,
            guidance_scale=7.5,
            num_images_per_prompt=batch,
            generator=generator,
        ).images

    rows: dict[int, list[float]] = {}
    for batch in args.batches:
        engine_call(batch)  # warm-up: kernels, allocator, cuDNN autotune
        plain_call(batch)
        plain_s = time_it(lambda b=batch: plain_call(b), device, args.repeats)
        engine_s = time_it(lambda b=batch: engine_call(b), device, args.repeats)
        images = engine_call(batch)
        start = time.perf_counter()
        for generated in images:
            encode_png(generated.image, "bench", {}, compress_level=1)
        encode_s = (time.perf_counter() - start) / len(images)
        rows[batch] = [plain_s / batch, engine_s / batch, engine_s / plain_s, encode_s, float("nan")]

    if args.compiled:
        # After the eager rows: compiled mode also turns the shared UNet channels_last with fused QKV.
        from ablerefusal.worker.engine.compiled import CompiledUnets

        registry = ModelRegistry(models, [], allow_pickle=False)
        registry.scan()
        shapes = [f"{entry.id}:{size}x{size}:b{b}" for b in args.batches]
        compiler = CompiledUnets(registry, lambda e: cache.get(e)[0], device, shapes, "inductor", "reduce-overhead")
        start = time.perf_counter()
        compiler.start()
        compiler.join()
        print(f"compiled + warmed {compiler.warm_shapes()} in {time.perf_counter() - start:.1f} s {compiler.errors}")
        for batch in args.batches:
            unet = compiler.unet_for(entry.id, make_call(batch))
            # Compiled calls run on the compile thread: CUDA graph trees are thread-local.
            compiler.run(engine_call, batch, unet).result()
            seconds = compiler.run(time_it, lambda b=batch, u=unet: engine_call(b, u), device, args.repeats).result()
            rows[batch][4] = seconds / batch

    name = device.name
    kind = "tiny" if args.tiny else "full-size, random weights"
    dtype = str(device.dtype).removeprefix("torch.")
    print(f"device: {name} ({device.device}, {dtype}); SD 1.5 {kind}, {size}x{size}, {steps} steps, Euler a, CFG 7.5")
    print(f"engine load (registry + from_pretrained + to device): {load_s:.2f} s")
    header = ["batch", "plain s/img", "engine s/img", "engine/plain", "png s/img (off-loop)", "compiled s/img"]
    print(" ".join(f"{h:>{max(len(h), 6)}}" for h in header))
    for batch, values in rows.items():
        cells = [str(batch), *(f"{v:.4f}" for v in values)]
        print(" ".join(f"{c:>{max(len(h), 6)}}" for c, h in zip(cells, header, strict=True)))


if __name__ == "__main__":
    main()
