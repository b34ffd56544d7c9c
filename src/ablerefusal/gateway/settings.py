"""Gateway configuration: one ``Settings`` object from ``config.yaml`` (the seed's shape plus our sections),
overridden by ``ABLEREFUSAL_<SECTION>__<KEY>`` environment variables, overridden by CLI flags.

Defaults are safe: loopback bind, SQLite under ./data, CORS off, no pickle loading.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, Field, SecretStr, StringConstraints, field_validator, model_validator
from pydantic_settings import SettingsConfigDict

from ablerefusal.layered_settings import EnvOverFileSettings, InitOnlySettings
from ablerefusal.protocol import MAX_INPUT_PIXELS


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
    public_url: str | None = Field(
        None,
        pattern=r"^https?://[^\s/?#]+(/[^\s?#]*)?$",
        description="Absolute base URL clients reach the gateway at (http(s)://host[:port][/prefix]); used for "
        "links (OpenAI url responses), and its origin is an allowed Origin and its host an allowed Host.",
    )
    allowed_hosts: list[str] | None = Field(
        None,
        description="Host header names accepted (DNS-rebinding guard); '*.example.com' matches subdomains, '*' "
        "any. Default: localhost, 127.0.0.1, ::1, the bind address and public_url's host; any host when bound "
        "to 0.0.0.0 or ::.",
    )
    allowed_origins: list[str] = Field(
        default_factory=list,
        description="Origins (scheme://host[:port]) allowed to send state-changing requests besides the "
        "gateway's own origin, public_url's and cors_origins.",
    )
    trusted_proxies: list[str] = Field(
        default_factory=list,
        description="Addresses or networks of reverse proxies whose X-Forwarded-For/-Proto are believed; "
        "empty = forwarded headers are ignored.",
    )
    header_timeout_s: float = Field(
        10.0, gt=0, description="A client must send a request's complete headers within this many seconds."
    )
    body_timeout_s: float = Field(
        30.0, gt=0, description="Longest wait for the next part of a request body before answering 408."
    )
    web_dir: Path | None = Field(
        None, description="Static web UI folder; defaults to the UI shipped in the package (web/out in a checkout)."
    )
    frame_ancestors: list[Annotated[str, StringConstraints(pattern=r"^[^\s;,]+$")]] = Field(
        default_factory=lambda: ["'none'"],
        description="CSP frame-ancestors sources: who may show the UI in a frame ('none' = nobody; e.g. 'self' or "
        "https://portal.example.com).",
    )

    @model_validator(mode="after")
    def _no_credentialed_wildcard(self) -> ServerSettings:
        # Starlette answers '*' with credentials by reflecting any Origin (even 'null'): every web page could
        # then read API answers with the user's credentials.
        if self.enable_cors and self.cors_allow_credentials and "*" in self.cors_origins:
            raise ValueError(
                "server.cors_origins '*' together with server.cors_allow_credentials lets any web site make "
                "credentialed requests: list the allowed origins, or turn cors_allow_credentials off"
            )
        return self


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


class S3Settings(BaseModel):
    endpoint_url: str | None = Field(
        None, description="S3 API endpoint (MinIO, SeaweedFS, R2 …); unset for AWS S3 in `region`."
    )
    bucket: str | None = Field(None, description="Bucket holding outputs (and inputs); required for backend s3.")
    prefix: str = Field("", description="Key prefix inside the bucket, e.g. 'ablerefusal/' to share a bucket.")
    region: str | None = Field(None, description="Bucket region (AWS); most other servers ignore it.")
    access_key_id: str | None = Field(None, description="Access key; unset: boto3's usual chain (env, profile, role).")
    secret_access_key: SecretStr | None = Field(None, description="Secret key (prefer the environment variable).")
    serve: Literal["redirect", "stream"] = Field(
        "redirect",
        description=(
            "How /outputs/... answers without public_base_url: redirect to a presigned URL (the client fetches "
            "from the bucket) or stream through the gateway (the bucket need not be reachable by clients)."
        ),
    )
    presign_expires_s: int = Field(3600, ge=60, le=604800, description="Lifetime of presigned URLs.")


class StorageSettings(BaseModel):
    output_dir: Path = Field(Path("./outputs"), description="Where images are written, by job id (backend local).")
    input_dir: Path = Field(
        Path("./inputs"), description="Where uploaded input images are kept, by content hash (backend local)."
    )
    max_input_bytes: int = Field(
        16 * 1024 * 1024, ge=1024, description="Largest input image accepted (uploads and inline images), in bytes."
    )
    max_input_pixels: int = Field(
        MAX_INPUT_PIXELS,
        ge=64 * 64,
        le=MAX_INPUT_PIXELS,
        description="Most pixels an input image may have (checked before decoding); at most what workers take.",
    )
    models_dir: Path = Field(Path("./models"), description="Where workers look for models.")
    database_url: str = Field(
        "sqlite:///./data/ablerefusal.db", description="sqlite:///path or postgresql://user@host/db job store."
    )
    backend: Literal["local", "s3"] = Field(
        "local", description="local: output_dir on this machine; s3: an S3-compatible bucket shared by a fleet."
    )
    s3: S3Settings = Field(default_factory=S3Settings, description="The bucket, for backend s3.")
    public_base_url: str | None = Field(
        None,
        description="A CDN or public bucket URL in front of the objects: /outputs/<key> redirects to <url>/<key>.",
    )

    @model_validator(mode="after")
    def _s3_needs_a_bucket(self) -> StorageSettings:
        if self.backend == "s3" and not self.s3.bucket:
            raise ValueError("storage.s3.bucket is required when storage.backend is s3")
        return self


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
    poll_interval_s: float = Field(
        0.05, gt=0, description="Shortest pause between two dispatch rounds; running calls' watch tick floor."
    )
    idle_poll_s: float = Field(
        2.0,
        gt=0,
        description="Fallback poll of an idle dispatcher. Submits wake it at once (on PostgreSQL also those on "
        "other gateways, via LISTEN/NOTIFY), and so do ending calls, workers becoming ready and retries' backoff.",
    )


class WorkersSettings(BaseModel):
    local: Annotated[int, Field(ge=0)] | Literal["auto"] = Field(
        1,
        description="Local worker processes to spawn and supervise; 'auto': one per visible GPU (each pinned to "
        "its GPU with CUDA_VISIBLE_DEVICES), or one CPU worker on a machine without GPUs.",
    )
    gpus: list[str] = Field(
        default_factory=list,
        description="GPUs for local workers (CUDA_VISIBLE_DEVICES ids, e.g. ['0', '1', '3']); worker n is pinned to "
        "gpus[n % len]. Empty: with local 'auto', the GPUs found by nvidia-smi (or CUDA_VISIBLE_DEVICES).",
    )
    urls: list[str] = Field(
        default_factory=list,
        description="Remote worker base URLs; recorded in the job store at start, where every gateway on the store "
        "shares them (also POST /api/v1/workers).",
    )
    lease_s: float = Field(
        10.0,
        gt=0,
        description="A remote worker's lease: the one gateway holding it sends it calls, renewing every third of "
        "this; a dead gateway's workers pass to another once it lapses.",
    )
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
    token: str | None = Field(
        None,
        description="Token sent to remote workers (their --token / ABLEREFUSAL_WORKER_TOKEN). Local workers get "
        "a random token of their own from this gateway.",
    )


class AuthSettings(BaseModel):
    api_keys: list[str] = Field(default_factory=list, description="Accepted Bearer keys; empty = no auth.")
    admin_keys: list[str] = Field(
        default_factory=list,
        description="Keys that see and change every job and read worker details; accepted like api_keys. Other "
        "keys see and change only the jobs they submitted.",
    )
    protect_docs: bool = Field(
        False, description="With keys set, /docs, /redoc and /openapi.json need a key too (browsers cannot send one)."
    )
    protect_metrics: bool = Field(False, description="With keys set, /metrics needs a key (Prometheus can send one).")

    @property
    def all_keys(self) -> list[str]:
        """Every accepted key (api_keys and admin_keys)."""
        return [*self.api_keys, *self.admin_keys]

    @field_validator("api_keys", "admin_keys")
    @classmethod
    def _no_blank_key(cls, keys: list[str]) -> list[str]:
        # A blank key (an unset shell variable in --api-key "$KEY") would pass the network-bind guard while
        # matching an empty Basic password or Bearer token: refuse it rather than open the door.
        if any(not key.strip() for key in keys):
            raise ValueError("blank API keys are refused (an unset variable?): give real keys or none")
        return keys


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
