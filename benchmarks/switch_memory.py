"""Model-switch memory, in one process and fast: what the worker keeps per load/evict cycle.

    .venv/bin/python benchmarks/switch_memory.py [--cycles 200] [--every 20] [--cache-size 1] [--no-tracemalloc]
        [--leaky-reads] [--models-dir DIR]

A real ``WorkerService`` (CPU, the worker's own pipeline cache, loader and generation path, PNG encoding
included) in this process, over the two tiny models; each cycle runs one 64x64, 2-step call on tiny SD 1.5
then one on tiny SDXL, so with ``--cache-size 1`` every call evicts one pipeline and loads the other, as
``benchmarks/soak.py`` does every 10 jobs through real processes. Every ``--every`` cycles it prints:

- RSS (psutil) and glibc's own view (``mallinfo2``): bytes in use on the heap, and bytes free but kept in its
  arenas (what ``malloc_trim`` could hand back), to tell native growth from fragmentation;
- the Python heap (``tracemalloc``): total traced bytes and the lines whose allocations grew most since the
  first sample, to find a cache or registry that grows per switch.

The first sample is taken after ``--warm`` cycles (first loads warm imports, allocator pools and caches).
Growth per cycle is reported for the first and the second half of the run: it levels off when the second
half's is far below the first's. Bounded: a fixed number of cycles.
"""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import gc
import os
import re
import sys
import tempfile
import threading
import time
import tracemalloc
from dataclasses import dataclass
from pathlib import Path

import psutil


class _MallInfo2(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in (
            "arena",
            "ordblks",
            "smblks",
            "hblks",
            "hblkhd",
            "usmblks",
            "fsmblks",
            "uordblks",
            "fordblks",
            "keepcost",
        )
    ]


def _mallinfo2() -> tuple[int, int] | None:
    """(bytes in use, bytes free but kept) across glibc's arenas and mmapped chunks; None off glibc < 2.33."""
    try:
        fn = ctypes.CDLL("libc.so.6").mallinfo2
    except (OSError, AttributeError):
        return None
    fn.restype = _MallInfo2
    info = fn()
    return info.uordblks + info.hblkhd, info.fordblks


def _proc_status() -> dict[str, int]:
    """RssAnon / RssFile (bytes) and the number of memory mappings: a leak of mapped files or thread stacks
    shows there, not in malloc's figures."""
    out: dict[str, int] = {}
    with open("/proc/self/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("RssAnon", "RssFile"):
                out[key] = int(value.split()[0]) * 1024
    with open("/proc/self/maps") as f:
        out["maps"] = sum(1 for _ in f)
    out["threads"] = threading.active_count()
    return out


def _pymalloc() -> tuple[int, int]:
    """(bytes in pymalloc's arenas, bytes in blocks in use): CPython's small-object heap is mmapped in 1 MiB
    arenas outside glibc's figures. Read from ``sys._debugmallocstats``, which writes to fd 2."""
    with tempfile.TemporaryFile("w+") as out:
        saved = os.dup(2)
        try:
            sys.stderr.flush()
            os.dup2(out.fileno(), 2)
            sys._debugmallocstats()
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        out.seek(0)
        text = out.read()
    arenas = re.search(r"^(\d+) arenas \* (\d+) bytes/arena", text, re.M)
    used = re.search(r"^# bytes in allocated blocks\s*=\s*([\d,]+)", text, re.M)
    if arenas is None or used is None:
        return 0, 0
    return int(arenas[1]) * int(arenas[2]), int(used[1].replace(",", ""))


@dataclass
class Sample:
    cycle: int
    rss: int
    rss_anon: int
    rss_file: int
    maps: int
    threads: int
    py_arenas: int
    py_used: int
    heap_used: int
    heap_free: int
    traced: int
    snapshot: tracemalloc.Snapshot | None


def take(cycle: int) -> Sample:
    gc.collect()
    heap = _mallinfo2() or (0, 0)
    snapshot = tracemalloc.take_snapshot() if tracemalloc.is_tracing() else None
    traced = tracemalloc.get_traced_memory()[0] if tracemalloc.is_tracing() else 0
    status = _proc_status()
    py_arenas, py_used = _pymalloc()
    return Sample(
        cycle,
        psutil.Process().memory_info().rss,
        status["RssAnon"],
        status["RssFile"],
        status["maps"],
        status["threads"],
        py_arenas,
        py_used,
        heap[0],
        heap[1],
        traced,
        snapshot,
    )


def mib(n: float) -> str:
    return f"{n / 2**20:8.2f}"


def print_sample(s: Sample, first: Sample, elapsed: float) -> None:
    print(
        f"{s.cycle:6d} {elapsed:7.0f} {mib(s.rss)} {mib(s.rss - first.rss)} {mib(s.rss_anon)} {mib(s.rss_file)}"
        f" {s.maps:5d} {s.threads:3d} {mib(s.heap_used)} {mib(s.heap_free)} {mib(s.py_arenas)} {mib(s.py_used)}"
        f" {mib(s.traced)} {mib(s.traced - first.traced)}",
        flush=True,
    )


def print_growth(first: Sample, last: Sample, top: int) -> None:
    if first.snapshot is None or last.snapshot is None:
        return
    ignore = [
        tracemalloc.Filter(False, tracemalloc.__file__),
        tracemalloc.Filter(False, "<frozen importlib._bootstrap*"),
    ]
    stats = last.snapshot.filter_traces(ignore).compare_to(first.snapshot.filter_traces(ignore), "traceback")
    grew = [s for s in stats if s.size_diff > 0][:top]
    cycles = last.cycle - first.cycle
    print(f"Python heap: lines that grew most over cycles {first.cycle}..{last.cycle}:")
    for stat in grew:
        frames = stat.traceback.format(limit=4, most_recent_first=True)
        where = " <- ".join(line.strip() for line in frames if not line.startswith("    "))
        print(f"  {stat.size_diff / 1024:9.1f} KiB ({stat.size_diff / max(1, cycles):7.0f} B/cycle)"
              f" {stat.count_diff:+6d} blocks  {where}")  # fmt: skip


async def run_call(service: object, model: str, seed: int, size: int, steps: int) -> None:
    from ablerefusal.protocol import ErrorEvent, GenerateCall
    from ablerefusal.worker.service import WorkerService, is_end

    assert isinstance(service, WorkerService)
    call = GenerateCall.model_validate(
        {
            "model": model,
            "width": size,
            "height": size,
            "steps": steps,
            "cfg_scale": 7.5,
            "sampler": "euler_a",
            "items": [
                {"job_id": f"job-{seed}", "prompt": f"a photograph of a lighthouse, variant {seed}", "seeds": [seed]}
            ],
        }
    )
    checked = await asyncio.to_thread(service.validate, call)
    _, queue = service.begin(call, checked)
    while not is_end(event := await queue.get()):
        if isinstance(event, ErrorEvent):
            raise RuntimeError(f"call failed: {event.code}: {event.message}")


async def soak(args: argparse.Namespace, models_dir: Path) -> list[Sample]:
    from ablerefusal.worker.service import WorkerService
    from ablerefusal.worker.settings import WorkerSettings

    service = WorkerService(WorkerSettings(models_dir=models_dir, device="cpu", cache_size=args.cache_size))
    service.start()
    while not service.ready:
        if service.not_ready_reason and service.not_ready_reason.startswith("initialisation failed"):
            raise RuntimeError(service.not_ready_reason)
        await asyncio.sleep(0.05)
    models = ["tiny-sd15", "tiny-sdxl"]
    samples: list[Sample] = []
    t0 = time.monotonic()
    try:
        for cycle in range(args.warm + args.cycles + 1):
            if cycle == args.warm - 1 and args.tracemalloc:
                # A cycle before the first sample: its resident pipeline is then traced like every later one's,
                # while imports and first loads (not per-cycle) stay out.
                tracemalloc.start(args.frames)
            if cycle >= args.warm and (cycle - args.warm) % args.every == 0:
                samples.append(take(cycle - args.warm))
                print_sample(samples[-1], samples[0], time.monotonic() - t0)
            if cycle == args.warm + args.cycles:
                break
            for n, model in enumerate(models):
                await run_call(service, model, 2 * cycle + n, args.size, args.steps)
    finally:
        service.shutdown()
    return samples


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cycles", type=int, default=200, help="load/evict cycles measured (two model switches each)")
    ap.add_argument("--every", type=int, default=20, help="cycles between samples")
    ap.add_argument("--warm", type=int, default=5, help="cycles run before the first sample (at least 1)")
    ap.add_argument("--cache-size", type=int, default=1, help="pipelines kept resident (2: no switches, a control)")
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--steps", type=int, default=2)
    ap.add_argument("--no-tracemalloc", dest="tracemalloc", action="store_false", help="RSS only (no tracing cost)")
    ap.add_argument("--frames", type=int, default=8, help="tracemalloc frames kept per allocation")
    ap.add_argument("--top", type=int, default=12, help="growing lines shown")
    ap.add_argument(
        "--leaky-reads",
        action="store_true",
        help="keep safetensors' default mmap reads (which leak two ints per tensor): the control for the fix",
    )
    ap.add_argument("--models-dir", type=Path, help="an existing folder with tiny-sd15 and tiny-sdxl (else made)")
    args = ap.parse_args()
    args.warm = max(1, args.warm)

    import transformers

    transformers.logging.disable_progress_bar()  # one "Loading weights" bar per text encoder and load
    if args.leaky_reads:
        from ablerefusal.worker.engine import loading

        loading.read_safetensors_by_pread = lambda: None  # safetensors' default mmap reads, as before the fix
    models_dir = args.models_dir
    if models_dir is None:
        from ablerefusal.testing.tiny import make_tiny

        models_dir = Path(tempfile.mkdtemp(prefix="switch-memory-")) / "models"
        for family in ("sd15", "sdxl"):
            make_tiny(models_dir, family, "diffusers")
    malloc_env = {k: v for k, v in os.environ.items() if k.startswith(("MALLOC_", "GLIBC_TUNABLES"))}
    reads = "safetensors mmap reads (leaky control)" if args.leaky_reads else "the worker's pread reads"
    print(
        f"{args.cycles} cycles (+{args.warm} warm-up), cache size {args.cache_size}, {reads},"
        f" {malloc_env or 'default malloc'}"
    )
    columns = ("RSS", "ΔRSS", "anon", "file", "maps", "thr", "heap_use", "heapfree", "py_arena", "py_used")
    widths = (9, 9, 9, 9, 6, 4, 9, 9, 9, 9)
    print(f"{'cycle':>6} {'s':>7}" + "".join(f"{c:>{w}}" for c, w in zip(columns, widths, strict=True)), end="")
    print(f"{'traced':>9}{'Δtraced':>9}   (MiB; maps: mappings, thr: threads)")
    samples = asyncio.run(soak(args, models_dir))
    first, middle, last = samples[0], samples[len(samples) // 2], samples[-1]
    for name, attr in (
        ("RSS", "rss"),
        ("RSS anonymous", "rss_anon"),
        ("RSS file-backed", "rss_file"),
        ("glibc heap in use", "heap_used"),
        ("pymalloc arenas", "py_arenas"),
        ("pymalloc blocks in use", "py_used"),
        ("Python heap (traced)", "traced"),
    ):
        a, b, c = (getattr(s, attr) for s in (first, middle, last))
        per_a = (b - a) / max(1, middle.cycle - first.cycle) / 1024
        per_b = (c - b) / max(1, last.cycle - middle.cycle) / 1024
        print(f"{name}: start {mib(a)} MiB, middle {mib(b)} MiB, end {mib(c)} MiB;"
              f" per cycle first half {per_a:7.1f} KiB, second half {per_b:7.1f} KiB")  # fmt: skip
    # The second half: what still grows once allocators and caches are warm.
    print_growth(middle, last, args.top)


if __name__ == "__main__":
    main()
