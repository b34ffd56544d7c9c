"""A1111's adapter surface: ``/sdapi/v1/loras``, ``/refresh-loras``, ``/embeddings``, ``/sd-vae``, the
``sd_vae`` and ``CLIP_stop_at_last_layers`` options (per request in ``override_settings``, or kept through
``/options``), and sd-webui-controlnet's ``alwayson_scripts.controlnet`` units.

``<lora:name:weight>`` tags need nothing here: prompts pass through to the jobs unchanged, and the gateway
validates the tags at submit like any job's (compat answers a bad one with a 422 naming ``prompt``).
Shapes follow A1111 (``extensions-builtin/Lora/scripts/lora_script.py`` ``create_lora_json``;
``modules/api/api.py`` ``get_embeddings``, ``get_sd_vaes``); paths are never disclosed, so ``path`` and
``filename`` carry the id.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

from ablerefusal.gateway.compat.a1111_controlnet_units import controlnet_units
from ablerefusal.gateway.compat.a1111_models import A1111Request
from ablerefusal.gateway.compat.a1111_state import A1111State, state_of
from ablerefusal.gateway.compat.a1111_translate import A1111Plan
from ablerefusal.gateway.compat.errors import CompatFieldError
from ablerefusal.gateway.deps import ServiceDep
from ablerefusal.gateway.schemas import ModelKind
from ablerefusal.gateway.services import GatewayService
from ablerefusal.protocol import MAX_CLIP_SKIP, ModelInfo

log = logging.getLogger(__name__)

# A1111's sd_vae values meaning "no separate VAE" ("Automatic" also picks a VAE named like the checkpoint,
# a convention without an equivalent here: both use the checkpoint's own).
NO_VAE = ("Automatic", "None", "")
VAE_OPTION = "sd_vae"
CLIP_SKIP_OPTION = "CLIP_stop_at_last_layers"


class LoraItem(BaseModel):
    name: str = Field(..., description="LoRA id, as <lora:name:weight> takes it.")
    alias: str = Field(..., description="The same id (A1111: the alias from the file's metadata).")
    path: str = Field(..., description="The id again: paths are not disclosed.")
    metadata: dict[str, Any] = Field(default_factory=dict, description="Family, size and sha256 of the file.")


class EmbeddingItem(BaseModel):
    step: int | None = Field(None, description="Training steps, when the file records them.")
    sd_checkpoint: str | None = Field(None, description="Hash of the checkpoint it was trained on, when recorded.")
    sd_checkpoint_name: str | None = Field(None, description="Name of that checkpoint, when recorded.")
    shape: int = Field(..., description="Width of each vector (SDXL: clip_l + clip_g widths, as A1111 counts).")
    vectors: int = Field(..., description="Number of vectors in the embedding.")


class EmbeddingsResponse(BaseModel):
    loaded: dict[str, EmbeddingItem] = Field(..., description="Embeddings usable with the current checkpoint.")
    skipped: dict[str, EmbeddingItem] = Field(..., description="Embeddings of another family.")


class VaeItem(BaseModel):
    model_name: str = Field(..., description="VAE id, as the sd_vae option takes it.")
    filename: str = Field(..., description="The id again: paths are not disclosed.")


def _stem(value: str) -> str:
    return value.rsplit(".", 1)[0] if "." in value else value


def find_vae(value: Any, vaes: Sequence[ModelInfo], field: str) -> str | None:
    """The VAE id an ``sd_vae`` value names (A1111 sends file names, extension included), None for the
    checkpoint's own."""
    if not isinstance(value, str):
        raise CompatFieldError(field, "must be a VAE name from /sdapi/v1/sd-vae, Automatic or None")
    if value.strip() in NO_VAE:
        return None
    for vae in vaes:
        if value in (vae.id, vae.name) or _stem(value) == vae.id:
            return vae.id
    listed = ", ".join(["Automatic", "None", *(v.id for v in vaes)])
    raise CompatFieldError(field, f"unknown VAE {value!r}; available: {listed}")


def clip_skip_of(value: Any, field: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float) or int(value) != value:
        raise CompatFieldError(field, f"must be an integer 1–{MAX_CLIP_SKIP}")
    if not 1 <= value <= MAX_CLIP_SKIP:
        raise CompatFieldError(field, f"must be 1–{MAX_CLIP_SKIP}")
    return int(value)


async def set_options(service: GatewayService, state: A1111State, options: Mapping[str, Any]) -> None:
    """``POST /options``: keep ``sd_vae`` and ``CLIP_stop_at_last_layers`` for later requests."""
    if VAE_OPTION in options:
        vaes = await service.catalog.listing(ModelKind.vae)
        state.vae = find_vae(options[VAE_OPTION], vaes, VAE_OPTION)
    if CLIP_SKIP_OPTION in options:
        state.clip_skip = clip_skip_of(options[CLIP_SKIP_OPTION], CLIP_SKIP_OPTION)


def options_of(state: A1111State) -> dict[str, Any]:
    """The adapter options ``GET /options`` reports."""
    return {VAE_OPTION: state.vae or "Automatic", CLIP_SKIP_OPTION: state.clip_skip}


async def with_adapters(service: GatewayService, state: A1111State, plan: A1111Plan, body: A1111Request) -> A1111Plan:
    """The plan's jobs with the request's VAE, clip skip and ControlNet units. A ControlNet unit without an
    image uses the job's init image (img2img), as the extension does."""
    overrides = body.override_settings or {}
    vae = state.vae
    if VAE_OPTION in overrides:
        vaes = await service.catalog.listing(ModelKind.vae)
        vae = find_vae(overrides[VAE_OPTION], vaes, f"override_settings.{VAE_OPTION}")
    clip_skip = state.clip_skip
    if CLIP_SKIP_OPTION in overrides:
        clip_skip = clip_skip_of(overrides[CLIP_SKIP_OPTION], f"override_settings.{CLIP_SKIP_OPTION}")
    scripts = (body.model_extra or {}).get("alwayson_scripts")
    if scripts is not None and not isinstance(scripts, Mapping):
        raise CompatFieldError("alwayson_scripts", "must be an object of script name → {args: [...]}")
    cn_models = await service.catalog.listing(ModelKind.controlnet) if scripts else []
    # Imported here: the extension's routes import the A1111 router, which imports this module.
    from ablerefusal.gateway.compat.controlnet import preprocessor_id

    jobs = []
    for job in plan.jobs:
        units = controlnet_units(scripts, cn_models, fallback_image=job.init_image, preprocessor_of=preprocessor_id)
        update = {"vae": vae, "clip_skip": None if clip_skip == 1 else clip_skip, "controlnets": units}
        jobs.append(job.model_copy(update=update))
    return replace(plan, jobs=jobs)


def _current(service: GatewayService, state: A1111State) -> ModelInfo | None:
    listing = service.models()
    for wanted in (state.checkpoint, listing.default):
        found = next((m for m in listing.models if m.id == wanted), None)
        if found is not None:
            return found
    return listing.models[0] if listing.models else None


async def loras(service: ServiceDep) -> list[LoraItem]:
    listed = await service.catalog.listing(ModelKind.lora)
    return [
        LoraItem(
            name=m.id,
            alias=m.id,
            path=m.id,
            metadata={"family": m.family.value, "size_bytes": m.size_bytes, "sha256": m.sha256},
        )
        for m in listed
    ]


async def refresh_loras(service: ServiceDep) -> None:
    await service.catalog.listing(ModelKind.lora, refresh=True)


async def embeddings(request: Request, service: ServiceDep) -> EmbeddingsResponse:
    current = _current(service, state_of(request.app))
    loaded: dict[str, EmbeddingItem] = {}
    skipped: dict[str, EmbeddingItem] = {}
    for emb in await service.catalog.listing(ModelKind.embedding):
        if emb.embedding is None:
            # A worker older than the embedding figures: A1111's schema requires shape and vectors, and
            # inventing them would mislead a client, so the entry is left out (it stays in /api/v1/models).
            log.warning("embedding %s listed without its vectors and width; left out of /sdapi/v1/embeddings", emb.id)
            continue
        # A1111 skips the embeddings whose width is not the loaded checkpoint's text encoder's: here, the
        # embeddings of another family than the current checkpoint's.
        usable = current is None or emb.family == current.family
        (loaded if usable else skipped)[emb.id] = EmbeddingItem(**emb.embedding.model_dump())
    return EmbeddingsResponse(loaded=loaded, skipped=skipped)


async def sd_vae(service: ServiceDep) -> list[VaeItem]:
    return [VaeItem(model_name=m.id, filename=m.id) for m in await service.catalog.listing(ModelKind.vae)]


def register(router: APIRouter) -> None:
    """Add these routes to the A1111 router (its prefix, key check and error shapes)."""
    router.get("/loras", summary="LoRAs on the workers, for <lora:name:weight>")(loras)
    router.post("/refresh-loras", summary="Read the workers' LoRA folders again")(refresh_loras)
    router.get("/embeddings", summary="Textual-inversion embeddings: loaded (current checkpoint's family) or skipped")(
        embeddings
    )
    router.get("/sd-vae", summary="Separate VAEs on the workers (sd_vae option values)")(sd_vae)
