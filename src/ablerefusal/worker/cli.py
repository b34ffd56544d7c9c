"""Worker commands of the ``ablerefusal`` CLI: ``worker`` and ``models list|make-tiny``.

The gateway imports this module, so nothing here imports torch or diffusers at import time: the commands
import the engine when they run.
"""

from __future__ import annotations

import json
import logging
import signal
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

models_app = typer.Typer(help="Inspect the models directory and make tiny demo models.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.command("worker", help="Start an inference worker (worker protocol v1 over HTTP).")(worker)
    app.add_typer(models_app, name="models")


def _overrides(**flags: Any) -> dict[str, Any]:
    # Only flags the user gave override the config file and environment.
    return {k: v for k, v in flags.items() if v is not None and v != []}


def worker(
    host: Annotated[str | None, typer.Option(help="Bind address [default: 127.0.0.1].")] = None,
    port: Annotated[int | None, typer.Option(help="Bind port [default: 8001].")] = None,
    device: Annotated[str | None, typer.Option(help="auto|cpu|cuda|cuda:N|mps [default: auto].")] = None,
    models_dir: Annotated[Path | None, typer.Option(help="Models directory [default: ./models].")] = None,
    config: Annotated[
        Path | None, typer.Option(help="YAML config (worker: section, or the gateway's file); '-' reads stdin.")
    ] = None,
    token: Annotated[
        str | None,
        typer.Option(
            help="Calls must carry this Bearer token. Prefer ABLEREFUSAL_WORKER_TOKEN: other users can read argv."
        ),
    ] = None,
    insecure: Annotated[
        bool, typer.Option("--insecure", help="Listen on a non-loopback address without a token.")
    ] = False,
    parent_pid: Annotated[int | None, typer.Option(help="Exit when this process dies (set by a gateway).")] = None,
    worker_id: Annotated[str | None, typer.Option(help="Name reported in /v1/info [default: host:port].")] = None,
    allow_pickle: Annotated[
        bool | None, typer.Option("--allow-pickle/--no-allow-pickle", help="Load pickle checkpoints (unsafe).")
    ] = None,
    allow_cpu_fallback: Annotated[
        bool | None, typer.Option("--allow-cpu-fallback/--no-cpu-fallback", help="Use the CPU if the GPU fails.")
    ] = None,
    cache_size: Annotated[int | None, typer.Option(help="Pipelines kept resident [default: 2].")] = None,
    dtype: Annotated[str | None, typer.Option(help="auto|float16|bfloat16|float32 [default: auto].")] = None,
    preload: Annotated[list[str] | None, typer.Option(help="Model id to load before ready (repeatable).")] = None,
    compile_: Annotated[
        bool | None, typer.Option("--compile/--no-compile", help="Compile the UNet for --compile-shape shapes.")
    ] = None,
    compile_shape: Annotated[list[str] | None, typer.Option(help="model:WxH:bN to compile (repeatable).")] = None,
    quantize: Annotated[
        str | None, typer.Option(help="none|int8wo|int8dq|fp8: torchao weight quantization [default: none].")
    ] = None,
    log_level: Annotated[str, typer.Option(help="Python log level.")] = "info",
) -> None:
    import uvicorn
    from pydantic import ValidationError

    from ablerefusal.worker.app import create_app
    from ablerefusal.worker.process import exit_with_parent, quiet_probe_access_lines
    from ablerefusal.worker.settings import bind_refusal, load_worker_settings

    logging.basicConfig(
        stream=sys.stderr, level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        settings = load_worker_settings(
            config,
            _overrides(
                host=host,
                port=port,
                token=token,
                insecure=insecure or None,  # unset: the config file or environment decides
                parent_pid=parent_pid,
                device=device,
                models_dir=models_dir,
                worker_id=worker_id,
                allow_pickle=allow_pickle,
                allow_cpu_fallback=allow_cpu_fallback,
                cache_size=cache_size,
                dtype=dtype,
                preload=preload or [],
                compile=compile_,
                compile_shapes=compile_shape or [],
                quantize=quantize,
            ),
        )
    except (ValidationError, ValueError, OSError) as exc:
        typer.echo(f"invalid worker configuration: {exc}", err=True)
        raise typer.Exit(2) from exc
    refusal = bind_refusal(settings)
    if refusal is not None:
        typer.echo(refusal, err=True)
        raise typer.Exit(2)
    if settings.parent_pid is not None:
        exit_with_parent(settings.parent_pid)
    quiet_probe_access_lines()
    # uvicorn shuts down gracefully on SIGTERM and then re-raises the signal to the handler it found; make that
    # handler exit 0 so supervisors see a clean stop rather than "killed by signal 15".
    signal.signal(signal.SIGTERM, _exit_zero)
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port, log_level=log_level.lower())


def _exit_zero(signum: int, frame: object) -> None:
    raise SystemExit(0)


@models_app.command("list")
def list_models(
    models_dir: Annotated[Path | None, typer.Option(help="Models directory [default: ./models].")] = None,
    config: Annotated[Path | None, typer.Option(help="YAML config file.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """List the models a worker would offer, and the files it refuses with the reason."""
    from rich.console import Console
    from rich.table import Table

    from ablerefusal.worker.engine.registry import ModelRegistry
    from ablerefusal.worker.settings import load_worker_settings

    settings = load_worker_settings(config, _overrides(models_dir=models_dir))
    registry = ModelRegistry(settings.models_dir, settings.hub_ids, settings.allow_pickle)
    entries = registry.scan()
    refused = registry.refused()
    if as_json:
        payload = {
            "models": [e.info(False).model_dump(mode="json") for e in entries.values()],
            "refused": refused,
        }
        typer.echo(json.dumps(payload, indent=2))
        return
    table = Table(title=f"models in {settings.models_dir}")
    for column in ("id", "family", "format", "size", "note"):
        table.add_column(column)
    for e in entries.values():
        size = f"{e.size_bytes / 2**20:.1f} MiB" if e.size_bytes is not None else "-"
        table.add_row(e.id, e.family.value, e.format.value, size, "demo: noise" if e.demo else "")
    console = Console()
    console.print(table)
    for name, reason in refused.items():
        console.print(f"[yellow]refused[/] {name}: {reason}")


@models_app.command("make-tiny")
def make_tiny_cmd(
    dest: Annotated[Path, typer.Argument(help="Models directory to write into.")],
    family: Annotated[str, typer.Option(help="sd15 or sdxl.")] = "sd15",
    fmt: Annotated[str, typer.Option("--format", help="diffusers or single-file.")] = "diffusers",
    name: Annotated[str | None, typer.Option(help="Model name [default: tiny-<family>[-single]].")] = None,
    scale: Annotated[int, typer.Option(min=1, help="Channel width multiplier (bigger = slower, still noise).")] = 1,
    inpainting: Annotated[
        bool, typer.Option("--inpainting", help="A dedicated inpainting model (9-channel UNet).")
    ] = False,
    controlnet: Annotated[
        bool,
        typer.Option(
            "--controlnet", help="Also write a matching tiny ControlNet into <dest>/controlnet/ (same --format)."
        ),
    ] = False,
    adapters: Annotated[
        bool,
        typer.Option(
            "--adapters",
            help="Also write matching tiny LoRAs (kohya, PEFT), an embedding and a VAE (loras/, embeddings/, vae/).",
        ),
    ] = False,
    upscaler: Annotated[
        bool,
        typer.Option(
            "--upscaler",
            help="Also write tiny ESRGAN upscalers: x4 and x2 in upscalers/, an old-format x4 in models/ESRGAN/.",
        ),
    ] = False,
) -> None:
    """Write a tiny random-weight model. Its images are NOISE: it exists to test the platform offline."""
    from ablerefusal.protocol import ModelFamily, ModelFormat
    from ablerefusal.testing.tiny import make_tiny

    if family not in {f.value for f in ModelFamily}:
        raise typer.BadParameter("must be sd15 or sdxl", param_hint="--family")
    if fmt not in (ModelFormat.diffusers.value, ModelFormat.single_file.value):
        raise typer.BadParameter("must be diffusers or single-file", param_hint="--format")
    path = make_tiny(dest, family, fmt, name=name, scale=scale, inpainting=inpainting)
    typer.echo(f"wrote {path}")
    if controlnet:
        from ablerefusal.testing.controlnet import make_tiny_controlnet

        typer.echo(f"wrote {make_tiny_controlnet(dest, family, fmt, scale=scale)}")
    if adapters:
        from ablerefusal.testing.tiny_adapters import make_tiny_adapters

        for written in make_tiny_adapters(dest, family, scale=scale):
            typer.echo(f"wrote {written}")
    if upscaler:
        from ablerefusal.testing.tiny_upscalers import make_tiny_upscalers

        for written in make_tiny_upscalers(dest):
            typer.echo(f"wrote {written}")
    typer.echo("note: random weights — this model's images are noise; it exists to run the platform end to end.")
