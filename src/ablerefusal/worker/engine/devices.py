"""Device and dtype policy: auto = CUDA fp16 → MPS fp32 → CPU fp32; CPU fallback only when allowed."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import torch

log = logging.getLogger(__name__)

_DTYPES = {"float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32}


class DeviceError(RuntimeError):
    """The configured device cannot be used and CPU fallback is not allowed."""


@dataclass(frozen=True)
class DeviceInfo:
    device: torch.device
    dtype: torch.dtype
    name: str
    fallback_reason: str | None = None

    @property
    def is_cuda(self) -> bool:
        return self.device.type == "cuda"


def _init_cuda(spec: str) -> torch.device:
    if not torch.cuda.is_available():
        raise DeviceError("CUDA is not available (no GPU, no driver, or a CPU build of torch)")
    device = torch.device("cuda:0" if spec in ("cuda", "auto") else spec)
    if device.index is not None and device.index >= torch.cuda.device_count():
        raise DeviceError(f"{spec}: only {torch.cuda.device_count()} CUDA device(s)")
    try:
        torch.zeros(1, device=device)  # forces context creation, where broken drivers fail
    except RuntimeError as exc:
        raise DeviceError(f"CUDA initialisation failed on {device}: {exc}") from exc
    return device


def _mps_available() -> bool:
    return bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available())


def resolve_device(spec: str, dtype: str = "auto", allow_cpu_fallback: bool = False) -> DeviceInfo:
    """Pick the device actually used; fp16 on CUDA, fp32 elsewhere unless ``dtype`` says otherwise."""
    fallback: str | None = None
    device: torch.device
    if spec == "cpu":
        device = torch.device("cpu")
    elif spec == "mps":
        if not _mps_available():
            if not allow_cpu_fallback:
                raise DeviceError("MPS is not available")
            fallback, device = "MPS is not available", torch.device("cpu")
        else:
            device = torch.device("mps")
    elif spec.startswith("cuda") or (spec == "auto" and torch.cuda.is_available()):
        try:
            device = _init_cuda(spec)
        except DeviceError as exc:
            if not allow_cpu_fallback:
                raise
            fallback, device = str(exc), torch.device("cpu")
            log.warning("falling back to CPU: %s", exc)
    elif _mps_available():
        device = torch.device("mps")
    else:
        device = torch.device("cpu")

    auto_dtype = torch.float16 if device.type == "cuda" else torch.float32
    chosen = _DTYPES[dtype] if dtype != "auto" else auto_dtype
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
    elif device.type == "mps":
        name = "Apple MPS"
    else:
        name = "CPU"
    return DeviceInfo(device=device, dtype=chosen, name=name, fallback_reason=fallback)


def memory_figures(info: DeviceInfo) -> dict[str, float]:
    if info.is_cuda:
        free, total = torch.cuda.mem_get_info(info.device)
        return {
            "allocated": float(torch.cuda.memory_allocated(info.device)),
            "reserved": float(torch.cuda.memory_reserved(info.device)),
            "free": float(free),
            "total": float(total),
        }
    return {}


def is_out_of_memory(exc: BaseException) -> bool:
    return isinstance(exc, torch.OutOfMemoryError) or "out of memory" in str(exc).lower()
