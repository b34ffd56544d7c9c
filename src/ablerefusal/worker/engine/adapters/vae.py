"""VAE choice: a VAE file loaded once (small LRU cache), swapped onto the cached pipeline for one call, and the
checkpoint's own put back afterwards. A swapped VAE takes the checkpoint VAE's config (its latent scale, in
particular) and its memory switches (slicing, tiling)."""

from __future__ import annotations

import contextlib
import json
import tempfile
from collections import OrderedDict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ablerefusal.protocol import ModelFormat
from ablerefusal.worker.engine.errors import InvalidRequestError
from ablerefusal.worker.engine.kinds import AdapterEntry, load_pickle_state


class VaeCache:
    def __init__(self, capacity: int, device: Any, dtype: Any) -> None:
        self.capacity, self.device, self.dtype = capacity, device, dtype
        self._items: OrderedDict[tuple[tuple[str, str], str], Any] = OrderedDict()
        self.loads = 0

    def get(self, entry: AdapterEntry, base: Any) -> Any:
        """The VAE of ``entry`` shaped like ``base`` (the checkpoint's VAE, whose config it takes)."""
        key = (entry.version, json.dumps(dict(base.config), sort_keys=True, default=str))
        vae = self._items.get(key)
        if vae is not None:
            self._items.move_to_end(key)
            return vae
        while len(self._items) >= self.capacity:
            self._items.popitem(last=False)
        vae = self._load(entry, base)
        self._items[key] = vae
        self.loads += 1
        return vae

    def _load(self, entry: AdapterEntry, base: Any) -> Any:
        from diffusers import AutoencoderKL

        try:
            if entry.format is ModelFormat.diffusers:
                vae = AutoencoderKL.from_pretrained(entry.path, torch_dtype=self.dtype, local_files_only=True)
            else:
                with tempfile.TemporaryDirectory() as tmp:
                    (Path(tmp) / "config.json").write_text(json.dumps(dict(base.config), default=str))
                    source: Any = load_pickle_state(entry.path) if entry.pickle else str(entry.path)
                    vae = AutoencoderKL.from_single_file(
                        source, config=tmp, torch_dtype=self.dtype, local_files_only=True
                    )
        except (OSError, ValueError, KeyError, RuntimeError) as exc:
            raise InvalidRequestError(f"vae: VAE {entry.id!r} does not fit this model: {exc}", field="vae") from exc
        # The latent scale belongs to the checkpoint (SD 1.5 0.18215, SDXL 0.13025), not to the VAE file.
        vae.register_to_config(scaling_factor=base.config.scaling_factor)
        return vae.to(self.device).eval()


@contextlib.contextmanager
def vae_swapped(pipe: Any, vae: Any | None) -> Iterator[None]:
    """``pipe.vae`` is ``vae`` while the block runs; memory switches carry over both ways."""
    if vae is None:
        yield
        return
    own = pipe.vae
    vae.use_slicing, vae.use_tiling = own.use_slicing, own.use_tiling
    pipe.vae = vae
    try:
        yield
    finally:
        own.use_slicing, own.use_tiling = vae.use_slicing, vae.use_tiling
        pipe.vae = own
