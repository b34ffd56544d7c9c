"""ControlNet generation: the loaded ControlNets, their units, and the ControlNet pipeline made with ``from_pipe``.

Every call runs diffusers' ``MultiControlNetModel`` path (one unit or several): its per-unit conditioning
scales and guidance start/end lists are diffusers' own. What diffusers lacks is sd-webui-controlnet's control
modes per unit, so ``UnitControlNets`` applies them to each unit's residuals, exactly as the extension's
``hook.py`` does:

- ``balanced``: every residual times the weight.
- ``prompt`` ("My prompt is more important"): soft weights, residual i of n times ``weight * 0.825**(n-1-i)``
  (SDXL, with 10 residuals, takes the first 10 of SD 1.5's 13: exponents 12 … 3).
- ``controlnet`` ("ControlNet is more important"): the same soft weights, and no control on the unconditional
  half of a guided batch. For SD 1.5 this is diffusers' ``guess_mode`` to within 0.6% (its ``logspace(-1, 0,
  13)`` decays by 10**(-1/12) = 0.8254 a step), done here per unit rather than for the whole call, with the
  extension's own factors.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ablerefusal.protocol import ControlMode, ModelFamily, ModelFormat
from ablerefusal.worker.engine.controlnet.models import ControlNetEntry
from ablerefusal.worker.engine.devices import DeviceInfo
from ablerefusal.worker.engine.errors import ModelLoadError

BUNDLED_CONFIGS = Path(__file__).resolve().parent.parent.parent / "configs"
SOFT_BASE = 0.825  # sd-webui-controlnet's soft-injection decay per residual
_SDXL_SOFT_OFFSET = 3  # SDXL keeps the first 10 of the 13 SD 1.5 scales


def soft_scales(n: int, family: ModelFamily) -> list[float]:
    offset = _SDXL_SOFT_OFFSET if family is ModelFamily.sdxl else 0
    return [SOFT_BASE ** float(n - 1 - i + offset) for i in range(n)]


def load_controlnet(entry: ControlNetEntry, device: DeviceInfo) -> Any:
    from diffusers import ControlNetModel

    try:
        if entry.format is ModelFormat.diffusers:
            model = ControlNetModel.from_pretrained(
                entry.path, torch_dtype=device.dtype, local_files_only=True, use_safetensors=True
            )
        else:
            config = entry.config_dir or BUNDLED_CONFIGS / f"controlnet-{entry.family.value}"
            model = ControlNetModel.from_single_file(
                str(entry.path), config=str(config), torch_dtype=device.dtype, local_files_only=True
            )
    except (OSError, ValueError, KeyError, RuntimeError) as exc:
        raise ModelLoadError(f"cannot load ControlNet {entry.id!r} ({entry.format.value}): {exc}") from exc
    model.eval()
    if device.device.type == "cpu":
        from ablerefusal.worker.engine.determinism import make_module_batch_invariant

        make_module_batch_invariant(model)
    return model.to(device.device)


class ControlNetCache:
    """A small LRU of loaded ControlNets (by id and file version); only the generation thread uses it."""

    def __init__(self, capacity: int, device: DeviceInfo) -> None:
        self.capacity = max(1, capacity)
        self.device = device
        self._models: OrderedDict[tuple[str, Path, int], Any] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, entry: ControlNetEntry) -> Any:
        key = (entry.id, entry.path, entry.path.stat().st_mtime_ns)
        with self._lock:
            model = self._models.get(key)
            if model is not None:
                self._models.move_to_end(key)
                return model
        model = load_controlnet(entry, self.device)
        with self._lock:
            self._models[key] = model
            while len(self._models) > self.capacity:
                self._models.popitem(last=False)
        return model

    def loaded_ids(self) -> list[str]:
        with self._lock:
            return [key[0] for key in self._models]


def _multi_class() -> Any:
    from diffusers.models.controlnets.multicontrolnet import MultiControlNetModel

    class UnitControlNets(MultiControlNetModel):
        """diffusers' MultiControlNetModel with sd-webui-controlnet's control mode per unit."""

        def __init__(self, nets: list[Any], modes: list[ControlMode], family: ModelFamily, guided: bool) -> None:
            super().__init__(nets)
            self.modes = modes
            self.family = family
            self.guided = guided

        def forward(  # type: ignore[override]
            self,
            sample: Any,
            timestep: Any,
            encoder_hidden_states: Any,
            controlnet_cond: list[Any],
            conditioning_scale: list[float],
            **kwargs: Any,
        ) -> tuple[list[torch.Tensor], torch.Tensor]:
            down_total: list[torch.Tensor] | None = None
            mid_total: torch.Tensor | None = None
            for image, scale, net, mode in zip(controlnet_cond, conditioning_scale, self.nets, self.modes, strict=True):
                down, mid = net(
                    sample=sample,
                    timestep=timestep,
                    encoder_hidden_states=encoder_hidden_states,
                    controlnet_cond=image,
                    conditioning_scale=scale,
                    **kwargs,
                )
                if mode is not ControlMode.balanced:
                    scales = soft_scales(len(down) + 1, self.family)
                    down = [d * s for d, s in zip(down, scales[:-1], strict=True)]
                    mid = mid * scales[-1]
                if mode is ControlMode.controlnet and self.guided:
                    # The batch is [unconditional rows, conditional rows]: control reaches only the latter.
                    half = sample.shape[0] // 2
                    down = [torch.cat([torch.zeros_like(d[:half]), d[half:]]) for d in down]
                    mid = torch.cat([torch.zeros_like(mid[:half]), mid[half:]])
                if down_total is None or mid_total is None:
                    down_total, mid_total = list(down), mid
                else:
                    down_total = [a + b for a, b in zip(down_total, down, strict=True)]
                    mid_total = mid_total + mid
            assert down_total is not None and mid_total is not None
            return down_total, mid_total

    return UnitControlNets


@dataclass
class LoadedUnit:
    model: Any  # ControlNetModel
    weight: float
    start: float
    end: float
    mode: ControlMode


def controlnet_pipeline(base: Any, family: ModelFamily, units: list[LoadedUnit], guided: bool, kind: str = "") -> Any:
    """The ControlNet pipeline over ``base``'s modules (no weights copied) for these units: text-to-image, or
    with ``kind`` "Img2Img" or "Inpaint" those variants."""
    import diffusers

    multi = _multi_class()([u.model for u in units], [u.mode for u in units], family, guided)
    name = "StableDiffusionXLControlNet" if family is ModelFamily.sdxl else "StableDiffusionControlNet"
    cls = getattr(diffusers, f"{name}{kind}Pipeline")
    from diffusers.utils import logging as diffusers_logging

    # from_pipe casts the new ControlNet container with ``to()``, and diffusers warns about that on every call.
    verbosity = diffusers_logging.get_verbosity()
    diffusers_logging.set_verbosity_error()
    try:
        pipe = cls.from_pipe(base, controlnet=multi)
    finally:
        diffusers_logging.set_verbosity(verbosity)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def _batch(images: list[Any]) -> torch.Tensor:
    """One unit's row images as the (rows, 3, H, W) [0, 1] tensor diffusers' control image processor makes of
    them. Given as a tensor, the pipelines take it as one image per row for every unit (lists of lists mean
    "per row, per unit" to the SD 1.5 pipeline and are refused by the SDXL one)."""
    import numpy as np

    stacked = np.stack([np.asarray(image.convert("RGB")).astype(np.float32) / 255.0 for image in images])
    return torch.from_numpy(stacked).permute(0, 3, 1, 2)


def controlnet_arguments(units: list[LoadedUnit], images: list[Any], key: str = "image") -> dict[str, Any]:
    """The pipeline call's ControlNet arguments; ``images[u]`` is unit u's (rows, 3, H, W) batch, or its one PIL
    image for a one-row pass."""
    return {
        key: images,
        "controlnet_conditioning_scale": [u.weight for u in units],
        "control_guidance_start": [u.start for u in units],
        "control_guidance_end": [u.end for u in units],
        "guess_mode": False,  # control modes are per unit (UnitControlNets)
    }


@dataclass
class ControlNetInputs:
    """What the generation thread needs for a call's units: the loaded models (unit order) and where
    annotator weights live."""

    models: list[Any]
    models_dir: Path


def run_txt2img(
    base: Any,
    family: ModelFamily,
    call: Any,
    inputs: ControlNetInputs,
    job_ids: list[str],
    embeds: dict[str, Any],
    guidance: Any,
    generators: list[torch.Generator],
    on_step_end: Any,
) -> list[Any]:
    """Text-to-image with the call's ControlNet units; one image per row (``job_ids`` names each row's job)."""
    from ablerefusal.worker.engine.controlnet.units import prepare_control_images

    # 1. Each unit's control image for every row (an item's map serves all of its seeds).
    images = prepare_control_images(call, job_ids, inputs.models_dir)
    # 2. The units, with their weights, guidance windows and control modes.
    units = loaded_units(call, inputs)
    # 3. The ControlNet pipeline over the cached modules, and the usual call.
    pipe = controlnet_pipeline(base, family, units, guided=guidance > 1.0)
    return list(
        pipe(
            **embeds,
            **controlnet_arguments(units, [_batch(unit_images) for unit_images in images]),
            width=call.width,
            height=call.height,
            num_inference_steps=call.steps,
            guidance_scale=guidance,
            generator=generators,
            callback_on_step_end=on_step_end,
            output_type="pil",
        ).images
    )


def loaded_units(call: Any, inputs: ControlNetInputs) -> list[LoadedUnit]:
    units = []
    for model, u in zip(inputs.models, call.controlnets, strict=True):
        if u.guidance_start >= u.guidance_end:
            # An empty window (A1111 allows start == end) never applies the unit; diffusers refuses it, and a
            # weight of 0 over the whole run adds the same nothing.
            units.append(LoadedUnit(model, 0.0, 0.0, 1.0, u.control_mode))
        else:
            units.append(LoadedUnit(model, u.weight, u.guidance_start, u.guidance_end, u.control_mode))
    return units


def img2img_with_controlnet(stage: Any, scheduler: Any) -> tuple[Any, dict[str, Any]]:
    """For the image-to-image pass of a ``modes.Stage``: the ControlNet img2img pipeline over the cached
    modules, and its ControlNet arguments (the control images are fitted to the call's size)."""
    from ablerefusal.worker.engine.controlnet.units import prepare_control_images

    family = ModelFamily.sdxl if getattr(stage.pipe, "text_encoder_2", None) is not None else ModelFamily.sd15
    units = loaded_units(stage.call, stage.controlnets)
    pipe = controlnet_pipeline(stage.pipe, family, units, guided=stage.guidance > 1.0, kind="Img2Img")
    pipe.scheduler = scheduler
    images = prepare_control_images(stage.call, stage.job_ids, stage.controlnets.models_dir)
    return pipe, controlnet_arguments(units, [_batch(unit_images) for unit_images in images], "control_image")


def inpaint_with_controlnet(
    stage: Any, rows: range, scheduler: Any, size: tuple[int, int]
) -> tuple[Any, dict[str, Any]]:
    """For an inpaint / outpaint pass of a ``modes.Stage`` over ``rows``: the ControlNet inpaint pipeline and its
    ControlNet arguments, the control maps fitted to the working ``size`` (an outpaint canvas is larger than the
    call's size). "Only masked" inpainting is refused before (``units.check_units``)."""
    from ablerefusal.worker.engine.controlnet.units import prepare_control_images

    family = ModelFamily.sdxl if getattr(stage.pipe, "text_encoder_2", None) is not None else ModelFamily.sd15
    units = loaded_units(stage.call, stage.controlnets)
    pipe = controlnet_pipeline(stage.pipe, family, units, guided=stage.guidance > 1.0, kind="Inpaint")
    pipe.scheduler = scheduler
    job_ids = [stage.job_ids[r] for r in rows]
    images = prepare_control_images(stage.call, job_ids, stage.controlnets.models_dir, size)
    return pipe, controlnet_arguments(units, [_batch(u) for u in images], "control_image")
