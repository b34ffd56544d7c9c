"""sd-webui-controlnet's HTTP API (Mikubill/sd-webui-controlnet ``scripts/api.py``): ``/controlnet/version``,
``/controlnet/model_list``, ``/controlnet/module_list`` and ``/controlnet/detect``, answered from the ready
workers' ControlNets and preprocessors, field for field as the extension answers them.

- Models are listed as the extension lists them: the file name without extension and A1111's old 8-hex model
  hash, ``"control_v11p_sd15_canny [d14c016b]"`` (diffusers folders, which the extension does not read, by
  folder name alone).
- Modules are our preprocessor ids, which are the extension's module names, except ``invert`` (the extension's
  ``invert (from white bg & black line)``); its legacy aliases (``hed``, ``depth``, ``pidinet`` …) are accepted.
  Only preprocessors a worker can run are listed.
- ``/controlnet/detect`` runs one preprocessor per input image on a worker; errors are the extension's 422s.

``preprocessor_id`` is what the ``alwayson_scripts.controlnet`` translation uses for a unit's ``module``.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body, Depends, Query

from ablerefusal.gateway.api import controlnet as api
from ablerefusal.gateway.compat.a1111 import render_error
from ablerefusal.gateway.compat.auth import require_a1111_key
from ablerefusal.gateway.compat.errors import CompatError
from ablerefusal.gateway.compat.routing import route_class
from ablerefusal.gateway.deps import ServiceDep
from ablerefusal.gateway.errors import ApiException
from ablerefusal.gateway.schemas import ModelKind
from ablerefusal.protocol import DetectRequest, ModelInfo, PreprocessorInfo

API_VERSION = 3  # internal_controlnet/external_code.py get_api_version()
DEFAULT_RESOLUTION = 512
# Our ids whose extension name differs.
_A1111_NAMES = {"invert": "invert (from white bg & black line)"}
# The extension's legacy module names (its preprocessor_aliases) of preprocessors we have.
_ALIASES = {
    "invert": "invert",
    "hed": "softedge_hed",
    "pidinet": "softedge_pidinet",
    "depth": "depth_midas",
    "lineart": "lineart_realistic",
    "normal_map": "normal_bae",
}

router = APIRouter(
    prefix="/controlnet",
    tags=["automatic1111"],
    route_class=route_class(render_error),
    dependencies=[Depends(require_a1111_key)],
)


def module_name(preprocessor_id: str) -> str:
    return _A1111_NAMES.get(preprocessor_id, preprocessor_id)


def preprocessor_id(module: str) -> str:
    """Our preprocessor id for an extension module name (its display name, a legacy alias, or ours)."""
    for ours, theirs in _A1111_NAMES.items():
        if module == theirs:
            return ours
    return _ALIASES.get(module, module)


def model_title(model: ModelInfo) -> str:
    """How the extension names a ControlNet: file stem and old short hash."""
    stem = model.name.rsplit(".", 1)[0] if model.format.value == "single-file" else model.name
    return f"{stem} [{model.legacy_hash}]" if model.legacy_hash else stem


def _sliders(info: PreprocessorInfo) -> list[dict[str, Any]]:
    if info.id == "none":
        return []
    sliders: list[dict[str, Any]] = [
        {"name": "Resolution", "value": DEFAULT_RESOLUTION, "min": 64, "max": 2048, "step": 8}
    ]
    for slider in (info.threshold_a, info.threshold_b):
        if slider is not None:
            sliders.append(
                {"name": slider.name, "value": slider.value, "min": slider.min, "max": slider.max, "step": slider.step}
            )
    return sliders


def _compat(exc: ApiException) -> CompatError:
    return CompatError(exc.status_code, exc.code, exc.message, exc.headers)


@router.get("/version", summary="sd-webui-controlnet API version")
async def version() -> dict[str, int]:
    return {"version": API_VERSION}


@router.get("/model_list", summary="ControlNet models, as 'name [hash]'")
async def model_list(service: ServiceDep, update: bool = Query(True, description="Read the workers again.")) -> Any:
    models = await service.catalog.listing(ModelKind.controlnet, refresh=update)
    return {"model_list": [model_title(m) for m in models]}


@router.get("/module_list", summary="ControlNet preprocessors (modules) the workers can run")
async def module_list(
    service: ServiceDep, alias_names: bool = Query(False, description="Display names (same as the names here).")
) -> Any:
    try:
        listed = await api.preprocessors(service)
    except ApiException as exc:
        raise _compat(exc) from None
    available = [p for p in listed.preprocessors if p.available]
    return {
        "module_list": [module_name(p.id) for p in available],
        "module_detail": {module_name(p.id): {"model_free": False, "sliders": _sliders(p)} for p in available},
    }


@router.post("/detect", summary="Run a preprocessor on images (sd-webui-controlnet /controlnet/detect)")
async def detect(
    service: ServiceDep,
    controlnet_module: str = Body("none", title="Controlnet Module"),
    controlnet_input_images: list[str] = Body([], title="Controlnet Input Images"),
    controlnet_processor_res: int = Body(-1, title="Controlnet Processor Resolution"),
    controlnet_threshold_a: float = Body(-1, title="Controlnet Threshold a"),
    controlnet_threshold_b: float = Body(-1, title="Controlnet Threshold b"),
    controlnet_masks: list[str] = Body([], title="Controlnet Masks"),
    low_vram: bool = Body(False, title="Low vram"),
) -> Any:
    del low_vram  # the extension's memory switch; workers manage their own memory
    try:
        listed = await api.preprocessors(service)
    except ApiException as exc:
        raise _compat(exc) from None
    pre_id = preprocessor_id(controlnet_module)
    if not any(p.id == pre_id and p.available for p in listed.preprocessors):
        raise CompatError(422, "HTTPException", "Module not available")
    if not controlnet_input_images:
        raise CompatError(422, "HTTPException", "No image selected")
    if controlnet_masks:
        raise CompatError(422, "HTTPException", f"Preprocessor {controlnet_module} does not take masks here")
    resolution = controlnet_processor_res if controlnet_processor_res > 0 else DEFAULT_RESOLUTION
    if not 64 <= resolution <= 2048:
        raise CompatError(422, "HTTPException", "controlnet_processor_res must be 64-2048 (or -1 for the default)")
    images = []
    for n, image in enumerate(controlnet_input_images):
        request = DetectRequest(
            preprocessor=pre_id,
            image=image,
            processor_res=resolution,
            threshold_a=controlnet_threshold_a if controlnet_threshold_a >= 0 else None,
            threshold_b=controlnet_threshold_b if controlnet_threshold_b >= 0 else None,
        )
        try:
            images.append((await api.detect(service, request)).image)
        except ApiException as exc:
            if exc.status_code == 400:
                raise CompatError(422, "HTTPException", f"controlnet_input_images.{n}: {exc.message}") from None
            raise _compat(exc) from None
    return {"info": "Success", "images": images}
