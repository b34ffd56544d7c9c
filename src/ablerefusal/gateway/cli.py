"""Gateway commands of the ``ablerefusal`` CLI: ``serve`` (the gateway), ``generate`` (a client) and ``db``
(job store schema migrations)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError

from ablerefusal.gateway.settings import load_settings


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)
    app.command("generate")(generate)
    db = typer.Typer(help="Job store schema: migrate it (gateways also do at start) or show its revision.")
    db.command("upgrade")(db_upgrade)
    db.command("current")(db_current)
    app.add_typer(db, name="db")


ConfigOption = Annotated[Path | None, typer.Option(help="config.yaml to read.", exists=True, dir_okay=False)]
DatabaseUrlOption = Annotated[
    str | None, typer.Option(help="sqlite:///path or postgresql://… job store (default: from the config).")
]


def _database_url(config: Path | None, database_url: str | None) -> str:
    overrides = {"storage": {"database_url": database_url}} if database_url else {}
    return load_settings(config, overrides).storage.database_url


def db_upgrade(config: ConfigOption = None, database_url: DatabaseUrlOption = None) -> None:
    """Bring the job store's schema to this version's newest revision (safe to run while gateways run)."""
    from ablerefusal.gateway.jobs import migrate
    from ablerefusal.gateway.jobs.engine import make_engine

    engine = make_engine(_database_url(config, database_url))
    try:
        before = migrate.current(engine)
        after = migrate.upgrade(engine)
    finally:
        engine.dispose()
    typer.echo(f"job store at revision {after} (was {before or 'none'})")


def db_current(config: ConfigOption = None, database_url: DatabaseUrlOption = None) -> None:
    """Print the job store's schema revision and the newest one this version knows."""
    from ablerefusal.gateway.jobs import migrate
    from ablerefusal.gateway.jobs.engine import make_engine

    engine = make_engine(_database_url(config, database_url))
    try:
        now = migrate.current(engine)
    finally:
        engine.dispose()
    head = migrate.head()
    state = "up to date" if now == head else "needs `ablerefusal db upgrade`"
    typer.echo(f"job store at revision {now or 'none'}; newest known {head}: {state}")


def _count(value: str, flag: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise typer.BadParameter(f"{value!r} is not a whole number or 'auto'", param_hint=flag) from None


def serve(
    host: Annotated[str | None, typer.Option(help="Bind address (default 127.0.0.1).")] = None,
    port: Annotated[int | None, typer.Option(help="Bind port (default 8080).")] = None,
    config: Annotated[Path | None, typer.Option(help="config.yaml to read.", exists=True, dir_okay=False)] = None,
    workers: Annotated[
        str | None, typer.Option("--workers", help="Local workers: a number, or auto (one per GPU).")
    ] = None,
    gpus: Annotated[
        str | None, typer.Option("--gpus", help="GPUs for local workers, e.g. 0,1,3 (one worker pinned to each).")
    ] = None,
    device: Annotated[str | None, typer.Option(help="Device for local workers: auto|cpu|cuda|cuda:N|mps.")] = None,
    worker_url: Annotated[
        list[str] | None, typer.Option("--worker-url", help="Remote worker base URL (repeatable).")
    ] = None,
    no_local_worker: Annotated[bool, typer.Option("--no-local-worker", help="Run no local worker.")] = False,
    database_url: Annotated[str | None, typer.Option(help="sqlite:///path or postgresql://… job store.")] = None,
    output_dir: Annotated[Path | None, typer.Option(help="Where images are written.")] = None,
    input_dir: Annotated[Path | None, typer.Option(help="Where uploaded input images are kept.")] = None,
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
        overrides["workers"]["local"] = workers if workers == "auto" else _count(workers, "--workers")
    if gpus is not None:
        overrides["workers"]["gpus"] = [g.strip() for g in gpus.split(",") if g.strip()]
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
    if input_dir is not None:
        overrides["storage"]["input_dir"] = str(input_dir)
    if models_dir is not None:
        overrides["storage"]["models_dir"] = str(models_dir)
    if api_key:
        overrides["auth"]["api_keys"] = list(api_key)
    try:
        settings = load_settings(config, {k: v for k, v in overrides.items() if v})
    except ValidationError as exc:
        # A refused setting (a blank API key, CORS '*' with credentials, …) stops the start with its rule.
        raise SystemExit(f"ablerefusal serve: invalid configuration\n{exc}") from None
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
    init_image: Annotated[
        Path | None, typer.Option("--init-image", help="Image to start from (img2img; uploaded first).")
    ] = None,
    strength: Annotated[
        float | None, typer.Option("--strength", help="Denoising strength with --init-image: 0 keeps it, 1 redraws.")
    ] = None,
    resize_mode: Annotated[
        str | None, typer.Option("--resize-mode", help="How --init-image fits the size: resize, crop or fill.")
    ] = None,
    mask: Annotated[
        Path | None, typer.Option("--mask", help="Inpainting mask for --init-image (white is repainted).")
    ] = None,
    outpaint: Annotated[
        str | None,
        typer.Option("--outpaint", help="Grow --init-image by LEFT,RIGHT,TOP,BOTTOM pixels (multiples of 8)."),
    ] = None,
    hires: Annotated[float | None, typer.Option("--hires", help="Hires fix: upscale factor (text-to-image).")] = None,
    hires_upscaler: Annotated[
        str | None, typer.Option("--hires-upscaler", help="Hires upscaler: latent, lanczos, nearest or a model.")
    ] = None,
    hires_steps: Annotated[int | None, typer.Option("--hires-steps", help="Steps of the hires pass.")] = None,
    hires_strength: Annotated[
        float | None, typer.Option("--hires-strength", help="Denoising strength of the hires pass.")
    ] = None,
    lora: Annotated[
        list[str] | None,
        typer.Option("--lora", help="LoRA as NAME or NAME:WEIGHT (repeatable); <lora:NAME:WEIGHT> in prompts too."),
    ] = None,
    controlnet: Annotated[
        list[str] | None,
        typer.Option(
            "--controlnet",
            help="ControlNet unit as MODEL:IMAGE[:PREPROCESSOR[:WEIGHT]] (repeatable; the image is uploaded first).",
        ),
    ] = None,
    clip_skip: Annotated[int | None, typer.Option("--clip-skip", help="Clip skip, 1-12 (A1111's).")] = None,
    vae: Annotated[str | None, typer.Option("--vae", help="VAE id (see /api/v1/models?kind=vae).")] = None,
) -> None:
    """Submit a job to a running gateway, show its progress, and save the images."""
    from ablerefusal.client.generate import run_generate

    body: dict[str, object] = {"prompt": prompt, "negative_prompt": negative, "seed": seed}
    body["batch_size"] = batch_size
    body["priority"] = priority
    optional = {"steps": steps, "width": width, "height": height, "cfg_scale": cfg_scale, "sampler": sampler}
    body.update({k: v for k, v in optional.items() if v is not None})
    if model is not None:
        body["model"] = model
    body.update(_image_options(strength, resize_mode, outpaint, hires, hires_upscaler, hires_steps, hires_strength))
    images = {name: path for name, path in (("init_image", init_image), ("mask", mask)) if path is not None}
    body.update(_adapter_options(lora or [], controlnet or [], clip_skip, vae, images))
    code = run_generate(url.rstrip("/"), body, out, api_key, images)
    raise typer.Exit(code)


def _adapter_options(
    loras: list[str], controlnets: list[str], clip_skip: int | None, vae: str | None, images: dict[str, Path]
) -> dict[str, object]:
    """Request fields of generate's adapter options; each ControlNet image joins ``images`` (uploaded first)."""
    from ablerefusal.client.adapters import controlnet_fields, lora_fields

    fields: dict[str, object] = {}
    if loras:
        fields["loras"] = lora_fields(loras)
    if controlnets:
        units, paths = controlnet_fields(controlnets)
        fields["controlnets"] = units
        images.update({f"controlnets.{i}.image": path for i, path in enumerate(paths)})
    if clip_skip is not None:
        fields["clip_skip"] = clip_skip
    if vae is not None:
        fields["vae"] = vae
    return fields


def _image_options(
    strength: float | None,
    resize_mode: str | None,
    outpaint: str | None,
    hires: float | None,
    hires_upscaler: str | None,
    hires_steps: int | None,
    hires_strength: float | None,
) -> dict[str, object]:
    """Request fields of generate's image options; the gateway checks their values and combinations."""
    fields: dict[str, object] = {}
    if strength is not None:
        fields["denoising_strength"] = strength
    if resize_mode is not None:
        fields["resize_mode"] = resize_mode
    if outpaint is not None:
        sides = outpaint.split(",")
        if len(sides) != 4 or not all(side.strip().isdigit() for side in sides):
            raise typer.BadParameter(
                "give four pixel counts LEFT,RIGHT,TOP,BOTTOM, e.g. 0,128,0,0", param_hint="--outpaint"
            )
        fields["outpaint"] = dict(zip(("left", "right", "top", "bottom"), (int(s) for s in sides), strict=True))
    hires_fields = {
        "scale": hires,
        "upscaler": hires_upscaler,
        "steps": hires_steps,
        "denoising_strength": hires_strength,
    }
    if any(value is not None for value in hires_fields.values()):
        fields["hires"] = {k: v for k, v in hires_fields.items() if v is not None}
    return fields
