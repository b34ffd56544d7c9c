"""Submit-time rules for a job's adapters: LoRAs (field and ``<lora:name:weight>`` prompt tags), VAE and
ControlNet units must name files the ready workers list, of the job model's family.

Every offending field is reported at once (one 400, one detail each), before anything is stored. With no
worker ready nothing can be checked, as for the model id: the job waits, and the worker refuses a name it
lacks with a typed error.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ablerefusal.gateway.errors import ApiException
from ablerefusal.gateway.schemas import FieldError, GenerateRequest, ModelKind
from ablerefusal.gateway.workers.catalog import ModelCatalog
from ablerefusal.prompt_syntax import PromptSyntaxError, extract_loras
from ablerefusal.protocol import MAX_LORAS, LoraRef, ModelInfo

# How the messages name each kind.
_NOUNS = {ModelKind.lora: "LoRA", ModelKind.vae: "VAE", ModelKind.controlnet: "ControlNet"}


def prompt_loras(prompt: str) -> list[LoraRef]:
    """The ``<lora:name:weight>`` tags of a prompt, in order; raises PromptSyntaxError for a bad tag."""
    return extract_loras(prompt)[1]


@dataclass
class _Check:
    catalog: ModelCatalog
    model: ModelInfo | None  # the job's checkpoint, when the workers list it
    errors: list[FieldError] = field(default_factory=list)
    available: dict[ModelKind, list[str]] = field(default_factory=dict)
    refreshed: set[ModelKind] = field(default_factory=set)

    async def name(self, kind: ModelKind, name: str, where: str, *, tag: str | None = None) -> None:
        listing = await self.catalog.listing(kind)
        found = next((m for m in listing if m.id == name), None)
        if found is None and kind not in self.refreshed:
            # A file copied in since the kept listing was read counts: read once more (once per kind, so a
            # request full of unknown names costs the workers one listing each, not one per name).
            self.refreshed.add(kind)
            listing = await self.catalog.listing(kind, refresh=True)
            found = next((m for m in listing if m.id == name), None)
        noun = _NOUNS[kind]
        subject = f"{tag} names {noun} {name!r}" if tag else f"{noun} {name!r}"
        if found is None:
            ids = [m.id for m in listing]
            self.available.setdefault(kind, ids)
            unknown = f"{tag} names an unknown {noun} {name!r}" if tag else f"unknown {noun} {name!r}"
            self.errors.append(FieldError(field=where, message=f"{unknown}; available: {', '.join(ids) or 'none'}"))
            return
        model = self.model
        # A VAE's listed family is only a guess from its name (SD 1.5 and SDXL VAEs have the same tensors), so
        # it is not held against the job; the worker does not refuse one either, nor does A1111.
        if model is not None and kind is not ModelKind.vae and found.family != model.family:
            self.errors.append(
                FieldError(
                    field=where,
                    message=f"{subject} is for {found.family.value}, but model {model.id!r} is "
                    f"{model.family.value}: use a {noun} of the model's family",
                )
            )


async def _check_preprocessors(request: GenerateRequest, catalog: ModelCatalog) -> list[FieldError]:
    known = {p.id: p for p in await catalog.preprocessors()}
    errors = []
    for i, unit in enumerate(request.controlnets):
        found = known.get(unit.preprocessor)
        where = f"controlnets.{i}.preprocessor"
        if found is None:
            listed = ", ".join(p for p, info in known.items() if info.available) or "none"
            errors.append(
                FieldError(field=where, message=f"unknown preprocessor {unit.preprocessor!r}; available: {listed}")
            )
        elif not found.available:
            errors.append(
                FieldError(field=where, message=f"preprocessor {unit.preprocessor!r} is not available: {found.reason}")
            )
    return errors


async def check_adapters(request: GenerateRequest, model_id: str | None, catalog: ModelCatalog) -> None:
    """Raise a 400 listing every adapter field that is malformed, names a missing file or one of the wrong
    family for ``model_id``."""
    problems: list[FieldError] = []
    try:
        tags = {tag.name: tag for tag in prompt_loras(request.prompt)}  # a name repeated is checked once
    except PromptSyntaxError as exc:
        problems.append(FieldError(field="prompt", message=str(exc)))
        tags = {}
    merged = set(tags) | {spec.name for spec in request.loras}
    if len(merged) > MAX_LORAS:
        problems.append(
            FieldError(field="loras", message=f"at most {MAX_LORAS} LoRAs per job (field and prompt tags together)")
        )
    for i, unit in enumerate(request.controlnets):
        if unit.guidance_start > unit.guidance_end:
            problems.append(
                FieldError(
                    field=f"controlnets.{i}.guidance_end",
                    message=f"must not be below guidance_start ({unit.guidance_start:g})",
                )
            )
    available = None
    if (merged or request.vae or request.controlnets) and catalog.known():
        checkpoints = await catalog.listing(ModelKind.checkpoint)
        check = _Check(catalog, next((m for m in checkpoints if m.id == model_id), None))
        for tag in tags.values():
            await check.name(ModelKind.lora, tag.name, "prompt", tag=f"<lora:{tag.name}:{tag.weight:g}>")
        for i, spec in enumerate(request.loras):
            await check.name(ModelKind.lora, spec.name, f"loras.{i}.name")
        if request.vae is not None:
            await check.name(ModelKind.vae, request.vae, "vae")
        for i, unit in enumerate(request.controlnets):
            await check.name(ModelKind.controlnet, unit.model, f"controlnets.{i}.model")
        if request.controlnets:
            check.errors += await _check_preprocessors(request, catalog)
        problems += check.errors
        if len(check.available) == 1:
            available = next(iter(check.available.values()))
    if problems:
        # One entry per field: two bad tags are one `prompt` entry saying both.
        merged_details: dict[str, list[str]] = {}
        for problem in problems:
            merged_details.setdefault(problem.field, []).append(problem.message)
        details = [FieldError(field=f, message="; ".join(messages)) for f, messages in merged_details.items()]
        message = "; ".join(f"{d.field}: {d.message}" for d in details)
        raise ApiException(400, "invalid_request", message, details=details, available=available)
