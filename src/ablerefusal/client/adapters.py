"""``ablerefusal generate``'s adapter options as request fields: ``--lora NAME[:WEIGHT]`` and
``--controlnet MODEL:IMAGE[:PREPROCESSOR[:WEIGHT]]``. The gateway checks names and ranges; these only split
the text, and say which option is malformed."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import typer

_PREPROCESSOR = re.compile(r"^[A-Za-z0-9_+-]+$")


def _number(text: str, option: str, value: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise typer.BadParameter(f"{text!r} in {value!r} is not a number", param_hint=option) from None


def lora_fields(values: list[str]) -> list[dict[str, Any]]:
    """``name`` or ``name:weight`` per ``--lora``."""
    loras = []
    for value in values:
        name, sep, weight = value.rpartition(":") if ":" in value else (value, "", "")
        if not name.strip():
            raise typer.BadParameter(f"{value!r}: give NAME or NAME:WEIGHT", param_hint="--lora")
        loras.append({"name": name.strip(), "weight": _number(weight, "--lora", value) if sep else 1.0})
    return loras


def controlnet_fields(values: list[str]) -> tuple[list[dict[str, Any]], list[Path]]:
    """The units of ``--controlnet MODEL:IMAGE[:PREPROCESSOR[:WEIGHT]]`` and their image files, in order (the
    image's own colons, as in ``C:\\x.png``, are kept: a preprocessor is a bare word)."""
    units: list[dict[str, Any]] = []
    images: list[Path] = []
    for value in values:
        model, _, rest = value.partition(":")
        parts = rest.split(":")
        unit: dict[str, Any] = {"model": model}
        if len(parts) >= 3 and _PREPROCESSOR.match(parts[-2]):
            unit["weight"] = _number(parts.pop(), "--controlnet", value)
        if len(parts) >= 2 and _PREPROCESSOR.match(parts[-1]):
            unit["preprocessor"] = parts.pop()
        image = ":".join(parts)
        if not model or not image:
            raise typer.BadParameter(
                f"{value!r}: give MODEL:IMAGE[:PREPROCESSOR[:WEIGHT]], e.g. canny-sd15:edges.png:canny:1.0",
                param_hint="--controlnet",
            )
        units.append(unit)
        images.append(Path(image))
    return units, images
