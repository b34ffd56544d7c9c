"""Gateway configuration: one ``Settings`` object from ``config.yaml`` (the seed's shape plus our sections),
overridden by ``ABLEREFUSAL_<SECTION>__<KEY>`` environment variables, overridden by CLI flags.

Defaults are safe: loopback bind, SQLite under ./data, CORS off, no pickle loading.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, Field
from pydantic_settings import SettingsConfigDict

from ablerefusal.layered_settings import EnvOverFileSettings, InitOnlySettings


class ServerSettings(BaseModel):
    host: str = Field("127.0.0.1", description="Bind address; non-loopback needs API keys or --insecure.")
    port: int = Field(8080, ge=1, le=65535, description="Bind port.")
    enable_cors: bool = Field(False, description="Send CORS headers for cors_origins.")
    cors_origins: list[str] = Field(default_factory=list, description="Allowed origins when CORS is on.")
    cors_allow_credentials: bool = Field(False, description="Access-Control-Allow-Credentials.")
    cors_methods: list[str] = Field(default_factory=lambda: ["GET", "POST", "DELETE"], description="Allowed methods.")
    cors_headers: list[str] = Field(
        default_factory=lambda: ["Authorization", "Content-Type", "Idempotency-Key"], description="Allowed headers."
    )
    max_body_bytes: int = Field(
        8_000_000, ge=1024, description="Largest request body accepted (413 beyond); png-info bodies carry whole PNGs."
    )
    public_url: str | None = Field(None, description="Absolute base URL for links (OpenAI url responses).")
    web_dir: Path | None = Field(None, description="Static web UI folder; defaults to the repo's web/out.")


class InferenceSettings(BaseModel):
    python_service_url: str | None = Field(
        None, description="Seed's single remote worker URL (same as one workers.urls entry)."
    )
    device: str = Field("auto", description="Device for local workers: auto|cpu|cuda|cuda:N|mps.")
    max_batch_size: int = Field(4, ge=1, le=16, description="Most images coalesced into one worker call.")
    default_model: str | None = Field(None, description="Model used when a request names none.")
    default_hub_model: str = Field(
        "stable-diffusion-v1-5/stable-diffusion-v1-5", description="Hub repo id fetched on first use by make run."
    )


class StorageSettings(BaseModel):
    output_dir: Path = Field(Path("./outputs"), description="Where images are written, by job id.")
    models_dir: Path = Field(Path("./models"), description="Where workers look for models.")
    database_url: str = Field(
        "sqlite:///./data/ablerefusal.db", description="sqlite:///path or postgresql://user@host/db job store."
    )


class QueueSettings(BaseModel):
    max_queue_length: int = Field(1000, ge=1, description="Queued jobs beyond which submit answers 429.")
    max_prompt_length: int = Field(2000, ge=1, description="Longest prompt accepted, in characters.")
    default_timeout_s: float = Field(600.0, gt=0, description="Job deadline; a request may only lower it.")
    max_attempts: int = Field(3, ge=1, description="Starts before a retryable failure becomes final.")
    backoff_base_s: float = Field(1.0, ge=0, description="First retry delay; doubles per attempt, with jitter.")
    backoff_max_s: float = Field(30.0, ge=0, description="Largest retry delay.")
    lease_s: float = Field(15.0, gt=0, description="A running job's lease; renewed while it runs.")
    gather_window_ms: float = Field(5.0, ge=0, description="How long dispatch waits to coalesce compatible jobs.")
    coalesce: bool = Field(True, description="Batch compatible queued jobs into one worker call.")
    max_priority_skip_s: float = Field(
        2.0, ge=0, description="Longest a higher-priority incompatible job may be passed over for the loaded model."
    )
    retry_after_s: int = Field(5, ge=1, description="Retry-After sent with 429.")
    poll_interval_s: float = Field(0.05, gt=0, description="Dispatcher idle poll interval (other gateways' jobs).")


class WorkersSettings(BaseModel):
    local: int = Field(1, ge=0, description="Local worker processes to spawn and supervise.")
    urls: list[str] = Field(default_factory=list, description="Remote worker base URLs.")
    base_port: int = Field(8001, ge=1, le=65535, description="Port of the first local worker.")
    max_concurrent: int = Field(
        1,
        ge=1,
        description="Generation calls per worker still using its device (a call whose images are only being "
        "encoded, after the worker's `generated` event, no longer counts).",
    )
    probe_interval_s: float = Field(2.0, gt=0, description="Health probe interval.")
    restart_backoff_s: float = Field(1.0, gt=0, description="First restart delay of a crashed local worker.")
    restart_backoff_max_s: float = Field(30.0, gt=0, description="Largest restart delay.")
    stop_timeout_s: float = Field(10.0, gt=0, description="SIGTERM → SIGKILL grace on shutdown.")
    extra_args: list[str] = Field(default_factory=list, description="Extra CLI args for local workers.")


class AuthSettings(BaseModel):
    api_keys: list[str] = Field(default_factory=list, description="Accepted Bearer keys; empty = no auth.")


class ModelsSettings(BaseModel):
    hub_ids: list[str] = Field(default_factory=list, description="Hugging Face repo ids to offer.")
    allow_pickle: bool = Field(False, description="Load .ckpt/.pt/.bin pickles (unsafe).")
    cache_size: int = Field(2, ge=1, description="Pipelines kept resident per worker.")


class Settings(EnvOverFileSettings):
    model_config = SettingsConfigDict(env_prefix="ABLEREFUSAL_", env_nested_delimiter="__", extra="ignore")

    server: ServerSettings = Field(default_factory=ServerSettings)
    inference: InferenceSettings = Field(default_factory=InferenceSettings)
    storage: StorageSettings = Field(default_factory=StorageSettings)
    queue: QueueSettings = Field(default_factory=QueueSettings)
    workers: WorkersSettings = Field(default_factory=WorkersSettings)
    auth: AuthSettings = Field(default_factory=AuthSettings)
    models: ModelsSettings = Field(default_factory=ModelsSettings)


def _deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = value
    return out


class _FlagSettings(InitOnlySettings, Settings):
    """Validates the final merge only: environment and YAML are already in it, so the environment must
    not be applied again over the CLI flags."""


def load_settings(config: Path | None = None, overrides: dict[str, Any] | None = None) -> Settings:
    """YAML file (if any) < environment < ``overrides`` (CLI flags, nested dicts by section)."""
    data: dict[str, Any] = {}
    if config is not None:
        loaded = yaml.safe_load(config.read_text()) or {}
        if not isinstance(loaded, dict):
            raise ValueError(f"{config}: top level must be a mapping of sections")
        data = loaded
    settings = Settings(**data)
    if overrides:
        merged = _deep_merge(settings.model_dump(), overrides)
        settings = _FlagSettings(**merged)
    return settings
