"""Running the gateway process: logging, bind safety, the demo model, uvicorn, the "ready" line."""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import sys
from pathlib import Path

import httpx
import uvicorn

from ablerefusal.gateway.app import create_app
from ablerefusal.gateway.auth import check_bind_safety
from ablerefusal.gateway.logs import configure_logging
from ablerefusal.gateway.security import guard_hosts
from ablerefusal.gateway.security.connections import uvicorn_options
from ablerefusal.gateway.settings import Settings

log = logging.getLogger("ablerefusal.gateway")

_MODEL_SUFFIXES = {".safetensors", ".ckpt", ".pt", ".bin"}
DEMO_MODEL_NAME = "tiny-demo"


def has_local_model(models_dir: Path) -> bool:
    """A diffusers folder or a checkpoint file directly in the models dir."""
    if not models_dir.is_dir():
        return False
    for entry in models_dir.iterdir():
        if entry.is_dir() and (entry / "model_index.json").is_file():
            return True
        if entry.is_file() and entry.suffix.lower() in _MODEL_SUFFIXES:
            return True
    return False


def hub_reachable(timeout_s: float = 3.0) -> bool:
    if os.environ.get("HF_HUB_OFFLINE", "") not in ("", "0"):
        return False
    try:
        httpx.head("https://huggingface.co", timeout=timeout_s)
    except httpx.HTTPError:
        return False
    return True


def ensure_demo_model(settings: Settings) -> None:
    """With no model and no hub, make the tiny random-weight model so the platform works end to end."""
    models_dir = settings.storage.models_dir
    if has_local_model(models_dir):
        return
    if hub_reachable():
        hub_id = settings.inference.default_hub_model
        log.info("no local model; the default model %s is fetched from the hub on first use", hub_id)
        settings.models.hub_ids = [*settings.models.hub_ids, hub_id]
        settings.inference.default_model = settings.inference.default_model or hub_id
        return
    log.warning(
        "no model in %s and no Hugging Face hub access: making the tiny DEMO model, whose images are NOISE. "
        "Put a real model in %s to get real images.",
        models_dir,
        models_dir,
    )
    models_dir.mkdir(parents=True, exist_ok=True)
    # A child process: making the model needs torch, which the gateway process never imports.
    subprocess.run(
        [sys.executable, "-m", "ablerefusal", "models", "make-tiny", str(models_dir), "--name", DEMO_MODEL_NAME],
        check=True,
    )


def _prepare_dirs(settings: Settings) -> None:
    settings.storage.output_dir.mkdir(parents=True, exist_ok=True)
    url = settings.storage.database_url
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)


async def _serve(settings: Settings) -> None:
    app = create_app(settings)
    allowed_hosts = guard_hosts(app, settings.server)
    if allowed_hosts is None:
        log.info("Host header not checked (server.allowed_hosts allows any; bound to %s)", settings.server.host)
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host=settings.server.host,
            port=settings.server.port,
            log_config=None,
            access_log=False,
            timeout_graceful_shutdown=5,
            **uvicorn_options(settings.server.header_timeout_s, settings.server.trusted_proxies),
        )
    )
    task = asyncio.create_task(server.serve())
    while not server.started and not task.done():
        await asyncio.sleep(0.05)
    if server.started:
        host = settings.server.host
        shown = f"[{host}]" if ":" in host else host
        port = server.servers[0].sockets[0].getsockname()[1] if server.servers else settings.server.port
        # stdout, plain: scripts and tests wait for this line to learn the (possibly ephemeral) port.
        print(f"AbleRefusal gateway ready at http://{shown}:{port}/", flush=True)
    await task


def run_server(settings: Settings, *, insecure: bool, demo_if_empty: bool) -> None:
    configure_logging()
    check_bind_safety(settings.server.host, settings.auth.all_keys, insecure)
    if demo_if_empty:
        ensure_demo_model(settings)
    _prepare_dirs(settings)
    asyncio.run(_serve(settings))
