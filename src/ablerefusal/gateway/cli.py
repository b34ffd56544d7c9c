"""Gateway commands of the ``ablerefusal`` CLI: ``serve`` (the gateway) and ``generate`` (a client)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ablerefusal.gateway.settings import load_settings


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)
    app.command("generate")(generate)


def serve(
    host: Annotated[str | None, typer.Option(help="Bind address (default 127.0.0.1).")] = None,
    port: Annotated[int | None, typer.Option(help="Bind port (default 8080).")] = None,
    config: Annotated[Path | None, typer.Option(help="config.yaml to read.", exists=True, dir_okay=False)] = None,
    workers: Annotated[int | None, typer.Option("--workers", help="Local worker processes to supervise.")] = None,
    device: Annotated[str | None, typer.Option(help="Device for local workers: auto|cpu|cuda|cuda:N|mps.")] = None,
    worker_url: Annotated[
        list[str] | None, typer.Option("--worker-url", help="Remote worker base URL (repeatable).")
    ] = None,
    no_local_worker: Annotated[bool, typer.Option("--no-local-worker", help="Run no local worker.")] = False,
    database_url: Annotated[str | None, typer.Option(help="sqlite:///path or postgresql://… job store.")] = None,
    output_dir: Annotated[Path | None, typer.Option(help="Where images are written.")] = None,
    models_dir: Annotated[Path | None, typer.Option(help="Where workers look for models.")] = None,
    insecure: Annotated[bool, typer.Option("--insecure", help="Allow a non-loopback bind without API keys.")] = False,
    api_key: Annotated[list[str] | None, typer.Option("--api-key", help="Accepted Bearer key (repeatable).")] = None,
    demo_if_empty: Annotated[
        bool,
        typer.Option("--demo-if-empty", help="With no model and no hub access, make the tiny demo model (noise)."),
    ] = False,
) -> None:
    """Start the gateway (REST API, queue, web UI) and its local workers."""
    from ablerefusal.gateway.serve import run_server

    overrides: dict[str, dict[str, object]] = {
        "server": {},
        "inference": {},
        "storage": {},
        "workers": {},
        "auth": {},
    }
    if host is not None:
        overrides["server"]["host"] = host
    if port is not None:
        overrides["server"]["port"] = port
    if workers is not None:
        overrides["workers"]["local"] = workers
    if no_local_worker:
        overrides["workers"]["local"] = 0
    if device is not None:
        overrides["inference"]["device"] = device
    if worker_url:
        overrides["workers"]["urls"] = list(worker_url)
    if database_url is not None:
        overrides["storage"]["database_url"] = database_url
    if output_dir is not None:
        overrides["storage"]["output_dir"] = str(output_dir)
    if models_dir is not None:
        overrides["storage"]["models_dir"] = str(models_dir)
    if api_key:
        overrides["auth"]["api_keys"] = list(api_key)
    settings = load_settings(config, {k: v for k, v in overrides.items() if v})
    run_server(settings, insecure=insecure, demo_if_empty=demo_if_empty)


def generate(
    prompt: Annotated[str, typer.Argument(help="What to draw.")],
    negative: Annotated[str, typer.Option("--negative", help="Negative prompt.")] = "",
    steps: Annotated[int | None, typer.Option(help="Denoising steps.")] = None,
    seed: Annotated[int, typer.Option(help="Seed; -1 = random.")] = -1,
    width: Annotated[int | None, typer.Option(help="Width in pixels.")] = None,
    height: Annotated[int | None, typer.Option(help="Height in pixels.")] = None,
    cfg_scale: Annotated[float | None, typer.Option("--cfg-scale", help="Guidance scale.")] = None,
    sampler: Annotated[str | None, typer.Option(help="Sampler id.")] = None,
    model: Annotated[str | None, typer.Option(help="Model id (see /api/v1/models).")] = None,
    batch_size: Annotated[int, typer.Option("--batch-size", help="Images in the job.")] = 1,
    priority: Annotated[int, typer.Option(help="Higher runs first.")] = 0,
    out: Annotated[Path, typer.Option("--out", help="Folder to save the images in.")] = Path("."),
    url: Annotated[str, typer.Option(help="Gateway base URL.", envvar="ABLEREFUSAL_URL")] = "http://127.0.0.1:8080",
    api_key: Annotated[str | None, typer.Option("--api-key", help="Bearer key.", envvar="ABLEREFUSAL_API_KEY")] = None,
) -> None:
    """Submit a job to a running gateway, show its progress, and save the images."""
    from ablerefusal.gateway.client_cli import run_generate

    body: dict[str, object] = {"prompt": prompt, "negative_prompt": negative, "seed": seed}
    body["batch_size"] = batch_size
    body["priority"] = priority
    optional = {"steps": steps, "width": width, "height": height, "cfg_scale": cfg_scale, "sampler": sampler}
    body.update({k: v for k, v in optional.items() if v is not None})
    if model is not None:
        body["model"] = model
    code = run_generate(url.rstrip("/"), body, out, api_key)
    raise typer.Exit(code)
