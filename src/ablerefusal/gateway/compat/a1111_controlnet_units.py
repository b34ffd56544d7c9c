"""sd-webui-controlnet's API units (``alwayson_scripts.controlnet.args``) as our ``ControlNetSpec``: pure
translation, no I/O.

Field by field as the extension reads a unit dict (``internal_controlnet/args.py`` ``ControlNetUnit`` and
``external_code.py`` of Mikubill/sd-webui-controlnet, API v1.1.x): ``input_image`` and ``guidance`` are its
legacy spellings of ``image`` and ``guidance_end``; ``control_mode`` and ``resize_mode`` come as the enum's
int index or its display string; ``processor_res`` and ``threshold_a/b`` of -1 mean "the preprocessor's
default"; ``model`` is a name with or without its `` [hash]`` suffix. Fields that only tune the extension's
own UI or memory use (``low_vram``, ``hr_option``, ``save_detected_map``, ``is_ui`` …) are accepted and
ignored. A unit without ``enabled`` is on, as in the extension's API before 1.1.45x (clients written for it
omit the flag); ``enabled: false`` units are skipped.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from pydantic import ValidationError

from ablerefusal.gateway.compat.errors import CompatFieldError
from ablerefusal.gateway.schemas import ControlNetSpec
from ablerefusal.protocol import MAX_CONTROLNET_UNITS, ControlMode, ModelInfo, ResizeMode

SCRIPT_NAME = "controlnet"  # A1111 matches alwayson script names case-insensitively ("ControlNet" too)
# The extension's ControlMode enum, in index order (the int form is the index).
CONTROL_MODES: tuple[tuple[str, ControlMode], ...] = (
    ("Balanced", ControlMode.balanced),
    ("My prompt is more important", ControlMode.prompt),
    ("ControlNet is more important", ControlMode.controlnet),
)
# The extension's ResizeMode enum, in index order; 3 was "Just Resize (Latent upscale)" and means RESIZE.
RESIZE_MODES: tuple[tuple[str, ResizeMode], ...] = (
    ("Just Resize", ResizeMode.resize),
    ("Crop and Resize", ResizeMode.crop),
    ("Resize and Fill", ResizeMode.fill),
)
RESIZE_ALIASES = {
    "Inner Fit (Scale to Fit)": "Crop and Resize",
    "Outer Fit (Shrink to Fit)": "Resize and Fill",
    "Scale to Fit (Inner Fit)": "Crop and Resize",
    "Envelope (Outer Fit)": "Resize and Fill",
}
_LEGACY_KEYS = {"input_image": "image", "guidance": "guidance_end"}
_HASH_SUFFIX = re.compile(r"^(?P<name>.+?)\s*\[(?P<hash>[0-9a-fA-F]{8,64})\]$")
_UNSET = -1  # the extension's "use the preprocessor's default" for processor_res and thresholds


def script_args(alwayson_scripts: Mapping[str, Any] | None) -> tuple[str, list[Any]] | None:
    """The controlnet script's name as sent and its ``args`` list, or None when the request has none."""
    for name, script in (alwayson_scripts or {}).items():
        if name.lower() != SCRIPT_NAME:
            continue
        field = f"alwayson_scripts.{name}"
        if not isinstance(script, Mapping):
            raise CompatFieldError(field, 'must be an object {"args": [unit, …]}')
        args = script.get("args", [])
        if not isinstance(args, list):
            raise CompatFieldError(f"{field}.args", "must be a list of ControlNet unit objects")
        return name, args
    return None


def _enum_value(value: Any, choices: Sequence[tuple[str, Any]], field: str, aliases: Mapping[str, str]) -> Any:
    if isinstance(value, bool):
        raise CompatFieldError(field, "must be an int index or a name")
    if isinstance(value, int):
        if value == 3 and choices is RESIZE_MODES:
            return ResizeMode.resize
        if 0 <= value < len(choices):
            return choices[value][1]
        raise CompatFieldError(field, f"must be 0–{len(choices) - 1} or one of: {', '.join(n for n, _ in choices)}")
    if isinstance(value, str):
        wanted = aliases.get(value, value)
        for display, ours in choices:
            if wanted in (display, ours.value):
                return ours
    names = [n for n, _ in choices]
    raise CompatFieldError(field, f"unknown value {value!r}; one of: {', '.join(names)} (or their index 0–2)")


def match_model(value: Any, models: Sequence[ModelInfo], field: str) -> ModelInfo:
    """The ControlNet a unit's ``model`` names: its id or file name (with or without extension), with or
    without a `` [hash]`` suffix: A1111's old 8-hex hash as /controlnet/model_list shows it, or a prefix of
    the sha256 (when given, it must be that file's)."""
    if not isinstance(value, str) or not value.strip() or value.strip() == "None":
        raise CompatFieldError(field, "an enabled unit needs a model from /controlnet/model_list")
    wanted, digest = value.strip(), None
    suffixed = _HASH_SUFFIX.match(wanted)
    if suffixed:
        wanted, digest = suffixed["name"], suffixed["hash"].lower()
    for model in models:
        names = {model.id, model.name, model.name.rsplit(".", 1)[0]}
        hashes = {model.legacy_hash or "", (model.sha256 or "")[: len(digest or "")]}
        if wanted in names and (digest is None or digest in hashes):
            return model
    listed = ", ".join(m.id for m in models) or "none"
    raise CompatFieldError(field, f"unknown ControlNet model {value!r}; available: {listed}")


def _image(unit: Mapping[str, Any], field: str, fallback: str | None) -> str:
    """The unit's control image as base64 (bare or data: URL). A unit may send it as a string, as
    ``{"image": …, "mask": …}`` or as ``[image, mask]``; masks are for inpaint ControlNets, not supported."""
    image: Any = unit.get("image")
    mask: Any = unit.get("mask")
    if isinstance(image, Mapping):
        image, mask = image.get("image"), image.get("mask", mask)
    elif isinstance(image, list | tuple):
        if len(image) != 2 or isinstance(image[0], Mapping):
            raise CompatFieldError(f"{field}.image", "must be a base64 image, {image, mask} or [image, mask]")
        image, mask = image
    if mask:
        raise CompatFieldError(f"{field}.mask", "masks of ControlNet units (inpaint ControlNets) are not supported")
    if image in (None, ""):
        if fallback is not None:
            return fallback  # img2img: the extension controls with the init image when a unit has none
        raise CompatFieldError(f"{field}.image", "controlnet is enabled but no input image is given")
    if not isinstance(image, str):
        raise CompatFieldError(f"{field}.image", "must be a base64-encoded image")
    return image


def _number(unit: Mapping[str, Any], key: str, field: str, default: float) -> float:
    value = unit.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise CompatFieldError(f"{field}.{key}", "must be a number")
    return float(value)


def _optional(unit: Mapping[str, Any], key: str, field: str) -> float | None:
    value = _number(unit, key, field, _UNSET)
    return None if value == _UNSET else value


def to_spec(
    unit: Mapping[str, Any],
    field: str,
    models: Sequence[ModelInfo],
    fallback: str | None,
    preprocessor_of: Callable[[str], str] = str,
) -> ControlNetSpec:
    """One enabled unit as our ControlNetSpec; raises CompatFieldError naming ``field.key``.
    ``preprocessor_of`` maps the extension's module names to our preprocessor ids."""
    for legacy, key in _LEGACY_KEYS.items():
        if legacy in unit:
            if key in unit and unit[key] not in (None, ""):
                raise CompatFieldError(f"{field}.{legacy}", f"conflicts with {key!r}; send one of them")
            unit = {**unit, key: unit[legacy]}
    module = unit.get("module", "none")
    if not isinstance(module, str) or not module:
        raise CompatFieldError(f"{field}.module", "must be a preprocessor name from /controlnet/module_list")
    processor_res = _number(unit, "processor_res", field, _UNSET)
    values: dict[str, Any] = {
        "model": match_model(unit.get("model"), models, f"{field}.model").id,
        "image": _image(unit, field, fallback),
        "preprocessor": preprocessor_of(module),
        "weight": _number(unit, "weight", field, 1.0),
        "guidance_start": _number(unit, "guidance_start", field, 0.0),
        "guidance_end": _number(unit, "guidance_end", field, 1.0),
        "control_mode": _enum_value(unit.get("control_mode", 0), CONTROL_MODES, f"{field}.control_mode", {}),
        # The extension's default is "Crop and Resize" (INNER_FIT), not our plain resize.
        "resize_mode": _enum_value(unit.get("resize_mode", 1), RESIZE_MODES, f"{field}.resize_mode", RESIZE_ALIASES),
        "threshold_a": _optional(unit, "threshold_a", field),
        "threshold_b": _optional(unit, "threshold_b", field),
        "pixel_perfect": bool(unit.get("pixel_perfect", False)),
    }
    if processor_res != _UNSET:
        values["processor_res"] = int(processor_res)
    if values["guidance_start"] > values["guidance_end"]:
        raise CompatFieldError(
            f"{field}.guidance_start", f"guidance_start({values['guidance_start']:g}) > guidance_end"
        )
    try:
        return ControlNetSpec.model_validate(values)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise CompatFieldError(f"{field}.{first['loc'][0]}", first["msg"]) from exc


def controlnet_units(
    alwayson_scripts: Mapping[str, Any] | None,
    models: Sequence[ModelInfo],
    *,
    fallback_image: str | None = None,
    preprocessor_of: Callable[[str], str] = str,
) -> list[ControlNetSpec]:
    """The enabled units of a request's ControlNet script, in order (``models``: the ControlNet listing;
    ``fallback_image``: img2img's init image, used by a unit without its own; ``preprocessor_of``: module
    name → preprocessor id)."""
    found = script_args(alwayson_scripts)
    if found is None:
        return []
    name, args = found
    specs = []
    for i, unit in enumerate(args):
        field = f"alwayson_scripts.{name}.args.{i}"
        if unit is None:
            continue
        if not isinstance(unit, Mapping):
            raise CompatFieldError(field, "must be a ControlNet unit object")
        if not unit.get("enabled", True):
            continue
        specs.append(to_spec(unit, field, models, fallback_image, preprocessor_of))
    if len(specs) > MAX_CONTROLNET_UNITS:
        raise CompatFieldError(f"alwayson_scripts.{name}.args", f"at most {MAX_CONTROLNET_UNITS} enabled units")
    return specs
