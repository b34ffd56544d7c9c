"""GPU benchmark: plain diffusers against the AbleRefusal platform, in one run on one GPU.

Builds full-size SD 1.5 / SDXL architectures with random weights from the configs bundled in the worker
(no hub; timings do not depend on weight values), then measures, in this order (most important first, each
section skipped when the time budget would be exceeded):

1. plain diffusers pipeline calls (fp16): SD 1.5 512² batch 1 and 4 images per call, SDXL 1024² batch 1;
   the same with torch.compile reduce-overhead (CUDA graphs) + channels_last + fused QKV;
2. the worker's engine in-process (issue 2's check): seconds per 512² image at 20 steps next to (1);
3. the platform end to end (gateway + worker processes on loopback, HTTP submit → PNG on disk → completed):
   latency of one 1-image job on an idle platform, throughput with 32 concurrent clients, coalescing on/off,
   compiled on/off;
4. the platform's SDXL latency: one 1-image 1024² job on an idle platform (compiled for that shape unless
   ``--no-compile``) next to plain diffusers SDXL b1 from (1); skipped with ``--no-sdxl``;
5. quantized weights (``--quantize-modes none,int8wo,int8dq,fp8``), SD 1.5 and SDXL, in the worker's engine:
   seconds per image, peak GPU memory, and the mean absolute pixel difference (0–255) from the unquantized
   images of the same seeds. A mode the device cannot run (fp8 below compute capability 8.9) is reported with
   the worker's reason.

Prints a table of absolute figures and ratios with the GPU's name. ``--tiny`` runs everything on CPU with
tiny shapes so the script itself is tested end to end without a GPU.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from platform_util import Platform, Shape, latency, start_platform, throughput, wait_compiled


@dataclass
class Report:
    device_name: str = ""
    rows: list[tuple[str, str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, name: str, value: str, ratio: str = "") -> None:
        self.rows.append((name, value, ratio))
        print(f"  {name:<62} {value:>18} {ratio}", flush=True)

    def print(self) -> None:
        print(f"\n=== gpu_bench on {self.device_name} ===")
        width = max(len(r[0]) for r in self.rows) if self.rows else 10
        for name, value, ratio in self.rows:
            print(f"{name:<{width}}  {value:>18}  {ratio}")
        for note in self.notes:
            print(f"note: {note}")


class Budget:
    def __init__(self, seconds: float) -> None:
        self.end = time.monotonic() + seconds

    def left(self) -> float:
        return self.end - time.monotonic()

    def allows(self, seconds: float) -> bool:
        return self.left() > seconds


# ------------------------------------------------------------------------------------------------
# 1. plain diffusers


def build_pipeline(family: str, tiny: bool, device: str, dtype: Any) -> Any:
    """A full-size (or tiny) pipeline with random weights, built directly on the device."""
    if tiny:
        from ablerefusal.testing.tiny import build_tiny_pipeline

        pipe = build_tiny_pipeline(family).to(device=device, dtype=dtype)
        pipe.set_progress_bar_config(disable=True)
        return pipe
    from ablerefusal.testing.random_models import full_size_random_pipeline

    return full_size_random_pipeline(family, device, dtype)


def sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def time_calls(fn: Callable[[], Any], device: str, warmup: int, reps: int) -> float:
    """Median seconds of ``reps`` calls after ``warmup`` calls."""
    for _ in range(warmup):
        fn()
    sync(device)
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def plain_call(pipe: Any, shape: Shape, n: int, device: str) -> Callable[[], Any]:
    import torch

    prompts = [f"a photograph of a lighthouse, variant {i}" for i in range(n)]
    gens = [torch.Generator(device).manual_seed(1000 + i) for i in range(n)]

    def call() -> Any:
        return pipe(
            prompt=prompts,
            negative_prompt=[""] * n,
            width=shape.size,
            height=shape.size,
            num_inference_steps=shape.steps,
            guidance_scale=7.5,
            generator=gens,
            output_type="pil",
        )

    return call


def compile_pipeline(pipe: Any) -> None:
    """torch.compile reduce-overhead (CUDA graphs) + channels_last + fused QKV: the standard recipe."""
    import torch

    pipe.fuse_qkv_projections()
    pipe.unet.to(memory_format=torch.channels_last)
    pipe.vae.to(memory_format=torch.channels_last)
    pipe.unet = torch.compile(pipe.unet, mode="reduce-overhead", fullgraph=True)
    pipe.vae.decode = torch.compile(pipe.vae.decode, mode="reduce-overhead", fullgraph=True)


def bench_plain(args: argparse.Namespace, report: Report, budget: Budget, base: dict[str, float]) -> None:
    import torch

    dtype = torch.float16 if args.device.startswith("cuda") else torch.float32
    sd15 = Shape("sd15", 64 if args.tiny else 512, args.steps)
    sdxl = Shape("sdxl", 64 if args.tiny else 1024, args.steps)

    pipe = build_pipeline("sd15", args.tiny, args.device, dtype)
    t1 = time_calls(plain_call(pipe, sd15, 1, args.device), args.device, 1, args.reps)
    base["sd15_b1"] = t1
    report.add("plain diffusers SD1.5 b1 (s/image)", f"{t1:.3f}", f"{1 / t1:.2f} img/s")
    t4 = time_calls(plain_call(pipe, sd15, 4, args.device), args.device, 1, args.reps)
    base["sd15_b4_ips"] = 4 / t4
    report.add("plain diffusers SD1.5 4 images/call (img/s)", f"{4 / t4:.2f}", "")

    if args.plain_compile and budget.allows(150):
        compile_pipeline(pipe)
        t0 = time.perf_counter()
        c1 = time_calls(plain_call(pipe, sd15, 1, args.device), args.device, 2, args.reps)
        c4 = time_calls(plain_call(pipe, sd15, 4, args.device), args.device, 2, args.reps)
        report.notes.append(f"plain compile warm-up incl. measurement: {time.perf_counter() - t0:.0f}s")
        base["sd15_b1_compiled"] = c1
        report.add("compiled diffusers SD1.5 b1 (s/image)", f"{c1:.3f}", f"x{t1 / c1:.2f} vs plain")
        report.add("compiled diffusers SD1.5 4 images/call (img/s)", f"{4 / c4:.2f}", f"x{t4 / c4:.2f} vs plain")
    del pipe
    if args.device.startswith("cuda"):
        torch.cuda.empty_cache()

    if args.sdxl and budget.allows(120):
        xl = build_pipeline("sdxl", args.tiny, args.device, dtype)
        x1 = time_calls(plain_call(xl, sdxl, 1, args.device), args.device, 1, args.reps)
        base["sdxl_b1"] = x1
        report.add("plain diffusers SDXL b1 (s/image)", f"{x1:.3f}", "")
        if args.plain_compile and budget.allows(200):
            compile_pipeline(xl)
            cx = time_calls(plain_call(xl, sdxl, 1, args.device), args.device, 2, args.reps)
            report.add("compiled diffusers SDXL b1 (s/image)", f"{cx:.3f}", f"x{x1 / cx:.2f} vs plain")
        del xl
        if args.device.startswith("cuda"):
            torch.cuda.empty_cache()


# ------------------------------------------------------------------------------------------------
# 2 + 3. the platform


_SAVED: dict[str, tuple[Path, str]] = {}


def save_model(family: str, args: argparse.Namespace, models_dir: Path) -> str:
    """Write a random-weight model as a diffusers folder the worker's registry picks up; returns its id.
    A model already written into the same folder by another section is reused."""
    import torch

    if family in _SAVED and _SAVED[family][0].parent == models_dir:
        return _SAVED[family][1]

    name = f"random-{family}"
    if args.tiny:
        from ablerefusal.testing.tiny import make_tiny

        path = make_tiny(models_dir, family, "diffusers")
        _SAVED[family] = (path, path.name)
        return path.name
    dtype = torch.float16 if args.device.startswith("cuda") else torch.float32
    pipe = build_pipeline(family, False, args.device, dtype)
    pipe.save_pretrained(models_dir / name, safe_serialization=True)
    _SAVED[family] = (models_dir / name, name)
    del pipe
    if args.device.startswith("cuda"):
        torch.cuda.empty_cache()
    return name


WORK = Path(tempfile.mkdtemp(prefix="gpu-bench-"))
MODELS_DIR = WORK / "models"


def launch(args: argparse.Namespace, *, coalesce: bool, tag: str, shapes: list[str], model: str) -> Platform:
    """Gateway + worker on this run's models folder, device and queue settings, ``model`` loaded before ready
    so that no measured job pays for reading the weights."""
    return start_platform(
        WORK,
        MODELS_DIR,
        device=args.device,
        coalesce=coalesce,
        tag=tag,
        compile_shapes=shapes,
        preload=[model],
        gather_ms=args.gather_ms,
        max_batch=args.max_batch,
        start_timeout=args.start_timeout,
    )


def bench_platform(args: argparse.Namespace, report: Report, budget: Budget, base: dict[str, float]) -> None:
    models_dir = MODELS_DIR
    models_dir.mkdir(exist_ok=True)
    sd15 = Shape("sd15", 64 if args.tiny else 512, args.steps)
    model = save_model("sd15", args, models_dir)
    # Most telling first: the serial baseline, then the compiled + coalesced platform, then eager coalesced.
    runs: list[tuple[str, bool, list[str]]] = [("eager, coalescing off", False, [])]
    if args.compile:
        b = [1, args.max_batch]
        runs.append(("compiled, coalescing on", True, [f"{model}:{sd15.size}x{sd15.size}:b{n}" for n in b]))
    runs.append(("eager, coalescing on", True, []))
    for label, coalesce, shapes in runs:
        if not budget.allows(60 + (120 if shapes else 0)):
            report.notes.append(f"skipped platform run '{label}': time budget")
            continue
        tag = label.replace(" ", "").replace(",", "-")
        platform = launch(args, coalesce=coalesce, tag=tag, shapes=shapes, model=model)
        try:
            if shapes:
                try:
                    waited = wait_compiled(platform, len(shapes), min(budget.left() - 60, 300))
                    report.notes.append(f"'{label}': compiled shapes warm after {waited:.0f}s")
                except RuntimeError as exc:  # measured anyway: calls run eager until their shape is warm
                    report.notes.append(f"'{label}': {exc}")
            lat = asyncio.run(latency(platform.url, model, sd15, args.reps))
            ref = base.get("sd15_b1")
            report.add(f"platform latency SD1.5 1 image [{label}] (s)", f"{lat:.3f}",
                       f"x{lat / ref:.2f} of plain b1" if ref else "")  # fmt: skip
            ips = asyncio.run(throughput(platform.url, model, sd15, args.clients, args.per_client))
            serial = 1 / ref if ref else None
            ratio = f"x{ips / serial:.2f} of plain serial" if serial else ""
            if "sd15_b4_ips" in base:
                ratio += f", x{ips / base['sd15_b4_ips']:.2f} of plain 4/call"
            report.add(f"platform throughput {args.clients} clients [{label}] (img/s)", f"{ips:.2f}", ratio)
        except Exception as exc:
            report.notes.append(f"platform run '{label}' failed: {exc!r}; log tail: {platform.log.read_text()[-1500:]}")
        finally:
            platform.stop()


def bench_platform_sdxl(args: argparse.Namespace, report: Report, budget: Budget, base: dict[str, float]) -> None:
    """Issue 6's SDXL latency target: one 1-image 1024² job on an idle platform, against plain diffusers."""
    if not args.sdxl:
        report.notes.append("skipped platform SDXL latency: --no-sdxl")
        return
    # Saving a full-size SDXL (~7 GB) and loading it take roughly a minute; compiling and warming 1024² b1 ~2 more.
    compiled = args.compile and budget.allows(240)
    if not compiled and not budget.allows(90):
        report.notes.append("skipped platform SDXL latency: time budget")
        return
    if args.compile and not compiled:
        report.notes.append("platform SDXL latency measured eager: time budget too short to compile")
    models_dir = MODELS_DIR
    models_dir.mkdir(exist_ok=True)
    sdxl = Shape("sdxl", 64 if args.tiny else 1024, args.steps)
    model = save_model("sdxl", args, models_dir)
    shapes = [f"{model}:{sdxl.size}x{sdxl.size}:b1"] if compiled else []
    label = "compiled" if compiled else "eager"
    platform = launch(args, coalesce=True, tag=f"sdxl-{label}", shapes=shapes, model=model)
    try:
        if shapes:
            try:
                waited = wait_compiled(platform, len(shapes), min(budget.left() - 45, 300))
                report.notes.append(f"'SDXL {label}': compiled shape warm after {waited:.0f}s")
            except RuntimeError as exc:  # measured anyway, but eager until the shape is warm: the row says so
                label = "compiled, not warm in time"
                report.notes.append(f"'SDXL compiled': {exc}")
        lat = asyncio.run(latency(platform.url, model, sdxl, args.reps))
        ref = base.get("sdxl_b1")
        report.add(f"platform latency SDXL {sdxl.size}² 1 image [{label}] (s)", f"{lat:.3f}",
                   f"x{lat / ref:.2f} of plain b1" if ref else "")  # fmt: skip
    except Exception as exc:
        report.notes.append(f"platform SDXL '{label}' failed: {exc!r}; log tail: {platform.log.read_text()[-1500:]}")
    finally:
        platform.stop()


@dataclass
class EngineRun:
    seconds: float  # median per 1-image call
    images: list[bytes]  # the PNGs of the timed calls, in seed order
    peak_bytes: int | None  # peak GPU memory allocated (None on CPU)


def engine_seconds_per_image(models_dir: Path, model: str, device: str, size: int, steps: int, reps: int) -> float:
    """Median wall time of a 1-image call through the worker's service object (the code behind /v1/generate):
    validation, device lock, generation thread, PNG encoding and the event stream, without HTTP."""
    return engine_run(models_dir, model, device, size, steps, reps).seconds


def engine_run(
    models_dir: Path, model: str, device: str, size: int, steps: int, reps: int, quantize: str = "none"
) -> EngineRun:
    """``engine_seconds_per_image`` with the images and the peak GPU memory, for a worker with ``quantize``."""
    import base64

    import torch

    from ablerefusal.protocol import DoneEvent, ErrorEvent, GenerateCall, GenerateItem, ImageEvent
    from ablerefusal.worker.service import WorkerService, is_end
    from ablerefusal.worker.settings import WorkerSettings

    cuda = device.startswith("cuda")
    if cuda:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    settings = WorkerSettings(models_dir=models_dir, device=device, port=0, preload=[model], quantize=quantize)
    svc = WorkerService(settings)
    svc.start()
    deadline = time.monotonic() + 300
    while not svc.ready:
        reason = svc.not_ready_reason or ""
        if time.monotonic() > deadline or reason.startswith("initialisation failed"):
            svc.shutdown()
            raise RuntimeError(f"worker engine not ready: {reason}")
        time.sleep(0.2)
    images: dict[int, bytes] = {}

    async def one(seed: int) -> float:
        call = GenerateCall(
            model=model,
            width=size,
            height=size,
            steps=steps,
            cfg_scale=7.5,
            sampler="euler_a",
            items=[GenerateItem(job_id=f"bench-{seed}", prompt=f"a lighthouse, variant {seed}", seeds=[seed])],
        )
        t0 = time.perf_counter()
        _, queue = svc.begin(call)
        done = False
        while True:
            event = await queue.get()
            if isinstance(event, ErrorEvent):
                raise RuntimeError(f"engine error: {event.message}")
            if isinstance(event, ImageEvent):
                images[seed] = base64.b64decode(event.png_base64)
            if is_end(event):  # after `done`, once every image of the call is encoded
                if not done:
                    raise RuntimeError("engine stream ended without a done event")
                return time.perf_counter() - t0
            done = done or isinstance(event, DoneEvent)

    async def run() -> float:
        await one(1)
        return statistics.median([await one(10 + i) for i in range(reps)])

    try:
        seconds = asyncio.run(run())
    finally:
        svc.shutdown()
    peak = int(torch.cuda.max_memory_allocated()) if cuda else None
    return EngineRun(seconds, [images[10 + i] for i in range(reps)], peak)


def mean_abs_pixel_diff(a: list[bytes], b: list[bytes]) -> float:
    """Mean absolute difference of two lists of same-size PNGs, on the 0–255 scale."""
    import io

    import numpy as np
    from PIL import Image

    def pixels(png: bytes) -> Any:
        return np.asarray(Image.open(io.BytesIO(png)).convert("RGB"), dtype=np.int16)

    return float(np.mean([np.abs(pixels(x) - pixels(y)).mean() for x, y in zip(a, b, strict=True)]))


def bench_quantize(args: argparse.Namespace, report: Report, budget: Budget, base: dict[str, float]) -> None:
    """Issue 14's quantized weights: speed, peak memory and closeness to the unquantized images, per mode."""
    models_dir = MODELS_DIR
    models_dir.mkdir(exist_ok=True)
    modes = [m for m in args.quantize_modes.split(",") if m]
    families = ["sd15", "sdxl"] if args.sdxl else ["sd15"]
    for family in families:
        size = 64 if args.tiny else (1024 if family == "sdxl" else 512)
        model = save_model(family, args, models_dir)
        reference: EngineRun | None = None
        for mode in ["none", *[m for m in modes if m != "none"]]:
            if not budget.allows(90 if family == "sdxl" else 45):
                report.notes.append(f"skipped quantize {family} {mode}: time budget")
                continue
            label = f"engine {family} {size}² quantize={mode}"
            try:
                run = engine_run(models_dir, model, args.device, size, args.steps, args.reps, quantize=mode)
            except RuntimeError as exc:
                report.notes.append(f"{label}: {exc}")
                continue
            peak = f", peak {run.peak_bytes / 2**30:.2f} GiB" if run.peak_bytes is not None else ""
            if reference is None:
                reference = run
                report.add(f"{label} (s/image)", f"{run.seconds:.3f}", peak.removeprefix(", "))
                continue
            diff = mean_abs_pixel_diff(reference.images, run.images)
            ratio = f"x{run.seconds / reference.seconds:.2f} of none{peak}, mean |Δpixel| {diff:.2f}"
            report.add(f"{label} (s/image)", f"{run.seconds:.3f}", ratio)


def bench_engine(args: argparse.Namespace, report: Report, budget: Budget, base: dict[str, float]) -> None:
    """Issue 2's check: the worker's engine in-process against the plain pipeline call above."""
    models_dir = MODELS_DIR
    models_dir.mkdir(exist_ok=True)
    sd15 = Shape("sd15", 64 if args.tiny else 512, args.steps)
    model = save_model("sd15", args, models_dir)
    secs = engine_seconds_per_image(models_dir, model, args.device, sd15.size, sd15.steps, args.reps)
    ref = base.get("sd15_b1")
    report.add("worker engine SD1.5 b1 (s/image)", f"{secs:.3f}", f"x{secs / ref:.2f} of plain" if ref else "")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tiny", action="store_true", help="CPU, tiny shapes: checks the script end to end")
    ap.add_argument("--device", default=None)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--clients", type=int, default=32)
    ap.add_argument("--per-client", type=int, default=4)
    ap.add_argument("--max-batch", type=int, default=8)
    ap.add_argument("--gather-ms", type=float, default=5.0)
    ap.add_argument("--budget-s", type=float, default=450)
    ap.add_argument("--start-timeout", type=float, default=180)
    ap.add_argument("--no-compile", dest="compile", action="store_false", help="skip the compiled platform run")
    ap.add_argument("--plain-compile", action="store_true", help="also time torch.compile on plain diffusers")
    ap.add_argument("--no-sdxl", dest="sdxl", action="store_false")
    ap.add_argument("--sections", default="plain,engine,platform,platform_sdxl,quantize")
    ap.add_argument("--quantize-modes", default="none,int8wo,int8dq,fp8", help="modes of the quantize section")
    args = ap.parse_args()
    import torch

    if args.device is None:
        args.device = "cpu" if args.tiny else "cuda"
    if args.tiny:
        args.steps = min(args.steps, 2)
        args.clients = min(args.clients, 4)
        args.per_client = min(args.per_client, 2)
        args.compile = False
        args.plain_compile = False
    report = Report(torch.cuda.get_device_name(0) if args.device.startswith("cuda") else "cpu")
    budget = Budget(args.budget_s)
    base: dict[str, float] = {}
    sections = {
        "plain": bench_plain,
        "engine": bench_engine,
        "platform": bench_platform,
        "platform_sdxl": bench_platform_sdxl,
        "quantize": bench_quantize,
    }
    for name in args.sections.split(","):
        t0 = time.perf_counter()
        try:
            sections[name](args, report, budget, base)
        except Exception as exc:  # one broken section must not lose the others' figures
            report.notes.append(f"section {name} failed: {exc!r}")
        report.notes.append(f"section {name}: {time.perf_counter() - t0:.0f}s")
    report.print()


if __name__ == "__main__":
    main()
