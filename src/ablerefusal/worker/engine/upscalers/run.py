"""A loaded upscaler and the cache that keeps one: ``LoadedUpscaler.upscale`` is A1111's ``Upscaler.upscale``
(run the model, again up to three passes while the image is still smaller than the target, then resize to the
exact target with Lanczos)."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

import torch
from PIL import Image

from ablerefusal.worker.engine.upscalers.loading import load_file
from ablerefusal.worker.engine.upscalers.rrdbnet import RRDBNet
from ablerefusal.worker.engine.upscalers.tiling import DEFAULT_OVERLAP, DEFAULT_TILE, upscale_tensor

_MAX_PASSES = 3  # A1111 runs a model at most three times to reach a larger target


@dataclass
class LoadedUpscaler:
    id: str
    model: RRDBNet
    device: torch.device
    dtype: torch.dtype
    tile: int = DEFAULT_TILE
    overlap: int = DEFAULT_OVERLAP

    def run(self, image: Image.Image) -> Image.Image:
        """One pass of the model over an RGB image."""
        pixels = torch.frombuffer(bytearray(image.convert("RGB").tobytes()), dtype=torch.uint8)
        tensor = pixels.view(image.height, image.width, 3).permute(2, 0, 1)[None]
        tensor = tensor.to(self.device, self.dtype) / 255.0
        out = upscale_tensor(self.model, tensor, self.tile, self.overlap)
        array = (out[0].float().clamp(0, 1) * 255.0).round().to(torch.uint8).permute(1, 2, 0).contiguous().cpu()
        return Image.frombytes("RGB", (array.shape[1], array.shape[0]), array.numpy().tobytes())

    def upscale(self, image: Image.Image, size: tuple[int, int]) -> Image.Image:
        """``image`` at ``size`` (width, height), as A1111's hires fix upscales with a model."""
        width, height = size
        for _ in range(_MAX_PASSES):
            if image.width >= width and image.height >= height:
                break
            before = image.size
            image = self.run(image)
            if image.size == before:  # an x1 (restoration) model: running it again grows nothing
                break
        if image.size != size:
            image = image.resize(size, Image.Resampling.LANCZOS)
        return image


class UpscalerCache:
    """The last used upscaler stays loaded (one x4 RRDBNet is 67 MB in float32); another replaces it."""

    def __init__(self, device: torch.device, dtype: torch.dtype, allow_pickle: bool) -> None:
        self.device, self.dtype, self.allow_pickle = device, dtype, allow_pickle
        self._lock = threading.Lock()
        self._loaded: tuple[tuple[str, str], LoadedUpscaler] | None = None

    def get(self, entry: Any) -> LoadedUpscaler:
        """``entry``: the registry's ``AdapterEntry`` of kind upscaler (its version is id + sha256)."""
        with self._lock:
            if self._loaded is not None and self._loaded[0] == entry.version:
                return self._loaded[1]
            self._loaded = None  # free the previous model before loading the next
            model = load_file(entry.path, self.allow_pickle).to(self.device, self.dtype)
            loaded = LoadedUpscaler(entry.id, model, self.device, self.dtype)
            self._loaded = (entry.version, loaded)
            return loaded
