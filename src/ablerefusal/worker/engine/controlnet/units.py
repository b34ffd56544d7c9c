"""A call's ControlNet units: checked before the call takes the device, and their control images prepared.

Checks (each a 400 naming the field): every unit's model exists and is of the call model's family, its
preprocessor is known and available, the call's options are ones the ControlNet pipelines run
(``protocol.controlnet_conflict``: no hires fix, no only-masked inpainting, no latent fills),
guidance_start <= guidance_end, and every item brings one decodable control image per unit.

Preparation per item and unit: decode, run the preprocessor at ``processor_res`` (or at the call's size with
``pixel_perfect``), then fit the map to the call's size with the unit's resize mode, as sd-webui-controlnet does.
An item's images serve each of its rows (seeds), so coalesced jobs keep their own control images.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

from ablerefusal.image_inputs import InputImageError, decode_base64_image
from ablerefusal.protocol import (
    MAX_INPUT_IMAGE_BYTES,
    MAX_INPUT_PIXELS,
    ControlMode,
    ControlNetUnit,
    GenerateCall,
    ModelFamily,
    ResizeMode,
    controlnet_conflict,
)
from ablerefusal.worker.engine.controlnet.models import ControlNetEntry, ControlNetRegistry
from ablerefusal.worker.engine.controlnet.preprocess import (
    PREPROCESSORS,
    check_preprocessor,
    fit_control_map,
    pixel_perfect_resolution,
    run_preprocessor,
)
from ablerefusal.worker.engine.errors import InvalidRequestError

# sd-webui-controlnet's display names, as its infotext writes them.
RESIZE_NAMES = {
    ResizeMode.resize: "Just Resize",
    ResizeMode.crop: "Crop and Resize",
    ResizeMode.fill: "Resize and Fill",
}
CONTROL_MODE_NAMES = {
    ControlMode.balanced: "Balanced",
    ControlMode.prompt: "My prompt is more important",
    ControlMode.controlnet: "ControlNet is more important",
}


def decode_control_image(text: str, field: str) -> Image.Image:
    try:
        return decode_base64_image(text, MAX_INPUT_IMAGE_BYTES, MAX_INPUT_PIXELS).image
    except InputImageError as exc:
        raise InvalidRequestError(f"{field}: {exc}", field=field) from exc


def check_units(
    call: GenerateCall, family: ModelFamily, registry: ControlNetRegistry, models_dir: Path, allow_pickle: bool
) -> list[ControlNetEntry]:
    """The units' entries, in unit order; raises InvalidRequestError / ModelNotFoundError naming the field."""
    if not call.controlnets:
        for n, item in enumerate(call.items):
            if item.control_images:
                raise InvalidRequestError(
                    f"items.{n}.control_images: the call has no controlnets", field=f"items.{n}.control_images"
                )
        return []
    conflict = controlnet_conflict(call.mode, call.hires is not None, call.inpaint_only_masked, call.inpainting_fill)
    if conflict is not None:
        field, rule = conflict
        raise InvalidRequestError(f"{field}: {rule}", field=field)
    entries = []
    for u, unit in enumerate(call.controlnets):
        entry = registry.get(unit.model, f"controlnets.{u}.model")
        if entry.family is not family:
            raise InvalidRequestError(
                f"controlnets.{u}.model: ControlNet {entry.id!r} is for {entry.family.value}, but the model "
                f"{call.model!r} is {family.value}",
                field=f"controlnets.{u}.model",
            )
        check_preprocessor(unit.preprocessor, models_dir, allow_pickle, f"controlnets.{u}.preprocessor")
        if unit.guidance_start > unit.guidance_end:  # equal is allowed (as in A1111): the unit never acts
            raise InvalidRequestError(
                f"controlnets.{u}.guidance_end: must not be below guidance_start ({unit.guidance_start:g})",
                field=f"controlnets.{u}.guidance_end",
            )
        entries.append(entry)
    for n, item in enumerate(call.items):
        if len(item.control_images) != len(call.controlnets):
            raise InvalidRequestError(
                f"items.{n}.control_images: one image per ControlNet unit ({len(call.controlnets)}), "
                f"got {len(item.control_images)}",
                field=f"items.{n}.control_images",
            )
        for u, text in enumerate(item.control_images):
            decode_control_image(text, f"items.{n}.control_images.{u}")
    return entries


def control_map(unit: ControlNetUnit, image: Image.Image, width: int, height: int, models_dir: Path) -> Image.Image:
    """One unit's control image for a call of ``width`` x ``height``."""
    pixels = np.asarray(image.convert("RGB"))
    resolution = (
        pixel_perfect_resolution(pixels, width, height, unit.resize_mode) if unit.pixel_perfect else unit.processor_res
    )
    detected = run_preprocessor(
        PREPROCESSORS[unit.preprocessor], image, resolution, unit.threshold_a, unit.threshold_b, models_dir
    )
    return Image.fromarray(fit_control_map(detected, width, height, unit.resize_mode))


def prepare_control_images(
    call: GenerateCall, job_ids: list[str], models_dir: Path, size: tuple[int, int] | None = None
) -> list[list[Image.Image]]:
    """Per unit, the control image of every row (``job_ids`` gives each row's job, in row order), fitted to
    ``size`` (default: the call's width and height)."""
    width, height = size or (call.width, call.height)
    per_item: dict[str, list[Image.Image]] = {}
    for n, item in enumerate(call.items):
        per_item[item.job_id] = [
            control_map(unit, decode_control_image(text, f"items.{n}.control_images.{u}"), width, height, models_dir)
            for u, (unit, text) in enumerate(zip(call.controlnets, item.control_images, strict=True))
        ]
    return [[per_item[job][u] for job in job_ids] for u in range(len(call.controlnets))]


def _resolved_threshold(unit: ControlNetUnit, which: str) -> float:
    pre = PREPROCESSORS[unit.preprocessor]
    value = getattr(unit, which)
    slider = getattr(pre, which)
    if value is not None and value >= 0:
        return float(value)
    return float(slider.value) if slider is not None else -1.0


def infotext_pairs(call: GenerateCall, entries: list[ControlNetEntry]) -> list[tuple[str, str]]:
    """``ControlNet i: "Module: canny, Model: name [hash], Weight: 1.0, …"`` as sd-webui-controlnet writes it."""
    pairs = []
    for i, (unit, entry) in enumerate(zip(call.controlnets, entries, strict=True)):
        name = Path(entry.name).stem if entry.path.is_file() else entry.name
        model = f"{name} [{entry.legacy_hash}]" if entry.legacy_hash else name
        fields = {
            "Module": unit.preprocessor,
            "Model": model,
            "Weight": str(float(unit.weight)),
            "Resize Mode": RESIZE_NAMES[unit.resize_mode],
            "Processor Res": str(unit.processor_res),
            "Threshold A": str(_resolved_threshold(unit, "threshold_a")),
            "Threshold B": str(_resolved_threshold(unit, "threshold_b")),
            "Guidance Start": str(float(unit.guidance_start)),
            "Guidance End": str(float(unit.guidance_end)),
            "Pixel Perfect": str(unit.pixel_perfect),
            "Control Mode": CONTROL_MODE_NAMES[unit.control_mode],
        }
        pairs.append((f"ControlNet {i}", json.dumps(", ".join(f"{k}: {v}" for k, v in fields.items()))))
    return pairs


def metadata(call: GenerateCall) -> dict[str, object]:
    return {"controlnets": [u.model_dump(mode="json") for u in call.controlnets]} if call.controlnets else {}
