"""Worker configuration: ``WorkerSettings``, from a YAML file < ``ABLEREFUSAL_WORKER_*`` env < CLI flags.

The YAML file (``--config``) may be a worker-only file with a top-level ``worker:`` section holding these keys,
or the gateway's ``config.yaml``: without a ``worker:`` section the worker reads the gateway keys it shares
(``inference.device``, ``storage.models_dir``, every ``models.*`` key it knows, ``workers.token``), so one
file configures a whole single-box install; ``--config -`` reads the file from stdin (how a gateway hands its
configuration to its local workers). List values in the environment
are JSON, e.g. ``ABLEREFUSAL_WORKER_HUB_IDS='["stable-diffusion-v1-5/stable-diffusion-v1-5"]'``.
"""

from __future__ import annotations

import ipaddress
import re
import sys
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import Field, field_validator
from pydantic_settings import SettingsConfigDict

from ablerefusal.layered_settings import EnvOverFileSettings, InitOnlySettings
from ablerefusal.protocol import MAX_BATCH_SIZE

_DEVICE_RE = re.compile(r"^(auto|cpu|cuda|cuda:\d+|mps)$")
_SHAPE_RE = re.compile(r"^(?P<model>[^:]+):(?P<w>\d+)x(?P<h>\d+):b(?P<b>\d+)$")


class WorkerSettings(EnvOverFileSettings):
    model_config = SettingsConfigDict(env_prefix="ABLEREFUSAL_WORKER_", extra="forbid")

    worker_id: str | None = Field(None, description="Name reported in /v1/info; defaults to host:port.")
    host: str = Field("127.0.0.1", description="Bind address (loopback by default: the gateway is the client).")
    token: str | None = Field(
        None,
        description="Calls must carry 'Authorization: Bearer <token>' (401 otherwise; /v1/health stays open). "
        "Required to listen on a non-loopback address unless insecure is set.",
    )
    insecure: bool = Field(False, description="Allow listening on a non-loopback address without a token.")
    parent_pid: int | None = Field(
        None, ge=1, description="Exit when this process dies (a gateway sets it for the workers it starts)."
    )
    port: int = Field(8001, ge=0, le=65535, description="Bind port; 0 picks a free one.")
    device: str = Field("auto", description="auto|cpu|cuda|cuda:N|mps. auto: CUDA fp16, else MPS fp32, else CPU fp32.")
    dtype: str = Field("auto", description="auto|float16|bfloat16|float32; auto follows the device.")
    allow_cpu_fallback: bool = Field(
        False, description="Run on the CPU when the configured GPU cannot be initialised (reported in /v1/info)."
    )
    models_dir: Path = Field(
        Path("./models"), description="Folder scanned for diffusers folders and .safetensors files."
    )
    hub_ids: list[str] = Field(
        default_factory=list, description="Hugging Face repo ids offered (HF cache on first use)."
    )
    allow_pickle: bool = Field(False, description="Load .ckpt/.pt/.bin pickle checkpoints (unsafe: they can run code).")
    cache_size: int = Field(2, ge=1, description="Pipelines kept resident (LRU).")
    offload_idle: bool = Field(
        False, description="Move idle cached pipelines to CPU memory instead of keeping them on the GPU."
    )
    attention_slicing: bool = Field(False, description="Default for attention slicing (per call: MemoryOptions).")
    vae_tiling: bool | None = Field(None, description="Default VAE tiling; None = on automatically for large images.")
    vae_tiling_min_pixels: int = Field(
        1024 * 1024 + 1, ge=1, description="With vae_tiling=None, tile the VAE decode from this many pixels up."
    )
    cpu_offload: bool = Field(False, description="Default model CPU offload (CUDA only; per call: MemoryOptions).")
    max_batch_images: int = Field(MAX_BATCH_SIZE * 4, ge=1, description="Most images accepted in one call.")
    png_compress_level: int = Field(
        1,
        ge=0,
        le=9,
        # benchmarks/png_levels.py, 512x512 scene: level 1 20 ms/236 KiB, 4 34 ms/201 KiB, PIL's default 6
        # 96 ms/198 KiB. The encode sits on a lone job's latency path, so the fastest level that compresses.
        description="zlib level for PNGs (1: ~5x faster than PIL's default for ~20% larger files).",
    )
    encode_threads: int = Field(2, ge=1, description="Threads encoding PNGs beside the generation loop.")
    preload: list[str] = Field(default_factory=list, description="Model ids loaded at start, before /v1/ready.")
    compile: bool = Field(
        False, description="Compile the UNet (CUDA graphs, channels_last, fused QKV) for compile_shapes."
    )
    compile_backend: str = Field(
        "inductor", description="torch.compile backend (inductor on GPUs; 'eager' only traces)."
    )
    compile_mode: str = Field(
        "reduce-overhead", description="torch.compile mode for inductor (reduce-overhead = CUDA graphs)."
    )
    compile_shapes: list[str] = Field(
        default_factory=list, description="Shapes to compile and warm at start, as model:WxH:bN (e.g. sd15:512x512:b4)."
    )
    quantize: Literal["none", "int8wo", "int8dq", "fp8"] = Field(
        "none",
        description=(
            "torchao weight quantization of the UNet's linear layers at load: int8wo (int8 weights; text "
            "encoders too), int8dq (int8 weights and activations), fp8 (CUDA compute capability 8.9+ only)."
        ),
    )

    test_hold_dir: Path | None = Field(
        None,
        description=(
            "Tests only: a call whose prompt has @hold:NAME@ pauses after step 1 until <dir>/NAME exists "
            "(engine/holds.py). Unset on every real install."
        ),
    )

    @field_validator("token")
    @classmethod
    def _check_token(cls, value: str | None) -> str | None:
        # An unset shell variable gives "": that must not pass for a token.
        if value is not None and not value.strip():
            raise ValueError("must not be blank (unset it to run without a token)")
        return value

    @field_validator("device")
    @classmethod
    def _check_device(cls, value: str) -> str:
        if not _DEVICE_RE.match(value):
            raise ValueError("must be auto, cpu, cuda, cuda:N or mps")
        return value

    @field_validator("dtype")
    @classmethod
    def _check_dtype(cls, value: str) -> str:
        if value not in ("auto", "float16", "bfloat16", "float32"):
            raise ValueError("must be auto, float16, bfloat16 or float32")
        return value

    @field_validator("compile_shapes")
    @classmethod
    def _check_shapes(cls, value: list[str]) -> list[str]:
        for shape in value:
            if not _SHAPE_RE.match(shape):
                raise ValueError(f"{shape!r} is not model:WxH:bN")
        return value


class _ExplicitWorkerSettings(InitOnlySettings, WorkerSettings):
    """Validation only, no environment: the final merge of file+env values with CLI flags."""


def parse_shape(shape: str) -> tuple[str, int, int, int]:
    """``model:WxH:bN`` → (model, width, height, batch)."""
    m = _SHAPE_RE.match(shape)
    if m is None:
        raise ValueError(f"{shape!r} is not model:WxH:bN")
    return m["model"], int(m["w"]), int(m["h"]), int(m["b"])


def bind_refusal(settings: WorkerSettings) -> str | None:
    """Why the worker must not listen as configured, or None: anyone who reaches a non-loopback address could
    otherwise run calls on this GPU and read its models."""
    if settings.token or settings.insecure or _is_loopback(settings.host):
        return None
    return (
        f"refusing to listen on {settings.host} without a token: set --token (or ABLEREFUSAL_WORKER_TOKEN) and "
        "give the same token to the gateway (workers.token), or pass --insecure to accept calls from anyone"
    )


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _from_gateway_sections(data: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    inference, storage, models, workers = (data.get(k) or {} for k in ("inference", "storage", "models", "workers"))
    if "device" in inference:
        out["device"] = inference["device"]
    if "models_dir" in storage:
        out["models_dir"] = storage["models_dir"]
    # Every model setting the worker knows, by name: a key added to both sides needs no mapping here.
    out.update({key: value for key, value in models.items() if key in WorkerSettings.model_fields})
    if workers.get("token"):
        out["token"] = workers["token"]
    return out


def load_worker_settings(config: Path | None = None, overrides: dict[str, Any] | None = None) -> WorkerSettings:
    """YAML file (if any) < environment < ``overrides`` (CLI flags that were given)."""
    data: dict[str, Any] = {}
    if config is not None:
        loaded = yaml.safe_load(sys.stdin.read() if str(config) == "-" else config.read_text()) or {}
        if not isinstance(loaded, dict):
            raise ValueError(f"{config}: top level must be a mapping")
        section = loaded.get("worker")
        data = dict(section) if isinstance(section, dict) else _from_gateway_sections(loaded)
    settings = WorkerSettings(**data)
    if overrides:
        settings = _ExplicitWorkerSettings(**{**settings.model_dump(), **overrides})
    return settings
