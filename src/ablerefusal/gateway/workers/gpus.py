"""Which GPUs this machine has, found without importing torch (the gateway never does).

``CUDA_VISIBLE_DEVICES``, when set, is the operator's word and is taken as it is (indices or UUIDs; empty or
``-1`` means none). Otherwise ``nvidia-smi -L`` lists the devices. No NVIDIA driver, no GPUs: ``--workers
auto`` then means one CPU worker. Each local worker is pinned to one GPU by its own
``CUDA_VISIBLE_DEVICES``, so inside the worker that GPU is ``cuda:0``.
"""

from __future__ import annotations

import logging
import os
import re
import subprocess
from collections.abc import Callable, Mapping
from dataclasses import dataclass

log = logging.getLogger(__name__)

_SMI_LINE = re.compile(r"^GPU (\d+):")
NVIDIA_SMI_TIMEOUT_S = 10.0


def _run_nvidia_smi() -> str | None:
    try:
        done = subprocess.run(
            ["nvidia-smi", "-L"], capture_output=True, text=True, timeout=NVIDIA_SMI_TIMEOUT_S, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        log.info("no GPUs found: nvidia-smi did not run (%s)", exc)
        return None
    if done.returncode != 0:
        log.info("no GPUs found: nvidia-smi -L exited with %d: %s", done.returncode, done.stderr.strip()[:200])
        return None
    return done.stdout


def visible_gpus(
    env: Mapping[str, str] | None = None, nvidia_smi: Callable[[], str | None] = _run_nvidia_smi
) -> list[str]:
    """The GPUs local workers may use, as the ids ``CUDA_VISIBLE_DEVICES`` takes, in order."""
    environ = os.environ if env is None else env
    pinned = environ.get("CUDA_VISIBLE_DEVICES")
    if pinned is not None:
        ids = [part.strip() for part in pinned.split(",") if part.strip()]
        # CUDA stops at the first invalid entry; "-1" is the usual way to hide every GPU.
        return [] if not ids or ids[0] == "-1" else ids
    listing = nvidia_smi()
    if listing is None:
        return []
    return [m.group(1) for line in listing.splitlines() if (m := _SMI_LINE.match(line.strip()))]


@dataclass(frozen=True)
class LocalWorkerPlan:
    """One local worker: the GPU it is pinned to (None: no pinning) and the device it is told to use."""

    gpu: str | None
    device: str


def plan_local_workers(
    local: int | str, gpus: list[str] | None, device: str, discover: Callable[[], list[str]] = visible_gpus
) -> list[LocalWorkerPlan]:
    """``local`` workers (a count, or ``auto``: one per GPU), pinned to ``gpus`` (or those discovered).

    With a count and no GPU list, workers are not pinned and share ``device`` (the old behaviour, still what
    a CPU box or a single GPU wants). With GPUs, worker n gets GPU n (round-robin when there are more workers
    than GPUs) and ``cuda``, which its CUDA_VISIBLE_DEVICES turns into that GPU.
    """
    chosen = list(gpus) if gpus else (discover() if local == "auto" else [])
    if local == "auto":
        if not chosen:
            return [LocalWorkerPlan(gpu=None, device=device)]
        count = len(chosen)
    else:
        count = int(local)
    if not chosen:
        return [LocalWorkerPlan(gpu=None, device=device) for _ in range(count)]
    gpu_device = "cuda" if device in ("auto", "cuda") or device.startswith("cuda:") else device
    return [LocalWorkerPlan(gpu=chosen[n % len(chosen)], device=gpu_device) for n in range(count)]
