"""Pure translation of an OpenAI images request into one of our jobs (n images = one job of batch n)."""

from __future__ import annotations

import re
from collections.abc import Sequence

from ablerefusal.gateway.compat.errors import CompatError, CompatFieldError
from ablerefusal.gateway.compat.openai_models import ImagesRequest
from ablerefusal.gateway.schemas import GenerateRequest
from ablerefusal.protocol import MAX_SIZE, MIN_SIZE, SIZE_MULTIPLE, ModelInfo

_SIZE = re.compile(r"^(\d{1,5})x(\d{1,5})$")
SIZE_RULE = f"must be 'WxH' with W and H from {MIN_SIZE} to {MAX_SIZE} and multiples of {SIZE_MULTIPLE}, or 'auto'"


def parse_size(size: str | None, default: int) -> tuple[int, int]:
    """(width, height) of an OpenAI size string; None and 'auto' give the model's native square."""
    if size is None or size == "auto":
        return default, default
    match = _SIZE.match(size)
    if match is None:
        raise CompatFieldError("size", f"{SIZE_RULE} (got {size!r})")
    width, height = int(match.group(1)), int(match.group(2))
    for value in (width, height):
        if not MIN_SIZE <= value <= MAX_SIZE or value % SIZE_MULTIPLE:
            raise CompatFieldError("size", f"{SIZE_RULE} (got {size!r})")
    return width, height


def pick_model(models: Sequence[ModelInfo], wanted: str | None, default: str | None) -> ModelInfo:
    if not models:
        raise CompatError(503, "no_models", "no models are available on the workers")
    name = wanted or default
    if name is None:
        return models[0]
    found = next((m for m in models if m.id == name), None)
    if found is None:
        raise CompatError(
            404,
            "model_not_found",
            f"The model '{name}' does not exist; available: {', '.join(m.id for m in models)}",
        )
    return found


def to_generate_request(req: ImagesRequest, model: ModelInfo) -> GenerateRequest:
    width, height = parse_size(req.size, model.default_size)
    fields: dict[str, object] = {
        "prompt": req.prompt,
        "negative_prompt": req.negative_prompt,
        "width": width,
        "height": height,
        "seed": req.seed,
        "batch_size": req.n,
        "model": model.id,
    }
    # Unset extensions keep our own defaults (steps 20, cfg 7.5, euler_a) rather than OpenAI-invented ones.
    for key, value in (("steps", req.steps), ("cfg_scale", req.cfg_scale), ("sampler", req.sampler)):
        if value is not None:
            fields[key] = value
    return GenerateRequest.model_validate(fields)
